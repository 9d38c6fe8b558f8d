"""Per-object overheads of the pipeline, in process: the real stages on the broker-free driver
(devstack/harness/driver.py) over the benchmark's W1 objects, with and without object groups.

Counts what costs per message or per request in a real run — Kafka messages, thread-pool hand-offs, COS
requests, Kentik POSTs — and the stage CPU per flow (process CPU clock; no Kafka, no HTTP). The bucket
listing is not counted here (the poller runs outside the driver); add one LIST per 1,000 objects per poll.

    python -m benchmarks.per_object [--objects 400] [--group 50]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter

from benchmarks.workloads import build_objects, workloads
from devstack.synth.worldgen import build_world
from streams.formats.records import ObjectRef
from streams.stages import poll
from devstack.harness.driver import Driver


def run(objects, group: int) -> dict:
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000", BLUEFLOW_GROUP_OBJECTS=str(group))
    hops = Counter()
    inner = d.ctx.rt.run_sync

    async def counting(fn, *args, **kwargs):
        hops[getattr(fn, "__qualname__", str(fn))] += 1
        return await inner(fn, *args, **kwargs)

    d.ctx.rt.run_sync = counting
    for o in objects:
        d.cos.put(o.key, o.body)
    due = [poll.Due(o.key, d.cos.objects[o.key][0], len(o.body), 0, False) for o in objects]
    flows = sum(o.flow_count for o in objects)
    messages = Counter()
    t0 = time.process_time()
    for members in poll.groups(due, group, d.settings.chunk_flows):
        ref = ObjectRef.of_group([d.ref(m.key) for m in members])
        messages["objects"] += 1
        d.parse(ref)
        for key, value in d.topics.flows.drain():
            messages["flows"] += 1
            d.run(_enrich(d, value, key))
        for raw in d.kflow_messages():
            messages["kflow"] += 1
            d.sink(raw)
    cpu = time.process_time() - t0
    assert not d.cos.objects, "every object should be delivered and deleted"
    n = len(objects)
    return {"group_objects": group, "objects": n, "flows": flows, "stage_cpu_us_per_flow": round(cpu * 1e6 / flows, 1),
            "stage_cpu_ms_per_object": round(cpu * 1e3 / n, 2),
            "kafka_messages_per_object": {k: round(v / n, 3) for k, v in messages.items()} | {
                "ledger": round(len(d.topics.ledger.messages) / n, 3),
                "progress": round(len(d.topics.progress.messages) / n, 3)},
            "thread_pool_hops_per_object": round(sum(hops.values()) / n, 3),
            "cos_requests_per_object": {k: round(v / n, 3) for k, v in Counter(d.cos.calls).items()} | {
                "total": round(len(d.cos.calls) / n, 3)},
            "kentik_posts_per_object": round(len(d.kentik.posts) / n, 3)}


async def _enrich(d, value, key):
    from streams.stages import enrich

    await enrich.handle(d.ctx, value, key)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, default=400)
    ap.add_argument("--group", type=int, default=50)
    args = ap.parse_args(argv)
    w1 = workloads(quick=False)["W1"]
    objects = [o for o in build_objects(build_world(seed=1), w1)][:args.objects]
    for group in (1, args.group):
        print(json.dumps(run(objects, group)))
    asyncio.set_event_loop(asyncio.new_event_loop())


if __name__ == "__main__":
    main()
