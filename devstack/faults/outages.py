"""Fault scenarios of the dependencies going away: `kafka` (the broker stopped and started again), `s3proxy`
(COS 5xx and dropped connections on reads and deletes, then both S3Proxy instances down), `iamvpc` (the VPC
API failing throughout, then IAM too: enrichment degrades, nothing stalls)."""
from __future__ import annotations

import random
import time

from devstack import stack
from devstack.faults import phase
from devstack.faults.run import FaultRun, inject, readyz
from devstack.workers import wait_until


def fault_kafka(run: FaultRun, rng: random.Random, quick: bool) -> float:
    time.sleep(rng.uniform(2.0, 4.0))
    phase.feed(run, 8, seed=rng.randrange(1 << 30))  # fresh work in the bucket when Kafka stops
    run.mark("Kafka stopped")
    stack.stop_component("kafka")
    down = 10 if quick else 20
    time.sleep(down)
    stack.start_component("kafka")
    run.notes["kafka_down_s"] = down
    return time.time()


def fault_s3proxy(run: FaultRun, rng: random.Random, quick: bool) -> float:
    """COS 5xx and drops on reads and deletes, then S3Proxy down. Fresh objects written after the faults
    were armed take them (a failed request is retried, taking the next), and their deletes are refused until
    S3Proxy is stopped, so workers hold work in flight during the outage whatever the pipeline's speed."""
    bucket = run.env["BLUEFLOW_BUCKET"]
    n = 5 if quick else 15
    inject(run.proxy, {"status": 500, "count": n, "method": "GET", "path_prefix": f"/{bucket}/"},
           {"status": 503, "count": n, "method": "POST", "path_prefix": f"/{bucket}"},
           {"drop": True, "count": 2, "method": "GET", "path_prefix": f"/{bucket}/"})
    injected = 2 * n + 2
    phase.hold_deletes(run)  # queued after the counted faults: those are taken first
    fresh = phase.feed(run, 8 if quick else 20, seed=rng.randrange(1 << 30))
    held = wait_until(lambda: phase.pending_faults(run.proxy) == 2
                      and phase.faults_applied(run.proxy) > injected, 120, 1)
    run.notes["written_for_outage"] = len(fresh)
    run.notes["good_left_at_outage"] = len(run.bucket_keys() - run.bad_keys)  # exact: deletes are refused
    if not held:
        run.notes.setdefault("problems", []).append("not exercised: COS faults not all applied, or no delete "
                                                    "was held, within 120 s of writing the fresh objects")
    for name in ("s3proxy", "s3proxy-open"):
        stack.stop_component(name)
    run.mark("S3Proxy stopped")
    run.notes["faults_applied"] = run.notes["cos_faults_applied"] = phase.faults_applied(run.proxy)
    phase.release(run.proxy)  # the outage refuses the deletes now
    down = 15 if quick else 30
    seen: list[tuple[int, list]] = []
    end = time.monotonic() + down
    while time.monotonic() < end:
        seen += [readyz(w) for w in run.live()]
        time.sleep(2)
    for name in ("s3proxy", "s3proxy-open"):
        stack.start_component(name)
    run.notes["s3proxy_down_s"] = down
    run.notes["unhealthy_seen_while_down"] = any(code == 503 for code, _ in seen)
    run.notes["problems_while_down"] = sorted({p[:160] for code, ps in seen if code == 503 for p in ps})[:4]
    return time.time()


def fault_iamvpc(run: FaultRun, rng: random.Random, quick: bool) -> float:
    """The VPC API fails throughout (armed before the start); now IAM fails too, met by a worker that joins
    with fresh work (it must get a COS token before it can read anything)."""
    iam = run.env["BLUEFLOW_IAM_URL"]
    time.sleep(2)
    phase.feed(run, 8, seed=rng.randrange(1 << 30))
    before = phase.faults_applied(iam)
    inject(iam, {"status": 500, "count": 3, "path_prefix": "/identity"},
           {"status": 503, "count": 3, "path_prefix": "/identity"})
    run.mark("IAM token service failing, w3 joins")
    run.start("w3")
    samples = run.notes.setdefault("_healthz_samples", [])  # /readyz during the fault too (see run_scenario)

    def faults_consumed() -> bool:
        samples.extend((w.name, *readyz(w)) for w in run.live())
        return not phase.pending_faults(iam)

    wait_until(faults_consumed, 60, 2)
    run.notes["faults_applied"] = phase.faults_applied(iam) - before
    return time.time()


def wait_drained_watching_health(run: FaultRun, timeout_s: float) -> tuple[bool, list[tuple[str, int, list]]]:
    """Wait until the bucket is drained, sampling every live worker's /readyz meanwhile (every ~2 s)."""
    samples: list[tuple[str, int, list]] = []

    def check() -> bool:
        samples.extend((w.name, *readyz(w)) for w in run.live())
        return run.drained()

    return wait_until(check, timeout_s, 2.0), samples


def iamvpc_health_problems(drained: bool, samples: list[tuple[str, int, list]]) -> list[str]:
    """IAM/VPC API failures only degrade enrichment: no worker may turn unhealthy over them. And if the
    pipeline stalled anyway, /readyz must have said so, naming the stuck stage or the failing step."""
    unhealthy = [(name, problems) for name, status, problems in samples if status == 503]
    if drained and unhealthy:
        return [f"/readyz failed during IAM/VPC API faults (they must only degrade enrichment): {unhealthy[:2]}"]
    if not drained and not any(p.startswith("stage ") or "keeps failing" in p for _, ps in unhealthy for p in ps):
        return ["pipeline stalled but no worker's /readyz reported a stuck stage or a failing step"]
    return []


ACTIONS = {"kafka": fault_kafka, "s3proxy": fault_s3proxy, "iamvpc": fault_iamvpc}
