"""`blueflow demo`: the whole product on the local stack, with live progress and a JSON summary.

Stack up → empty the bucket → generate good, empty and bad objects → start N workers → watch until only
the bad objects are left in the bucket → stop the workers → summary. Each run uses its own topic prefix
and app id, so reruns start clean. The referee numbers (CHF owed, CHF the Kentik stand-in accepted) are
printed next to the pipeline's own counters.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import requests

from devstack import stack
from devstack.workers import WorkerProcess, run_environment, sum_counts


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def empty_bucket(client, bucket: str) -> int:
    from connectors.cos import delete_objects, list_objects

    keys = [o.key for o in list_objects(client, bucket, "")]
    for i in range(0, len(keys), 1000):
        delete_objects(client, bucket, keys[i:i + 1000])
    return len(keys)


def hmac_client(env: dict[str, str]):
    from connectors.cos import make_cos_client

    return make_cos_client(env["BLUEFLOW_COS_ENDPOINT"], hmac_access_key=env["BLUEFLOW_COS_HMAC_ACCESS_KEY"],
                           hmac_secret_key=env["BLUEFLOW_COS_HMAC_SECRET_KEY"])


def kentik_stats(env: dict[str, str]) -> dict:
    try:
        return requests.get(env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/stats", timeout=5).json()
    except (requests.RequestException, ValueError):
        return {}


def run_demo(*, objects: int, mean_flows: int, bad: int, workers: int, seed: int, timeout_s: float,
             keep_stack: bool = False, sources: int = 0) -> dict:
    """The whole demo; stops the stack at the end if it started it (unless keep_stack). `sources` > 0: that
    many sources from one configuration file (devstack/demo_sources.py; `objects` and `bad` per source)."""
    started = time.monotonic()
    _say("demo: starting the local stack (first run downloads Kafka and S3Proxy from Maven Central)…")
    started_stack = not stack.is_up()
    env = stack.ensure_up(log=_say)
    try:
        if sources:
            from devstack.demo_sources import run_sources_demo

            return run_sources_demo(env, started, count=sources, objects=objects, mean_flows=mean_flows, bad=bad,
                                    workers=workers, seed=seed, timeout_s=timeout_s, say=_say)
        return _run(env, started, objects=objects, mean_flows=mean_flows, bad=bad, workers=workers, seed=seed,
                    timeout_s=timeout_s)
    finally:
        if started_stack and not keep_stack:
            stack.down(log=_say)


def _run(env: dict[str, str], started: float, *, objects: int, mean_flows: int, bad: int, workers: int, seed: int,
         timeout_s: float) -> dict:
    from connectors.cos import list_objects
    from devstack.generator import generate_objects, write_objects
    from devstack.world import build_world

    bucket = env["BLUEFLOW_BUCKET"]
    client = hmac_client(env)
    removed = empty_bucket(client, bucket)
    requests.post(env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/reset", timeout=5)
    world = build_world(seed=int(env.get("BLUEFLOW_WORLD_SEED", "1")),
                        regions=tuple(env.get("BLUEFLOW_REGIONS", "us-south,eu-de").split(",")))
    generated = generate_objects(world, objects=objects, seed=seed, mean_flows=mean_flows, bad=bad)
    bad_keys = {o.key for o in generated if o.kind not in ("good", "empty")}
    good = [o for o in generated if o.key not in bad_keys]
    owed_chf = sum(o.chf_count for o in good)
    flows_written = sum(o.flow_count for o in good)
    written = write_objects(client, bucket, generated)
    if written.failed:
        raise SystemExit(f"demo: {len(written.failed)} objects could not be written, e.g. {written.failed[0]}")
    _say(f"demo: bucket {bucket!r}: removed {removed} old objects, wrote {written.written} "
         f"({len(good)} good/empty with {flows_written} flows → {owed_chf} kflow records owed, {len(bad_keys)} bad)")

    run_id = f"blueflow-demo-{int(time.time())}"
    log_dir = Path(env.get("BLUEFLOW_DEVSTACK_DIR", stack.state_dir())) / "logs" / run_id
    procs = [WorkerProcess(f"worker-{i + 1}", run_environment(env, run_id), log_dir, ("--devstack",)).start()
             for i in range(workers)]
    _say(f"demo: started {workers} workers (logs in {log_dir})")
    counts: dict[str, int] = {}
    remaining: list[str] = []
    last_line = 0.0
    done = False
    workers_started = time.monotonic()
    try:
        while time.monotonic() - started < timeout_s:
            time.sleep(2)
            infos = [p.info() for p in procs]
            counts = sum_counts(infos)
            remaining = [o.key for o in list_objects(client, bucket, "")]
            dead = [p.name for p in procs if not p.alive]
            if dead:
                raise SystemExit(f"demo: worker(s) {dead} exited; last log lines:\n{procs[0].log_tail()}")
            if time.monotonic() - last_line >= 2:
                last_line = time.monotonic()
                rate = counts.get("flows_parsed", 0) / max(1e-6, time.monotonic() - workers_started)
                leader = next((p.name for p, i in zip(procs, infos) if i and i.get("leader")), "-")
                _say(f"  published {counts.get('objects_published', 0):>5}  parsed {counts.get('objects_parsed', 0):>5}  "
                     f"delivered {counts.get('objects_completed', 0):>5}  deleted {counts.get('objects_deleted', 0):>5}"
                     f"  quarantined {counts.get('deadlettered', 0):>3}  kflow {counts.get('chf_delivered', 0):>8}"
                     f"  ({rate:,.0f} flows/s)  in bucket {len(remaining):>5}  leader {leader}")
            if set(remaining) <= bad_keys and counts.get("deadlettered", 0) >= len(bad_keys) \
                    and counts.get("objects_completed", 0) >= len(good):
                done = True
                break
    finally:
        for p in procs:
            p.stop()
    elapsed = time.monotonic() - started
    accepted = (kentik_stats(env).get("kentik") or {}).get("flows_accepted")
    _say(f"demo: {'finished' if done else 'TIMED OUT'} in {elapsed:.1f}s; kflow owed {owed_chf}, delivered "
         f"{counts.get('chf_delivered', 0)} (Kentik stand-in accepted {accepted}); objects deleted "
         f"{counts.get('objects_deleted', 0)} of {len(good)}; quarantined {counts.get('deadlettered', 0)} of "
         f"{len(bad_keys)}; left in bucket {len(remaining)}")
    return {"objects_written": written.written, "flows_written": flows_written,
            "kflow_delivered": counts.get("chf_delivered", 0), "objects_deleted": counts.get("objects_deleted", 0),
            "deadlettered": counts.get("deadlettered", 0), "ok": done and counts.get("chf_delivered", 0) == owed_chf}
