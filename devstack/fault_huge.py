"""Fault-suite scenario `huge` (issue 9 item 7): bounded memory whatever the object. `run` is a
devstack.faults.FaultRun.

While the normal objects are being delivered, huge valid objects are written (quick: one of 200 MiB of JSON,
350k flows; full: 100, 150 and 200 MiB) and one object over the size limit (the scenario's workers run with
--max_object_bytes 256 MiB and the production --chunk_flows 2000; that object is 300 MiB of valid flows).
Besides the suite's rules (0 lost, 0 early deletes, bad input dead-lettered and kept), it passes when the
over-limit object is dead-lettered at stage decompress with the limit and its setting named, and every
worker's peak RSS (VmHWM, read from /proc before each stop or kill) stays under RSS_CEILING_MB.
"""
from __future__ import annotations

import random
import time
import zlib

import orjson

from devstack.workers import wait_until

HUGE_MIB = {True: (200,), False: (100, 150, 200)}  # quick: the referee and stand-in handle ~0.4M flows
LIMIT_BYTES = 256 << 20
OVER_MIB = 300
RSS_CEILING_MB = 400  # the deployment's limit is 1 GiB
OVERRIDES = {"huge": {"BLUEFLOW_MAX_OBJECT_BYTES": str(LIMIT_BYTES), "BLUEFLOW_CHUNK_FLOWS": "2000"}}


def _world(run):
    from devstack.synth.world import build_world

    return build_world(seed=int(run.env["BLUEFLOW_WORLD_SEED"]), regions=tuple(run.env["BLUEFLOW_REGIONS"].split(",")))


def huge_object(world, rng: random.Random, mib: int):
    """A valid object of about `mib` MiB of JSON, as the generator's objects are (flows owed, not kept)."""
    from devstack.synth import badinputs
    from devstack.synth.layout import GeneratedObject

    made = badinputs.make("huge_object", world, rng, size_mb=mib)
    return GeneratedObject(made.key, made.body, made.metadata, None, "good", variant="huge_object",
                           flow_count=made.flow_count, chf_count=made.chf)


def over_limit_object(world, rng: random.Random, mib: int):
    """`mib` MiB of valid flows (one block of 500 repeated: cheap to make), over the scenario's limit."""
    from devstack.synth import layout, traffic

    s = traffic.sample(world, rng, flows=500)
    flows = s.doc.pop("flow_logs")
    head = orjson.dumps(s.doc)[:-1] + b',"flow_logs":['
    block = b",".join(orjson.dumps(f) for f in flows)
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    parts = [comp.compress(head + block)]
    for _ in range(mib * (1 << 20) // len(block)):
        parts.append(comp.compress(b"," + block))
    parts += [comp.compress(b"]}"), comp.flush()]
    return layout.GeneratedObject(s.key(), b"".join(parts), layout.header_metadata(s.doc), None, "over_limit",
                             expected_stage="decompress", reason=f"{mib} MiB decompressed, over the limit")


def fault_huge(run, rng: random.Random, quick: bool) -> float:
    from devstack.demo import hmac_client
    from devstack.synth.writer import write_objects

    world = _world(run)
    huge = [huge_object(world, rng, mib) for mib in HUGE_MIB[quick]]
    over = over_limit_object(world, rng, OVER_MIB)
    written = write_objects(hmac_client(run.env), run.env["BLUEFLOW_BUCKET"], [*huge, over], workers=2,
                            on_written=lambda o: run.written_at.__setitem__(o.key, time.time()))
    if written.failed:
        raise RuntimeError(f"could not write the huge objects: {written.failed[:2]}")
    run.objects.extend(huge + [over])
    run.bad_keys.add(over.key)
    run.mark("huge objects written")
    fault_end = time.time()
    run.notes["huge_objects"] = [{"mib": mib, "gzip_mb": round(len(o.body) / 2**20, 1), "flows": o.flow_count}
                                 for mib, o in zip(HUGE_MIB[quick], huge)]
    wait_until(run.drained, 600, 2)
    _check(run, over.key)
    return fault_end


def _check(run, over_key: str) -> None:
    """The over-limit object's dead letter, and every worker's peak RSS against the ceiling."""
    problems = run.notes.setdefault("problems", [])
    letters = run.deadletters().get(over_key, [])
    reasons = [(r["stage"], r["reason"]) for r in letters]
    run.notes["over_limit_deadletter"] = reasons[:1]
    if not any(stage == "decompress" and str(LIMIT_BYTES) in reason and "--max_object_bytes" in reason
               for stage, reason in reasons):
        problems.append(f"over-limit object not dead-lettered with the size limit as its reason: {reasons[:1]}")
    peaks = {f"{w.name}#{i}": round(w.read_peak_rss() / 1024) for i, w in enumerate(run.all_workers())}
    run.notes["peak_rss_mb_by_worker"] = peaks
    over = {k: v for k, v in peaks.items() if v >= RSS_CEILING_MB}
    if over:
        problems.append(f"worker peak RSS over the {RSS_CEILING_MB} MB ceiling: {over}")


ACTIONS = {"huge": fault_huge}
