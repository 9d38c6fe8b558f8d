"""The fault suite's scenarios and how one is run: "nothing lost, nothing deleted early, bad input
quarantined", proved on the local stack.

Each scenario runs on the real local stack (devstack/stack/; started if needed) with two or more real workers
(IAM path, through devstack/standins/cos_auth_proxy.py, whose request log gives per-object deletion times):
`run_scenario` prepares the bucket (run.py), starts the workers, lets the scenario's family act (processes.py,
outages.py, kentik.py, hostile.py, secrets.py; `sources` and the embedded-Kafka scenarios are
runs of their own: sources.py, embedded.py), waits until the bucket holds only bad objects, and asks for the
verdict (verdict.py). The CLI (cli.py) writes every entry to faults-report.json.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from typing import Callable

import requests

from devstack import stack
from devstack.faults import embedded, hostile, kentik, outages, processes, secrets, sources
from devstack.faults.run import FaultRun, inject, prepare, progress_started, vpc_root
from devstack.faults.verdict import judge, peak_rss_mb
from devstack.synth import badinputs
from devstack.workers import wait_until

SCENARIOS = ("kill9", "sigterm", "kafka", "kentik", "s3proxy", "rebalance", "badinput", "iamvpc", "secrets",
             "overwrite", "ctrlkeys", "delete403", "secrets_debug")
SCENARIOS += ("redirect", "badbody", "slowkentik")   # a misbehaving Kentik (issue 9 items 2, 3)
SCENARIOS += ("sources",)   # two sources, one's COS failing (issue 13; sources.py)
SCENARIOS += ("huge",)   # huge objects: bounded memory, size limit (issue 9 item 7)
SCENARIOS += embedded.SCENARIOS   # the embedded Kafka killed, crashed with its worker, emptied (issue 23)
SCENARIOS += ("kentikstall",)   # Kentik redirecting 3 x --unhealthy_after: not ready, still alive (issue 22/28)
# Scenarios whose fault must meet objects still in flight: with the default groups (up to --group_objects 50
# objects whose listed size makes about one flows message, streams/stages/poll.py `groups`) a CI-sized run
# (80 objects) was done before the fault began (kentik: no POST saw the 401; overwrite: nothing left to
# overwrite); groups of 4 objects keep many messages in flight.
SMALL_GROUPS = ("kentik", "overwrite")
ACTIONS: dict[str, Callable] = {**processes.ACTIONS, **outages.ACTIONS, **kentik.ACTIONS,
                                **hostile.ACTIONS}
OVERRIDES: dict[str, dict[str, str]] = {**hostile.OVERRIDES, **kentik.OVERRIDES}


def run_scenario(name: str, env: dict[str, str], objects: int, quick: bool, seed: int,
                 log: Callable[[str], None] = print) -> dict:
    """One scenario's report entry (never raises: a broken scenario is a failed entry)."""
    t0 = time.monotonic()
    if name == "sources":  # a run of its own: two sources, steady writes, per-source latency
        entry = sources.run_sources(env, objects, quick, seed, log)
    elif name in embedded.SCENARIOS:  # a run of its own: one worker, no Kafka configured
        entry = embedded.run_embedded(name, env, objects, quick, seed, log)
    else:
        entry = _run_on_stack(name, env, objects, quick, seed, log)
    entry["details"]["wall_s"] = round(time.monotonic() - t0, 1)
    return entry


def worker_overrides(name: str) -> dict[str, str]:
    """The workers' settings for scenario `name` (before the secrets' and the IAM/VPC scenario's own)."""
    overrides = {"BLUEFLOW_UNHEALTHY_AFTER": "8" if name == "s3proxy" else "60"}
    overrides.update(OVERRIDES.get(name, {}))
    if name in SMALL_GROUPS:
        overrides["BLUEFLOW_GROUP_OBJECTS"] = "4"
    if name == "iamvpc":
        overrides["BLUEFLOW_METADATA_INTERVAL"] = "5"
    return overrides


def _run_on_stack(name: str, env: dict[str, str], objects: int, quick: bool, seed: int,
                  log: Callable[[str], None]) -> dict:
    bad_kinds = list(badinputs.BAD_KINDS) if name == "badinput" else ["not_gzip", "bad_ip"]
    overrides, restore = worker_overrides(name), []
    if name in secrets.SCENARIOS:
        armed, restore = secrets.arm(name)
        overrides.update(armed)
    run = None
    try:
        run = prepare(env, objects, seed=seed, bad_kinds=bad_kinds, log=log)
        if name == "iamvpc":  # prepare() reset the stand-ins: inject after it
            inject(vpc_root(env), {"status": 500, "count": 0, "path_prefix": "/"})
            # the first IAM token fetches fail too, whichever client asks first (the leader's VPC tokens, or a
            # worker's first COS token: an outage to wait out, never "check IBM_COS_API_KEY")
            inject(env["BLUEFLOW_IAM_URL"], {"status": 500, "count": 4, "path_prefix": "/identity"})
        run.worker_overrides = overrides
        entry = _fault_and_verdict(run, name, random.Random(seed), quick)
    except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
        entry = {"scenario": name, "owed": None, "accepted": None, "pending": None, "lost": None, "duplicates": None,
                 "early_deletes": None, "recovery_s": None, "ok": False,
                 "peak_rss_mb": peak_rss_mb(run) if run else None, "problems": [f"{type(exc).__name__}: {exc}"],
                 "details": {"run_id": run.run_id if run else None}}
        if run is not None:
            run.stop_all()
    finally:
        _restore_stack(restore)
    return entry


def _fault_and_verdict(run: FaultRun, name: str, rng: random.Random, quick: bool) -> dict:
    """Start the workers, let the fault act, wait for the drain, stop the workers, judge."""
    run.started_at = time.time()
    run.start("w1")
    run.start("w2")
    if name in secrets.SCENARIOS:
        secrets.start_hmac_worker(run)
    if not progress_started(run):
        run.notes.setdefault("problems", []).append("no object finished within 120 s of the start")
    run.notes["good_left_at_fault_start"] = len(run.bucket_keys() - run.bad_keys)
    fault_end = ACTIONS[name](run, rng, quick)
    drained = _drain(run, name, 300 if quick else 900)
    drained_at = time.time() if drained else None
    texts = secrets.metrics_pages(run) if name in secrets.SCENARIOS else []
    if name == "iamvpc":
        logs = "".join(w.log_path.read_text(errors="replace") for w in run.all_workers() if w.log_path.exists())
        run.notes["metadata_fallback_logged"] = "enrichment falls back" in logs or "ids from the object keys" in logs
    run.stop_all()
    if name in secrets.SCENARIOS:
        secrets.check(run, name, texts)
    return judge(run, name, fault_end, drained_at)


def _drain(run: FaultRun, name: str, timeout: float) -> bool:
    """Wait until the bucket is drained; for `iamvpc` with the VPC API back and /readyz watched meanwhile."""
    if name != "iamvpc":
        return wait_until(run.drained, timeout, 2.0)
    requests.post(vpc_root(run.env) + "/_emulator/reset", timeout=10)
    drained, samples = outages.wait_drained_watching_health(run, timeout)
    samples = run.notes.pop("_healthz_samples", []) + samples
    run.notes["healthz"] = dict(Counter(status for _, status, _ in samples))
    run.notes.setdefault("problems", []).extend(outages.iamvpc_health_problems(drained, samples))
    return drained


def _restore_stack(restore: list[tuple[str, list[str]]]) -> None:
    """Stand-ins back on their own command lines; never leave the stack broken."""
    for component, cmd in restore:
        stack.stop_component(component)
        stack.start_component(component, cmd=cmd)
    for component in ("kafka", "s3proxy", "s3proxy-open"):
        if not any(r["name"] == component and r["alive"] for r in stack.status()):
            stack.start_component(component)
