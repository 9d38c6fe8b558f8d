"""`python -m benchmarks.run [--quick] [--workloads W1,W2] [--workers 1,2]`: end-to-end benchmark on the real stack.

For each workload (benchmarks/workloads.py) and worker count: empty the bucket, reset the Kentik stand-in,
upload the same seeded objects, start N real `blueflow worker` processes on a fresh run id (topic prefix and
app id), and measure until the bucket is drained: flows/s and objects/s, worker CPU (from /proc, before the
workers exit), peak RSS (VmHWM), COS HTTP requests (the poller's listings counted at the production poll
interval of 30 s: measure.cos_requests) and Kentik bytes (/metrics), Kafka bytes (the run's partition
directories in the stack's Kafka log dir), latency from each object's LastModified to Kentik's acceptance of
its last record (devstack/referee.compare on the stand-in's flows). Then, on the same objects in-process: the
floor (gunzip + orjson.loads) and CPU per stage (benchmarks/microbench.py). Writes
benchmarks/results/latest.json and results/<git short sha>.json and prints a table. W3 (steady state: objects
written at a constant rate while the workers run) is measured by benchmarks/steady.py.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path


from benchmarks import measure
from benchmarks.harness import (accepted_flows, delete_run_topics, kafka_run_bytes, proc_cpu_s, proc_hwm_kb,
                                reset_kentik, stack_cpu_s, standin_check, worker_metrics)
from benchmarks.workloads import W3_QUICK_SECONDS, W3_RATE, W3_SECONDS, build_objects, workloads

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def git_sha() -> tuple[str, bool]:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
        return sha or "unknown", dirty
    except (OSError, subprocess.SubprocessError):
        return "unknown", False


def run_once(env: dict, wl, objects: list, n_workers: int, *, cos_auth: str, timeout_s: float) -> dict:
    """One isolated pipeline run of `objects` with `n_workers` workers; returns raw measurements."""
    from connectors.cos import list_objects
    from devstack import stack
    from devstack.demo import empty_bucket, hmac_client
    from devstack.generator import write_objects
    from devstack.referee import compare
    from devstack.workers import WorkerProcess, run_environment

    bucket = env["BLUEFLOW_BUCKET"]
    client = hmac_client(env)
    empty_bucket(client, bucket)
    reset_kentik(env)
    run_id = f"bench{wl.name.lower()}w{n_workers}{uuid.uuid4().hex[:6]}"
    up = write_objects(client, bucket, objects)
    if up.failed:
        raise RuntimeError(f"upload failed for {len(up.failed)} objects, e.g. {up.failed[0]}")
    uploaded = {o.key: o.last_modified / 1000.0 for o in list_objects(client, bucket, "")}
    overrides = {}
    if cos_auth == "iam":
        overrides = {"BLUEFLOW_COS_ENDPOINT": env["BLUEFLOW_COS_IAM_ENDPOINT"], "BLUEFLOW_COS_HMAC_ACCESS_KEY": "",
                     "BLUEFLOW_COS_HMAC_SECRET_KEY": ""}
    worker_env = run_environment(env, run_id, **overrides)
    log_dir = stack.state_dir() / "logs" / run_id
    workers = [WorkerProcess(f"w{i}", worker_env, log_dir, ("--devstack",)) for i in range(n_workers)]
    startup_cpu: dict[int, float] = {}
    stack_before = stack_cpu_s()
    t0 = time.monotonic()
    for w in workers:
        w.start()
    n_obj = len(objects)
    timed_out = False
    t_end = None
    try:
        while True:
            now = time.monotonic()
            if now - t0 > timeout_s:
                timed_out = True
                break
            deleted = 0
            for i, w in enumerate(workers):
                if not w.alive:
                    raise RuntimeError(f"worker {w.name} exited:\n{w.log_tail(30)}")
                info = w.info(timeout=2.0)
                if info is None:
                    continue
                if i not in startup_cpu:
                    startup_cpu[i] = proc_cpu_s(w.proc.pid) or 0.0
                deleted += int((info.get("counts") or {}).get("objects_deleted", 0))
            if deleted >= n_obj and not any(True for _ in list_objects(client, bucket, "")):
                t_end = time.monotonic()
                break
            time.sleep(1.0)  # workers' /service/info at most once a second
        wall = (t_end or time.monotonic()) - t0
        cpu = [proc_cpu_s(w.proc.pid) or 0.0 for w in workers]
        hwm = [proc_hwm_kb(w.proc.pid) or 0 for w in workers]
        samples = measure.merge_samples(worker_metrics(w.port) for w in workers)
        stack_after = stack_cpu_s()
    finally:
        threads = [threading.Thread(target=w.stop, args=(20.0,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    kafka = kafka_run_bytes(stack.state_dir() / "kafka-data", run_id)
    cos = measure.cos_operations(samples)
    requests_ = measure.cos_requests(samples, float(worker_env["BLUEFLOW_POLL_INTERVAL"]))
    t_ref = time.monotonic()
    accepted = accepted_flows(env)
    verdict = compare(objects, accepted)
    del accepted
    latencies = [verdict.last_accept_by_object[k] - uploaded[k] for k in verdict.last_accept_by_object
                 if k in uploaded]
    reset_kentik(env)
    delete_run_topics(env, list(kafka))
    _say(f"  referee: owed {verdict.owed}, accepted {verdict.accepted}, lost {verdict.lost}, duplicates "
         f"{verdict.duplicates} ({time.monotonic() - t_ref:.0f}s)")
    return {"run_id": run_id, "wall_s": wall, "timed_out": timed_out, "cpu_s": sum(cpu), "cpu_per_worker_s": cpu,
            "cpu_startup_s": sum(startup_cpu.values()), "hwm_kb": hwm, "kafka_by_topic": kafka,
            "kafka_bytes": sum(kafka.values()), "cos": cos, "cos_requests": requests_["at_production_poll"],
            "cos_http": requests_,
            "kentik_bytes": measure.metric_sum(samples, "blueflow_kentik_request_bytes_total"),
            "kentik_requests": measure.metric_sum(samples, "blueflow_kentik_requests_total"),
            "stage_seconds": measure.stage_seconds(samples), "latencies": latencies,
            "stack_cpu_s": {k: round(v - stack_before.get(k, 0.0), 2) for k, v in stack_after.items()},
            "referee": {"owed": verdict.owed, "accepted": verdict.accepted, "lost": verdict.lost,
                        "duplicates": verdict.duplicates, "unexpected": verdict.unexpected}}


def steady_rows(env: dict, wl, objects: list, counts: list[int], args, common: dict) -> list[dict]:
    """W3 with each worker count (benchmarks/steady.py)."""
    from benchmarks.steady import run_steady, steady_row

    rows = []
    flows = sum(o.flow_count for o in objects)
    for n in counts:
        _say(f"W3 with {n} worker(s): {args.w3_rate:g} objects/s for {len(objects) / args.w3_rate:.0f}s…")
        raw = run_steady(env, objects, n, rate=args.w3_rate, timeout_s=args.timeout)
        row = steady_row(raw, workers=n, objects=len(objects), flows=flows, rate=args.w3_rate,
                         seconds=len(objects) / args.w3_rate, load_avg_1m_before=round(os.getloadavg()[0], 2),
                         **common)
        _say(f"  write→accepted {row['write_to_accepted']}; write→deleted {row['write_to_deleted']}; "
             f"writer {row['writer']}; referee {row['referee']}")
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="much smaller workloads (smoke test)")
    p.add_argument("--workloads", default="W1,W2")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--cos-auth", choices=("hmac", "iam"), default="hmac",
                   help="workers' COS path: HMAC straight to S3Proxy, or IAM bearer via the auth proxy")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per run before giving up")
    p.add_argument("--w1-objects", type=int, default=None, help="override W1's object count")
    p.add_argument("--no-microbench", action="store_true")
    p.add_argument("--w3-rate", type=float, default=W3_RATE, help="W3: objects written per second")
    p.add_argument("--w3-seconds", type=float, default=None,
                   help=f"W3: seconds of writing (default {W3_SECONDS:.0f}, {W3_QUICK_SECONDS:.0f} with --quick)")
    p.add_argument("--tag", default=None,
                   help="write results/<sha>-<tag>.json only (a partial or experimental run), not latest.json")
    args = p.parse_args(argv)

    from dataclasses import replace

    from devstack import stack
    from devstack.world import build_world

    from benchmarks.microbench import load_index, run_microbench

    chosen = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    defs = workloads(args.quick, args.w3_rate, args.w3_seconds)
    if args.w1_objects:
        defs["W1"] = replace(defs["W1"], objects=args.w1_objects)
    env = stack.ensure_up(log=_say)
    world = build_world(seed=int(env["BLUEFLOW_WORLD_SEED"]), regions=tuple(env["BLUEFLOW_REGIONS"].split(",")))
    sha, dirty = git_sha()
    common = {"git_commit": sha + ("-dirty" if dirty else ""), "cpus": os.cpu_count(),
              "cpus_available": len(os.sched_getaffinity(0)), "quick": args.quick, "cos_auth": args.cos_auth,
              "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    runs = []
    for name in chosen:
        wl = defs[name]
        t = time.monotonic()
        objects = build_objects(world, wl)
        flows = sum(o.flow_count for o in objects)
        chf = sum(o.chf_count for o in objects)
        _say(f"{name} ({wl.label}): {len(objects)} objects, {flows} flows, {chf} kflow records "
             f"(generated in {time.monotonic() - t:.1f}s)")
        if name == "W3":
            runs.extend(steady_rows(env, wl, objects, counts, args, common))
            continue
        rows = []
        for n in counts:
            load = os.getloadavg()[0]
            _say(f"{name} with {n} worker(s)…")
            raw = run_once(env, wl, objects, n, cos_auth=args.cos_auth, timeout_s=args.timeout)
            _say(f"  {raw['wall_s']:.1f}s wall, {raw['cpu_s']:.1f}s worker CPU"
                 + (" (TIMED OUT)" if raw["timed_out"] else ""))
            rows.append(measure.build_run_row(
                workload=name, workers=n, objects=len(objects), flows=flows, chf=chf, wall_s=raw["wall_s"],
                cpu_s=raw["cpu_s"], cpu_startup_s=raw["cpu_startup_s"], floor_us_per_flow=None,
                peak_rss_kb=raw["hwm_kb"], kafka_bytes=raw["kafka_bytes"], kentik_bytes=raw["kentik_bytes"],
                cos_requests=raw["cos_requests"], latencies_s=raw["latencies"],
                workload_label=wl.label, run_id=raw["run_id"], timed_out=raw["timed_out"],
                load_avg_1m_before=round(load, 2), worker_cpu_s_each=[round(c, 2) for c in raw["cpu_per_worker_s"]],
                worker_startup_cpu_s=round(raw["cpu_startup_s"], 2), cos_operations=raw["cos"],
                cos_http_requests=raw["cos_http"],
                kentik_requests=int(raw["kentik_requests"]),
                kafka_bytes_by_topic={k.split(".", 1)[-1]: v for k, v in raw["kafka_by_topic"].items()},
                stage_wall_seconds={k: {"sum": round(v["sum"], 2), "count": int(v["count"])}
                                    for k, v in raw["stage_seconds"].items()},
                referee=raw["referee"], stack_cpu_s_during_run=raw["stack_cpu_s"],
                machine_cpu_busy_share=measure.rnd((raw["cpu_s"] + sum(raw["stack_cpu_s"].values()))
                                                  / (raw["wall_s"] * common["cpus_available"]), 2),
                standin_sanity=standin_check(raw["stack_cpu_s"], raw["cpu_s"]),
                **common))
            if not rows[-1]["standin_sanity"]["ok"]:
                _say(f"  SANITY CHECK FAILED: stand-ins used {rows[-1]['standin_sanity']['share_of_worker_cpu']} of "
                     "the workers' CPU (limit 0.10): this run measures the stand-ins, not blueflow")
        micro = None
        if not args.no_microbench:
            index = load_index(env)
            micro = run_microbench(objects, index, flows)
            _say(f"  floor {micro['floor_us_per_flow']:.2f} µs/flow; stage functions "
                 f"{micro['stages_total_us_per_flow']:.2f} µs/flow in-process")
        for row in rows:
            if micro:
                row["floor_us_per_flow"] = measure.rnd(micro["floor_us_per_flow"], 3)
                row["cpu_over_floor"] = measure.rnd(measure.safe_div(row["worker_cpu_us_per_flow"],
                                                                    micro["floor_us_per_flow"]), 1)
                row["stage_cpu_us_per_flow_inprocess"] = micro["stages_us_per_flow"]
                row["stage_cpu_total_us_per_flow_inprocess"] = micro["stages_total_us_per_flow"]
                row["uncompressed_bytes_per_flow"] = micro["uncompressed_bytes_per_flow"]
                row["overhead_us_per_flow_outside_stages"] = measure.rnd(
                    row["worker_cpu_us_per_flow"] - micro["stages_total_us_per_flow"], 2)
        runs.extend(rows)
    scale = measure.scaling(runs)
    for r in runs:
        r["scaling_2_over_1"] = scale.get(r["workload"])
        r["targets"] = measure.TARGETS
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(runs, indent=2)
    if args.tag:
        (RESULTS_DIR / f"{sha}-{args.tag}.json").write_text(text + "\n")
    else:
        (RESULTS_DIR / "latest.json").write_text(text + "\n")
        (RESULTS_DIR / f"{sha}.json").write_text(text + "\n")
    print(measure.format_table(runs))
    print("scaling 2 workers / 1 worker (flows/s): " + ", ".join(f"{k} {v}" for k, v in scale.items()))
    print(f"CPUs: {common['cpus_available']} available (shared with the stack); commit {common['git_commit']}")
    insane = [f"{r['workload']}×{r['workers']}" for r in runs if not r["standin_sanity"]["ok"]]
    if insane:
        print(f"sanity check failed (stand-in CPU over 10 % of the workers'): {', '.join(insane)}")
    return 0 if not any(r.get("timed_out") for r in runs) and not insane else 1


if __name__ == "__main__":
    sys.exit(main())
