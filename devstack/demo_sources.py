"""`./dev demo --sources N`: the demo with N sources served by one deployment (devstack/sources_stack.py).

Each source has its own bucket and IAM API key (through the COS auth proxy), objects from its own world (other
subnets and addresses), and its own Kentik plan and export. The workers read one configuration file. The
summary adds, per source, what was written and owed, what the pipeline counted for it (its `source`
metrics), what the Kentik stand-in accepted on that source's devices, and the plans/exports of those
devices — each source's flows must reach its own export, nothing crossing.
"""
from __future__ import annotations

import time
from pathlib import Path

import requests

from devstack.stack import env as stack_env
from devstack.sources_stack import (generate_for, own_flows, prepare_buckets, remove_buckets, stack_sources,
                                    write_config)
from devstack.workers import WorkerProcess, run_environment, sum_counts

PER_SOURCE_METRICS = {"objects_completed": "blueflow_source_objects_completed_total",
                      "kflow_delivered": "blueflow_source_chf_delivered_total"}


def source_counts(metrics_texts: list[str]) -> dict[str, dict[str, int]]:
    """{source: {objects_completed, kflow_delivered}} summed over the workers' /metrics pages."""
    from streams.ops.status import add_up, by_label, parse_metrics

    out: dict[str, dict[str, int]] = {}
    for key, metric in PER_SOURCE_METRICS.items():
        total = add_up([by_label(parse_metrics(text), metric, "source") for text in metrics_texts])
        for source, value in total.items():
            out.setdefault(source, {})[key] = value
    return out


def source_summary(objects: list, counts: dict[str, int], accepted: list[dict], devices: dict[str, dict],
                   left: set[str]) -> dict:
    """One source's line of the summary (pure): written/owed vs counted vs accepted, and its devices' plans."""
    good = [o for o in objects if o.kind in ("good", "empty")]
    own_devices = {f["device_name"] for f in accepted}
    return {"objects_written": len(objects), "flows_written": sum(o.flow_count for o in good),
            "kflow_owed": sum(o.chf_count for o in good), "kflow_delivered": counts.get("kflow_delivered", 0),
            "kflow_accepted_by_kentik": len(accepted), "objects_completed": counts.get("objects_completed", 0),
            "objects_deleted": len({o.key for o in good} - left), "left_in_bucket": len(left),
            "exports": sorted({f"plan {devices[d].get('plan_id')} export {devices[d].get('cloud_export_id')}"
                               for d in own_devices if d in devices})}


def run_sources_demo(env: dict[str, str], started: float, *, count: int, objects: int, mean_flows: int, bad: int,
                     workers: int, seed: int, timeout_s: float, say) -> dict:
    """The demo with `count` sources (`objects` and `bad` per source); the summary dict (with "ok")."""
    from devstack.stack.bucket import hmac_client

    client = hmac_client(env)
    run_id = f"blueflow-demo-{int(time.time())}"
    sources = stack_sources(env, run_id, count)
    removed = prepare_buckets(client, sources)
    requests.post(env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/reset", timeout=5)
    generated = {s.name: generate_for(env, s, objects=objects, seed=seed + i, mean_flows=mean_flows, bad=bad)
                 for i, s in enumerate(sources)}
    from devstack.synth.writer import write_objects

    for s in sources:
        failed = write_objects(client, s.bucket, generated[s.name]).failed
        if failed:
            raise SystemExit(f"demo: {len(failed)} objects could not be written to {s.bucket}, e.g. {failed[0]}")
        say(f"demo: source {s.name}: bucket {s.bucket!r} ({'key A' if s.api_key == stack_env.DEV_API_KEY else 'key B'}), "
            f"plan {s.plan_id}, export {s.export_id}: wrote {len(generated[s.name])} objects")
    say(f"demo: removed {removed} old objects")
    log_dir = Path(env.get("BLUEFLOW_DEVSTACK_DIR", stack_env.state_dir())) / "logs" / run_id
    worker_env = run_environment(env, run_id, **write_config(log_dir / "blueflow.yaml", env, sources))
    procs = [WorkerProcess(f"worker-{i + 1}", worker_env, log_dir).start() for i in range(workers)]
    say(f"demo: started {workers} workers with {log_dir / 'blueflow.yaml'} (logs in {log_dir})")
    bad_keys = {o.key for objs in generated.values() for o in objs if o.kind not in ("good", "empty")}
    try:
        done, left, counts = _watch(client, sources, procs, bad_keys, started, timeout_s, say)
        texts = [_metrics(p) for p in procs]
    finally:
        for p in procs:
            p.stop()
    summary = _summary(env, sources, generated, texts, left, done, started, say)
    remove_buckets(client, sources, keep=env["BLUEFLOW_BUCKET"])
    return dict(summary, deadlettered=counts.get("deadlettered", 0))


def _watch(client, sources, procs, bad_keys: set[str], started: float, timeout_s: float, say) -> tuple:
    """Progress lines until every bucket holds only its bad objects; (done, {source: keys left}, counts)."""
    from connectors.cos import list_objects

    left: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    while time.monotonic() - started < timeout_s:
        time.sleep(2)
        dead = [p.name for p in procs if not p.alive]
        if dead:
            raise SystemExit(f"demo: worker(s) {dead} exited; last log lines:\n{procs[0].log_tail()}")
        left = {s.name: {o.key for o in list_objects(client, s.bucket, "")} for s in sources}
        counts = sum_counts([p.info() for p in procs])
        say(f"  delivered {counts.get('objects_completed', 0):>5}  quarantined {counts.get('deadlettered', 0):>3}  "
            f"kflow {counts.get('chf_delivered', 0):>8}  in buckets "
            + "  ".join(f"{name} {len(keys):>4}" for name, keys in left.items()))
        if all(keys <= bad_keys for keys in left.values()) and counts.get("deadlettered", 0) >= len(bad_keys):
            return True, left, counts
    return False, left, counts


def _metrics(proc) -> str:
    try:
        return requests.get(f"http://127.0.0.1:{proc.port}/metrics", timeout=5).text
    except requests.RequestException:
        return ""


def _summary(env, sources, generated, texts, left, done, started, say) -> dict:
    flows = requests.get(env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/flows", timeout=60).json()["flows"]
    devices = {d["device_name"]: d for d in
               requests.get(env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/devices", timeout=30).json()["devices"]}
    counts = source_counts(texts)
    per_source = {s.name: source_summary(generated[s.name], counts.get(s.name, {}), own_flows(generated[s.name], flows),
                                         devices, left.get(s.name, set())) for s in sources}
    for name, line in per_source.items():
        say(f"demo: {name}: kflow owed {line['kflow_owed']}, delivered {line['kflow_delivered']}, Kentik accepted "
            f"{line['kflow_accepted_by_kentik']} ({', '.join(line['exports'])}); objects deleted "
            f"{line['objects_deleted']}, left {line['left_in_bucket']}")
    say(f"demo: {'finished' if done else 'TIMED OUT'} in {time.monotonic() - started:.1f}s")
    crossed = len(flows) - sum(line["kflow_accepted_by_kentik"] for line in per_source.values())
    ok = done and not crossed and all(
        line["kflow_owed"] == line["kflow_delivered"] == line["kflow_accepted_by_kentik"] and len(line["exports"]) <= 1
        for line in per_source.values())
    return {"objects_written": sum(v["objects_written"] for v in per_source.values()),
            "flows_written": sum(v["flows_written"] for v in per_source.values()),
            "kflow_delivered": sum(v["kflow_delivered"] for v in per_source.values()),
            "objects_deleted": sum(v["objects_deleted"] for v in per_source.values()),
            "sources": per_source, "ok": ok}
