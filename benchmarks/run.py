"""`python -m benchmarks.run [--quick] [--workloads W1,W2] [--workers 1,2] [--sink kentik,ipfix]`: end-to-end
benchmark on the real stack.

For each workload (benchmarks/workloads.py), sink (benchmarks/sinks.py) and worker count: empty the bucket,
reset the Kentik stand-in (or start an nfcapd for the ipfix sink), upload the same seeded objects, start N real
`blueflow worker` processes on a fresh run id (topic prefix and app id), and measure until the bucket is
drained: flows/s and objects/s, worker CPU (from /proc, before the workers exit), peak RSS (VmHWM), COS HTTP
requests (the poller's listings counted at the production poll interval of 30 s: measure.cos_requests) and
Kentik bytes (/metrics), Kafka bytes (the run's partition directories in the stack's Kafka log dir),
latency from each object's LastModified to the arrival of its last record, and the referee's lost/duplicates
(benchmarks/sinks.py: the Kentik stand-in's flows, or what nfdump read from nfcapd). Each row names its sink.
Then, on the same objects in-process: the floor (gunzip + orjson.loads) and CPU per stage
(benchmarks/microbench.py). Writes benchmarks/results/latest.json and results/<git short sha>.json and prints
a table. W3 (steady state: objects written at a constant rate while the workers run) is measured by
benchmarks/steady.py.
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

from benchmarks import measure, probes
from benchmarks.probes import stack_cpu_s, standin_check
from benchmarks.sinks import SINKS, make_sink
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


def _drain(workers, client, bucket: str, n_obj: int, t0: float, timeout_s: float) -> tuple[float | None, dict]:
    """Poll until every object was deleted and the bucket is empty (monotonic end time) or the timeout (None);
    also each worker's CPU once it first answered (its start-up)."""
    from connectors.cos import list_objects

    startup_cpu: dict[int, float] = {}
    while time.monotonic() - t0 <= timeout_s:
        deleted = 0
        for i, w in enumerate(workers):
            if not w.alive:
                raise RuntimeError(f"worker {w.name} exited:\n{w.log_tail(30)}")
            info = w.info(timeout=2.0)
            if info is None:
                continue
            if i not in startup_cpu:
                startup_cpu[i] = probes.proc_cpu_s(w.proc.pid) or 0.0
            deleted += int((info.get("counts") or {}).get("objects_deleted", 0))
        if deleted >= n_obj and not any(True for _ in list_objects(client, bucket, "")):
            return time.monotonic(), startup_cpu
        time.sleep(1.0)  # workers' /service/info at most once a second
    return None, startup_cpu


def _stop_all(workers) -> None:
    threads = [threading.Thread(target=w.stop, args=(20.0,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def run_once(env: dict, wl, objects: list, n_workers: int, *, sink_name: str, cos_auth: str,
             timeout_s: float) -> dict:
    """One isolated pipeline run of `objects` with `n_workers` workers and sink `sink_name`; raw measurements."""
    from connectors.cos import list_objects
    from devstack.stack.bucket import empty_bucket, hmac_client
    from devstack.stack import env as stack_env
    from devstack.synth.writer import write_objects
    from devstack.workers import WorkerProcess, run_environment

    bucket = env["BLUEFLOW_BUCKET"]
    client = hmac_client(env)
    empty_bucket(client, bucket)
    run_id = f"bench{wl.name.lower()}{sink_name}w{n_workers}{uuid.uuid4().hex[:6]}"
    sink = make_sink(sink_name, env, run_id)
    try:
        up = write_objects(client, bucket, objects)
        if up.failed:
            raise RuntimeError(f"upload failed for {len(up.failed)} objects, e.g. {up.failed[0]}")
        uploaded = {o.key: o.last_modified / 1000.0 for o in list_objects(client, bucket, "")}
        # every object is written before the workers start: they list at production's rate (the first listing
        # finds them all), so the listings' CPU counts as it would in production, not 15 times over
        overrides = {"BLUEFLOW_POLL_INTERVAL": f"{measure.PRODUCTION_POLL_S:g}", **sink.worker_overrides()}
        if cos_auth == "iam":
            overrides.update({"BLUEFLOW_COS_ENDPOINT": env["BLUEFLOW_COS_IAM_ENDPOINT"],
                              "BLUEFLOW_COS_HMAC_ACCESS_KEY": "", "BLUEFLOW_COS_HMAC_SECRET_KEY": ""})
        worker_env = run_environment(env, run_id, **overrides)
        workers = [WorkerProcess(f"w{i}", worker_env, stack_env.state_dir() / "logs" / run_id)
                   for i in range(n_workers)]
        stack_before = stack_cpu_s()
        t0 = time.monotonic()
        for w in workers:
            w.start()
        try:
            t_end, startup_cpu = _drain(workers, client, bucket, len(objects), t0, timeout_s)
            wall = (t_end or time.monotonic()) - t0
            cpu = [probes.proc_cpu_s(w.proc.pid) or 0.0 for w in workers]
            hwm = [probes.proc_hwm_kb(w.proc.pid) or 0 for w in workers]
            samples = measure.merge_samples(probes.worker_metrics(w.port) for w in workers)
            stack_after = stack_cpu_s()
            collector_cpu = sink.collector_cpu_s()
        finally:
            _stop_all(workers)
        kafka = probes.kafka_run_bytes(stack_env.state_dir() / "kafka-data", run_id)
        t_ref = time.monotonic()
        referee, latencies = sink.referee(objects, uploaded)
    finally:
        sink.close()
    probes.delete_run_topics(env, list(kafka))
    referee["sent"] = int(measure.metric_sum(samples, sink.sent_metric))
    if sink_name == "ipfix":
        referee["pace_wait_s"] = round(measure.metric_sum(samples, "blueflow_ipfix_pace_wait_seconds_total"), 1)
    _say(f"  referee ({sink_name}): owed {referee['owed']}, sent {referee['sent']}, arrived {referee['accepted']}, "
         f"lost {referee['lost']}, duplicates {referee['duplicates']}"
         + (f", collector socket drops {referee['collector_socket_drops']}" if sink_name == "ipfix" else "")
         + f" ({time.monotonic() - t_ref:.0f}s)")
    cos = measure.cos_operations(samples)
    requests_ = measure.cos_requests(samples, float(worker_env["BLUEFLOW_POLL_INTERVAL"]))
    return {"run_id": run_id, "wall_s": wall, "timed_out": t_end is None, "cpu_s": sum(cpu),
            "cpu_per_worker_s": cpu, "cpu_startup_s": sum(startup_cpu.values()), "hwm_kb": hwm,
            "kafka_by_topic": kafka, "kafka_bytes": sum(kafka.values()), "cos": cos,
            "cos_requests": requests_["at_production_poll"], "cos_http": requests_,
            "kentik_bytes": measure.metric_sum(samples, "blueflow_kentik_request_bytes_total"),
            "kentik_requests": measure.metric_sum(samples, "blueflow_kentik_requests_total"),
            "stage_seconds": measure.stage_seconds(samples), "latencies": latencies,
            "stack_cpu_s": {k: round(v - stack_before.get(k, 0.0), 2) for k, v in stack_after.items()},
            "collector_cpu_s": collector_cpu, "referee": referee}


def run_row(name: str, wl, n: int, sink: str, objects: list, raw: dict, common: dict, load: float) -> dict:
    """One report row (benchmarks/measure.build_run_row) from a run's raw measurements."""
    flows = sum(o.flow_count for o in objects)
    row = measure.build_run_row(
        workload=name, workers=n, objects=len(objects), flows=flows, chf=sum(o.chf_count for o in objects),
        wall_s=raw["wall_s"], cpu_s=raw["cpu_s"], cpu_startup_s=raw["cpu_startup_s"], floor_us_per_flow=None,
        peak_rss_kb=raw["hwm_kb"], kafka_bytes=raw["kafka_bytes"], kentik_bytes=raw["kentik_bytes"],
        cos_requests=raw["cos_requests"], latencies_s=raw["latencies"], sink=sink,
        workload_label=wl.label, run_id=raw["run_id"], timed_out=raw["timed_out"],
        load_avg_1m_before=round(load, 2), worker_cpu_s_each=[round(c, 2) for c in raw["cpu_per_worker_s"]],
        worker_startup_cpu_s=round(raw["cpu_startup_s"], 2), cos_operations=raw["cos"],
        cos_http_requests=raw["cos_http"],
        kentik_requests=int(raw["kentik_requests"]),
        kafka_bytes_by_topic={k.split(".", 1)[-1]: v for k, v in raw["kafka_by_topic"].items()},
        stage_wall_seconds={k: {"sum": round(v["sum"], 2), "count": int(v["count"])}
                            for k, v in raw["stage_seconds"].items()},
        referee=raw["referee"], stack_cpu_s_during_run=raw["stack_cpu_s"],
        collector_cpu_s=measure.rnd(raw["collector_cpu_s"], 2),
        machine_cpu_busy_share=measure.rnd((raw["cpu_s"] + sum(raw["stack_cpu_s"].values())
                                            + (raw["collector_cpu_s"] or 0.0))
                                           / (raw["wall_s"] * common["cpus_available"]), 2),
        standin_sanity=standin_check(raw["stack_cpu_s"], raw["cpu_s"]),
        kentik_chf_check="deferred" if sink == "kentik" else None,  # benchmarks/sinks.py reset_kentik
        **common)
    if not row["standin_sanity"]["ok"]:
        _say(f"  SANITY CHECK FAILED: stand-ins used {row['standin_sanity']['share_of_worker_cpu']} of "
             "the workers' CPU (limit 0.10): this run measures the stand-ins, not blueflow")
    return row


def add_microbench(row: dict, micro: dict) -> None:
    """The in-process floor and (for the Kentik sink, whose stages microbench runs) the per-stage CPU."""
    row["floor_us_per_flow"] = measure.rnd(micro["floor_us_per_flow"], 3)
    row["cpu_over_floor"] = measure.rnd(measure.safe_div(row["worker_cpu_us_per_flow"],
                                                        micro["floor_us_per_flow"]), 1)
    row["uncompressed_bytes_per_flow"] = micro["uncompressed_bytes_per_flow"]
    if row["sink"] == "kentik":
        row["stage_cpu_us_per_flow_inprocess"] = micro["stages_us_per_flow"]
        row["stage_cpu_total_us_per_flow_inprocess"] = micro["stages_total_us_per_flow"]
        row["overhead_us_per_flow_outside_stages"] = measure.rnd(
            row["worker_cpu_us_per_flow"] - micro["stages_total_us_per_flow"], 2)


def parse_args(argv: list[str] | None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="much smaller workloads (smoke test)")
    p.add_argument("--workloads", default="W1,W2")
    p.add_argument("--workers", default="1,2")
    p.add_argument("--sink", default="kentik",
                   help="sinks to run, comma-separated: kentik (the stand-in), ipfix (an nfcapd on 127.0.0.1), "
                        "or kentik,ipfix for both side by side")
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
    args.sinks = [x.strip() for x in args.sink.split(",") if x.strip()]
    if not args.sinks or set(args.sinks) - set(SINKS):
        p.error(f"--sink: expected one or more of {', '.join(SINKS)}, got {args.sink!r}")
    return args


def run_workload(env: dict, world, name: str, wl, args, common: dict) -> list[dict]:
    """Every (sink, worker count) run of one workload, plus its in-process microbenchmark."""
    from benchmarks.microbench import load_index, run_microbench

    t = time.monotonic()
    objects = build_objects(world, wl)
    flows = sum(o.flow_count for o in objects)
    _say(f"{name} ({wl.label}): {len(objects)} objects, {flows} flows, {sum(o.chf_count for o in objects)} "
         f"kflow records (generated in {time.monotonic() - t:.1f}s)")
    rows = []
    for sink in args.sinks:
        for n in (int(x) for x in args.workers.split(",") if x.strip()):
            load = os.getloadavg()[0]
            _say(f"{name} with {n} worker(s), {sink} sink…")
            raw = run_once(env, wl, objects, n, sink_name=sink, cos_auth=args.cos_auth, timeout_s=args.timeout)
            _say(f"  {raw['wall_s']:.1f}s wall, {raw['cpu_s']:.1f}s worker CPU"
                 + (" (TIMED OUT)" if raw["timed_out"] else ""))
            rows.append(run_row(name, wl, n, sink, objects, raw, common, load))
    if not args.no_microbench:
        micro = run_microbench(objects, load_index(env), flows)
        _say(f"  floor {micro['floor_us_per_flow']:.2f} µs/flow; stage functions "
             f"{micro['stages_total_us_per_flow']:.2f} µs/flow in-process")
        for row in rows:
            add_microbench(row, micro)
    return rows


def steady_rows(env: dict, objects: list, args, common: dict) -> list[dict]:
    """W3 with each worker count (benchmarks/steady.py; Kentik sink)."""
    from benchmarks.steady import run_steady, steady_row

    rows = []
    flows = sum(o.flow_count for o in objects)
    for n in (int(x) for x in args.workers.split(",") if x.strip()):
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
    args = parse_args(argv)
    from dataclasses import replace

    from devstack import stack
    from devstack.synth.worldgen import build_world

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
    for name in (w.strip().upper() for w in args.workloads.split(",") if w.strip()):
        if name == "W3":
            runs.extend(steady_rows(env, build_objects(world, defs[name]), args, common))
        else:
            runs.extend(run_workload(env, world, name, defs[name], args, common))
    scale = measure.scaling(runs)
    for r in runs:
        r["scaling_2_over_1"] = scale.get(measure.scaling_key(r))
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
    insane = [f"{r['workload']}×{r['workers']} {r['sink']}" for r in runs if not r["standin_sanity"]["ok"]]
    if insane:
        print(f"sanity check failed (stand-in CPU over 10 % of the workers'): {', '.join(insane)}")
    lossy = [f"{r['workload']}×{r['workers']} {r['sink']}: {r['referee']['lost']}" for r in runs
             if r["referee"]["lost"]]
    if lossy:
        print(f"referee: records lost in {', '.join(lossy)}")
    return 0 if not any(r.get("timed_out") for r in runs) and not insane and not lossy else 1


if __name__ == "__main__":
    sys.exit(main())
