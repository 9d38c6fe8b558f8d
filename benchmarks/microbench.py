"""In-process CPU cost of each pipeline stage, and of the floor, on the benchmark's own objects.

The worker runs these same stage cores (streams/stages/parse.py, enrich.py, sink.py) with Kafka, COS and
HTTP around them; here they run back to back on one thread, timed with the process CPU clock, so a run's
worker CPU can be split into "the stage functions" and "everything else" (Faust, Kafka clients, HTTP,
threads). The floor is what no implementation can avoid: gunzip + orjson.loads of every object.
"""
from __future__ import annotations

import time
import zlib
from collections import defaultdict

import orjson

from streams.formats.kflow.kflow import N_CUSTOM
from streams.formats.batches import FlowChunk, KflowChunk
from streams.formats.flowlog.flowdecode import FlowStream, Limits
from streams.formats.records import ObjectRef
from streams.stages.enrich import translate_parts


def kflow_chunk(flow: FlowChunk, index) -> KflowChunk:
    """The KflowChunk translated from `flow` (raises on the first part that cannot be translated)."""
    translated, failures = translate_parts(flow, index)
    if failures:
        raise failures[0][1]
    return translated

STAGES = ("parse", "flow_avro_encode", "flow_avro_decode", "translate", "kflow_avro_encode", "kflow_avro_decode",
          "chf_encode", "frame_body")
DEVICE_ID = 100001
FIELD_IDS = [20000 + j for j in range(N_CUSTOM)]


def floor_seconds(bodies) -> float:
    """CPU seconds of gunzip + orjson.loads over the bodies."""
    t0 = time.process_time()
    for body in bodies:
        orjson.loads(zlib.decompress(body, 47) if body[:2] == b"\x1f\x8b" else body)
    return time.process_time() - t0


def stage_seconds(objects, index, chunk_flows: int = 2000) -> dict:
    """CPU seconds per stage over all objects, plus bytes of the Kafka values and /chf bodies produced."""
    from streams.formats.kflow.kflow import encode_packed_chf, frame_body

    sec: dict[str, float] = defaultdict(float)
    size = {"flows_topic": 0, "kflow_topic": 0, "chf_body": 0}
    clock = time.process_time
    for obj in objects:
        ref = ObjectRef(bucket="b", key=obj.key, etag="e" * 32, size=len(obj.body))
        t = clock()
        stream = FlowStream([obj.body], chunk_flows=chunk_flows, limits=Limits())
        columns = list(stream)  # one message per chunk of the object
        chunks = [FlowChunk.of(ref, stream.header, i, len(columns), cols or None) for i, cols in enumerate(columns)]
        sec["parse"] += clock() - t
        for chunk in chunks:
            t = clock()
            raw = chunk.encode()
            t1 = clock()
            flow = FlowChunk.decode(raw)
            t2 = clock()
            sec["flow_avro_encode"] += t1 - t
            sec["flow_avro_decode"] += t2 - t1
            size["flows_topic"] += len(raw)
            kflow = kflow_chunk(flow, index)
            t3 = clock()
            sec["translate"] += t3 - t2
            kraw = kflow.encode()
            t4 = clock()
            kb = KflowChunk.decode(kraw)
            t5 = clock()
            sec["kflow_avro_encode"] += t4 - t3
            sec["kflow_avro_decode"] += t5 - t4
            size["kflow_topic"] += len(kraw)
            if kb.flow_count:
                packed = encode_packed_chf(kb.slice(0, kb.flow_count), DEVICE_ID, FIELD_IDS)
                t6 = clock()
                body = frame_body(packed)
                t7 = clock()
                sec["chf_encode"] += t6 - t5
                sec["frame_body"] += t7 - t6
                size["chf_body"] += len(body)
    return {"seconds": {s: sec.get(s, 0.0) for s in STAGES}, "bytes": size}


def per_flow_us(seconds: dict[str, float], flows: int) -> dict[str, float]:
    return {k: round(v * 1e6 / flows, 3) if flows else None for k, v in seconds.items()}


def run_microbench(objects, index, flows: int) -> dict:
    """µs per IBM flow of the floor and of each stage (and their total) on these objects, with the garbage
    collector tuned as in a worker (streams/ops/worker_cli.py tune_gc; restored after)."""
    import gc

    from streams.ops.worker_cli import tune_gc

    bodies = [o.body for o in objects]
    floor = floor_seconds(bodies)
    before = gc.get_threshold()
    tune_gc()
    try:
        stages = stage_seconds(objects, index)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
    total = sum(stages["seconds"].values())
    return {"floor_us_per_flow": floor * 1e6 / flows if flows else None,
            "stages_us_per_flow": per_flow_us(stages["seconds"], flows),
            "stages_total_us_per_flow": round(total * 1e6 / flows, 3) if flows else None,
            "uncompressed_bytes_per_flow": {k: round(v / flows, 1) for k, v in stages["bytes"].items()} if flows else {}}


def load_index(env: dict[str, str]):
    """The IP index the workers build, fetched from the stack's VPC stand-in (None if it cannot be had)."""
    from connectors.vpc import fetch_region_metadata
    from streams.state.ipindex import IpIndex

    snaps = []
    for region in env.get("BLUEFLOW_REGIONS", "us-south,eu-de").split(","):
        try:
            snaps.append(fetch_region_metadata(region, env["IBM_VPC_API_KEY"], iam_url=env["BLUEFLOW_IAM_URL"],
                                               service_url=env["BLUEFLOW_VPC_URL_TEMPLATE"].format(region=region),
                                               max_retries=1, retry_interval=1.0))
        except Exception:  # noqa: BLE001 - the bench still runs, translate then uses key fallbacks
            continue
    return IpIndex.from_snapshots(snaps) if snaps else None


def main(argv: list[str] | None = None) -> int:
    """`python -m benchmarks.microbench [W1|W2] [--quick]`: the stage table alone (profile it with pyinstrument)."""
    import argparse
    import json

    from devstack.stack import env as stack_env
    from devstack.synth.worldgen import build_world

    from benchmarks.workloads import build_objects, workloads

    p = argparse.ArgumentParser(prog="python -m benchmarks.microbench")
    p.add_argument("workload", nargs="?", default="W1")
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    env = stack_env.read_env()
    world = build_world(seed=int(env["BLUEFLOW_WORLD_SEED"]), regions=tuple(env["BLUEFLOW_REGIONS"].split(",")))
    objects = build_objects(world, workloads(args.quick)[args.workload.upper()])
    flows = sum(o.flow_count for o in objects)
    print(json.dumps(run_microbench(objects, load_index(env), flows), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
