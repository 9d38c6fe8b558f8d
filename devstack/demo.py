"""`blueflow-dev demo`: the whole product on the local stack, with live progress and a JSON summary.

Stack up → empty the bucket → generate good, empty and bad objects → start N workers → watch until only
the bad objects are left in the bucket → stop the workers → summary. Each run uses its own topic prefix
and app id, so reruns start clean. The referee numbers (CHF owed, CHF the Kentik stand-in accepted) are
printed next to the pipeline's own counters. With `sink="ipfix"` the workers export IPFIX to an nfcapd the
demo starts on 127.0.0.1 (devstack/nfcapd.py); the summary adds what nfdump read back from it (count, records
lost or duplicated against the referee's owed records, one sample record).
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from devstack import nfcapd, stack
from devstack.referee import compare_collector
from devstack.stack import env as stack_env
from devstack.stack.bucket import empty_bucket, hmac_client
from devstack.workers import WorkerProcess, run_environment, sum_counts


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def kentik_stats(env: dict[str, str]) -> dict:
    try:
        return requests.get(env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/stats", timeout=5).json()
    except (requests.RequestException, ValueError):
        return {}


def run_demo(*, objects: int, mean_flows: int, bad: int, workers: int, seed: int, timeout_s: float,
             keep_stack: bool = False, sink: str = "kentik", sources: int = 0) -> dict:
    """The whole demo; stops the stack at the end if it started it (unless keep_stack). `sources` > 0: that
    many sources from one configuration file (devstack/demo_sources.py; `objects` and `bad` per source)."""
    started = time.monotonic()
    if sink == "ipfix" and sources:
        raise SystemExit("demo: --sink ipfix runs the flags' one source; leave out --sources")
    if sink == "ipfix" and nfcapd.missing():
        raise SystemExit(f"demo: --sink ipfix needs a local collector: {nfcapd.missing()}")
    _say("demo: starting the local stack (first run downloads Kafka and S3Proxy from Maven Central)…")
    started_stack = not stack.is_up()
    env = stack.ensure_up(log=_say)
    try:
        if sources:
            from devstack.demo_sources import run_sources_demo

            return run_sources_demo(env, started, count=sources, objects=objects, mean_flows=mean_flows, bad=bad,
                                    workers=workers, seed=seed, timeout_s=timeout_s, say=_say)
        return _run(env, started, objects=objects, mean_flows=mean_flows, bad=bad, workers=workers, seed=seed,
                    timeout_s=timeout_s, sink=sink)
    finally:
        if started_stack and not keep_stack:
            stack.down(log=_say)


@dataclass
class Plan:
    """What the demo wrote and what the pipeline owes for it."""

    written: int
    good: list
    bad_keys: set[str]
    flows: int
    owed_chf: int


def _fill_bucket(env: dict[str, str], client, *, objects: int, mean_flows: int, bad: int, seed: int) -> Plan:
    from devstack.synth.generator import generate_objects
    from devstack.synth.writer import write_objects
    from devstack.synth.worldgen import build_world

    bucket = env["BLUEFLOW_BUCKET"]
    removed = empty_bucket(client, bucket)
    requests.post(env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/reset", timeout=5)
    world = build_world(seed=int(env.get("BLUEFLOW_WORLD_SEED", "1")),
                        regions=tuple(env.get("BLUEFLOW_REGIONS", "us-south,eu-de").split(",")))
    generated = generate_objects(world, objects=objects, seed=seed, mean_flows=mean_flows, bad=bad)
    bad_keys = {o.key for o in generated if o.kind not in ("good", "empty")}
    good = [o for o in generated if o.key not in bad_keys]
    plan = Plan(0, good, bad_keys, sum(o.flow_count for o in good), sum(o.chf_count for o in good))
    written = write_objects(client, bucket, generated)
    if written.failed:
        raise SystemExit(f"demo: {len(written.failed)} objects could not be written, e.g. {written.failed[0]}")
    plan.written = written.written
    _say(f"demo: bucket {bucket!r}: removed {removed} old objects, wrote {written.written} "
         f"({len(good)} good/empty with {plan.flows} flows → {plan.owed_chf} kflow records owed, "
         f"{len(bad_keys)} bad)")
    return plan


def _watch(procs: list[WorkerProcess], client, bucket: str, plan: Plan, deadline: float) -> tuple[bool, dict, list]:
    """Progress lines every 2 s until only the bad objects are left (True) or the deadline; counters, bucket."""
    from connectors.cos import list_objects

    counts: dict[str, int] = {}
    remaining: list[str] = []
    workers_started = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(2)
        infos = [p.info() for p in procs]
        counts = sum_counts(infos)
        remaining = [o.key for o in list_objects(client, bucket, "")]
        dead = [p.name for p in procs if not p.alive]
        if dead:
            raise SystemExit(f"demo: worker(s) {dead} exited; last log lines:\n{procs[0].log_tail()}")
        rate = counts.get("flows_parsed", 0) / max(1e-6, time.monotonic() - workers_started)
        leader = next((p.name for p, i in zip(procs, infos) if i and i.get("leader")), "-")
        _say(f"  published {counts.get('objects_published', 0):>5}  parsed {counts.get('objects_parsed', 0):>5}  "
             f"delivered {counts.get('objects_completed', 0):>5}  deleted {counts.get('objects_deleted', 0):>5}"
             f"  quarantined {counts.get('deadlettered', 0):>3}  kflow {_sent(counts):>8}"
             f"  ({rate:,.0f} flows/s)  in bucket {len(remaining):>5}  leader {leader}")
        if set(remaining) <= plan.bad_keys and counts.get("deadlettered", 0) >= len(plan.bad_keys) \
                and counts.get("objects_completed", 0) >= len(plan.good):
            return True, counts, remaining
    return False, counts, remaining


def _sent(counts: dict) -> int:
    """kflow records accepted by Kentik, or (ipfix sink) handed to the collector's socket at its pace."""
    return counts.get("chf_delivered", 0) + counts.get("ipfix_exported", 0)


def _collector_summary(collector: nfcapd.NfCapd, plan: Plan) -> dict:
    """What nfcapd stored (read with nfdump) against what the objects owe it."""
    rows = collector.stop_and_read()
    verdict = compare_collector(plan.good, rows)
    drops = (collector.final_stats or {}).get("drops")
    _say(f"demo: nfdump read {verdict.received} records from nfcapd at {collector.address} (owed {verdict.owed}, "
         f"lost {verdict.lost}, duplicates {verdict.duplicates}, unexpected {verdict.unexpected}; datagrams the "
         f"kernel dropped at nfcapd's socket: {drops}); files in {collector.flowdir}")
    if rows:
        _say(f"demo: e.g. {nfcapd.sample_line(rows[0])}")
    return {"nfdump_records": verdict.received, "nfdump_lost": verdict.lost,
            "nfdump_duplicates": verdict.duplicates + verdict.unexpected,
            "nfdump_sample": nfcapd.sample_line(rows[0]) if rows else None}


def _run(env: dict[str, str], started: float, *, objects: int, mean_flows: int, bad: int, workers: int, seed: int,
         timeout_s: float, sink: str) -> dict:
    client = hmac_client(env)
    plan = _fill_bucket(env, client, objects=objects, mean_flows=mean_flows, bad=bad, seed=seed)
    run_id = f"blueflow-demo-{int(time.time())}"
    state = Path(env.get("BLUEFLOW_DEVSTACK_DIR", stack_env.state_dir()))
    collector = nfcapd.NfCapd(state / "nfcapd" / run_id) if sink == "ipfix" else None
    overrides = {"BLUEFLOW_SINK": "ipfix", "BLUEFLOW_IPFIX_COLLECTORS": collector.address} if collector else {}
    try:
        procs = [WorkerProcess(f"worker-{i + 1}", run_environment(env, run_id, **overrides),
                               state / "logs" / run_id).start() for i in range(workers)]
        _say(f"demo: started {workers} workers with the {sink} sink (logs in {state / 'logs' / run_id})"
             + (f", exporting to nfcapd at {collector.address}" if collector else ""))
        try:
            done, counts, remaining = _watch(procs, client, env["BLUEFLOW_BUCKET"], plan, started + timeout_s)
        finally:
            for p in procs:
                p.stop()
        extra = _collector_summary(collector, plan) if collector else {}
    finally:
        if collector:
            collector.kill()
    accepted = (kentik_stats(env).get("kentik") or {}).get("flows_accepted")
    _say(f"demo: {'finished' if done else 'TIMED OUT'} in {time.monotonic() - started:.1f}s; kflow owed "
         f"{plan.owed_chf}, delivered {_sent(counts)}"
         + (f" (Kentik stand-in accepted {accepted})" if not collector else " (handed to nfcapd's socket)")
         + f"; objects deleted {counts.get('objects_deleted', 0)} of {len(plan.good)}; quarantined "
         f"{counts.get('deadlettered', 0)} of {len(plan.bad_keys)}; left in bucket {len(remaining)}")
    ok = done and _sent(counts) == plan.owed_chf and not extra.get("nfdump_lost")
    return {"objects_written": plan.written, "flows_written": plan.flows,
            "kflow_delivered": _sent(counts), "objects_deleted": counts.get("objects_deleted", 0),
            "deadlettered": counts.get("deadlettered", 0), **extra, "ok": ok}
