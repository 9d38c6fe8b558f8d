"""The benchmark's fixed, seeded workloads: realistic IBM flow-log objects for the stack's World.

W1 "realistic": many objects, ~150 flows each on average (log-normal), 10 % empty (devstack.generator).
W2 "large objects": a few objects of exactly N flows each, built with the generator's own internals
(same vNIC plan, flow mix, keys and document shape), so every object is as real as W1's.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from devstack import generator as g


@dataclass(frozen=True)
class Workload:
    name: str            # "W1" / "W2"
    label: str
    objects: int
    mean_flows: float    # W1: mean of the log-normal; W2: exact flows per object
    empty_share: float
    exact: bool          # True: every object has exactly mean_flows flows
    seed: int


def workloads(quick: bool) -> dict[str, Workload]:
    """The two workloads; --quick makes them much smaller (smoke test)."""
    if quick:
        return {"W1": Workload("W1", "realistic", 200, 150, 0.1, False, 101),
                "W2": Workload("W2", "large objects", 2, 20_000, 0.0, True, 202)}
    return {"W1": Workload("W1", "realistic", 2000, 150, 0.1, False, 101),
            "W2": Workload("W2", "large objects", 20, 20_000, 0.0, True, 202)}


def _exact_objects(world, wl: Workload, start: datetime = g.DEFAULT_START) -> list[g.GeneratedObject]:
    """wl.objects objects of exactly wl.mean_flows flows, one per (vNIC, record type, interval) of the plan."""
    wc = g.world_context(world)
    start_ts = int(start.timestamp())
    out = []
    for pos, (c, rt, interval) in enumerate(g._plan(wc, wl.objects)):
        rng = random.Random(f"blueflow-bench:{wl.seed}:{pos}")
        cs = start_ts + c.offset_s + interval * g.INTERVAL_S
        ce = cs + g.INTERVAL_S
        n = int(wl.mean_flows)
        flows = g.make_flows(rng, wc, c, rt, cs, ce, n)
        doc = g.make_document(c, cs, ce, flows)
        key = g.make_key(c, rt, cs, c.stream_start[rt], c.seq_start[rt] + interval)
        body = g.gzip_bytes(g.orjson.dumps(doc))
        out.append(g.GeneratedObject(key=key, body=body, metadata=g.header_metadata(doc), flows=None, kind="good",
                                     flow_count=n, chf_count=g.chf_count(flows)))
    return out


def build_objects(world, wl: Workload) -> list[g.GeneratedObject]:
    """The workload's objects (bodies gzip'd, flows not kept: the referee re-reads the bodies)."""
    if wl.exact:
        return _exact_objects(world, wl)
    return list(g.iter_objects(world, objects=wl.objects, seed=wl.seed, empty_share=wl.empty_share,
                               mean_flows=wl.mean_flows, keep_flows=False))
