"""The benchmark's fixed, seeded workloads: realistic IBM flow-log objects for the stack's World.

W1 "realistic": many objects, ~150 flows each on average (log-normal), 10 % empty (devstack/synth/generator.py).
W2 "large objects": a few objects of exactly N flows each, built with the generator's own internals
(same vNIC plan, flow mix, keys and document shape), so every object is as real as W1's.
W3 "steady state": W1-like objects of ~130 flows (none empty: each has a Kentik acceptance time), written at
W3_RATE objects/s for W3_SECONDS while the workers run (benchmarks/steady.py).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

import orjson

from devstack.synth import generator, layout, traffic, vnics


@dataclass(frozen=True)
class Workload:
    name: str            # "W1" / "W2" / "W3"
    label: str
    objects: int
    mean_flows: float    # W1: mean of the log-normal; W2: exact flows per object
    empty_share: float
    exact: bool          # True: every object has exactly mean_flows flows
    seed: int


W3_RATE = 20.0  # objects per second
W3_SECONDS = 180.0
W3_QUICK_SECONDS = 30.0


def workloads(quick: bool, w3_rate: float = W3_RATE, w3_seconds: float | None = None) -> dict[str, Workload]:
    """The workloads; --quick makes them much smaller (smoke test). W3's object count is its rate × seconds."""
    seconds = w3_seconds or (W3_QUICK_SECONDS if quick else W3_SECONDS)
    w3 = Workload("W3", "steady state", max(1, round(w3_rate * seconds)), 130, 0.0, False, 303)
    if quick:
        return {"W1": Workload("W1", "realistic", 200, 150, 0.1, False, 101),
                "W2": Workload("W2", "large objects", 2, 20_000, 0.0, True, 202), "W3": w3}
    return {"W1": Workload("W1", "realistic", 2000, 150, 0.1, False, 101),
            "W2": Workload("W2", "large objects", 20, 20_000, 0.0, True, 202), "W3": w3}


def _exact_objects(world, wl: Workload, start: datetime = layout.DEFAULT_START) -> list[layout.GeneratedObject]:
    """wl.objects objects of exactly wl.mean_flows flows, one per (vNIC, record type, interval) of the plan."""
    wc = vnics.world_context(world)
    start_ts = int(start.timestamp())
    out = []
    for pos, (c, rt, interval) in enumerate(generator._plan(wc, wl.objects)):
        rng = random.Random(f"blueflow-bench:{wl.seed}:{pos}")
        cs = start_ts + c.offset_s + interval * layout.INTERVAL_S
        ce = cs + layout.INTERVAL_S
        n = int(wl.mean_flows)
        flows = traffic.make_flows(rng, wc, c, rt, cs, ce, n)
        doc = layout.make_document(c, cs, ce, flows)
        key = layout.make_key(c, rt, cs, c.stream_start[rt], c.seq_start[rt] + interval)
        body = layout.gzip_bytes(orjson.dumps(doc))
        out.append(layout.GeneratedObject(key=key, body=body, metadata=layout.header_metadata(doc), flows=None,
                                          kind="good", flow_count=n, chf_count=layout.chf_count(flows)))
    return out


def build_objects(world, wl: Workload) -> list[layout.GeneratedObject]:
    """The workload's objects (bodies gzip'd, flows not kept: the referee re-reads the bodies)."""
    if wl.exact:
        return _exact_objects(world, wl)
    return list(generator.iter_objects(world, objects=wl.objects, seed=wl.seed, empty_share=wl.empty_share,
                               mean_flows=wl.mean_flows, keep_flows=False))
