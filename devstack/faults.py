"""The fault suite: "nothing lost, nothing deleted early, bad input quarantined", proved on the local stack.

`python -m devstack.faults [--quick] [--scenarios a,b] [--objects N]` runs each scenario on the real local
stack (devstack/stack.py; started if needed) with two or more real workers (IAM path, through
devstack/cos_auth_proxy.py, whose request log gives per-object deletion times), injects its faults, waits
until the bucket holds only bad objects, and asks the referee (devstack/referee.py) what was owed and what
Kentik accepted. It writes `faults-report.json` in the working directory: one entry per scenario with
scenario, owed, accepted, pending, lost, duplicates, early_deletes, recovery_s, peak_rss_mb and details, and
prints them as a table (devstack/fault_report.py). Exit code 0 when every scenario has lost == 0 and
early_deletes == 0 (and its own checks passed, e.g. the bucket drained). Scenario actions live here and in
devstack/hostile.py, devstack/fault_peers.py (a misbehaving Kentik) and devstack/fault_huge.py.

pending counts owed records not accepted whose object is still in the bucket (not delivered yet: a slow or
stalled run, reported as "bucket not drained"); lost counts owed records not accepted whose object is gone.

early_deletes counts objects whose deletion began before their last owed record was accepted, objects
deleted with owed records missing, and bad objects deleted at all. recovery_s is the time from the end of
the fault (component back, faults cleared, last worker restarted) until the bucket was drained.
peak_rss_mb is the largest peak resident memory (VmHWM) of any worker of the scenario.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from devstack import fault_embedded, fault_huge, fault_peers, fault_phase, fault_readiness, fault_report, hostile, stack
from devstack.logscan import check_debug_scan, debug_secrets_overrides
from devstack.referee import accepted_record, compare, owed_records
from devstack.workers import WorkerProcess, run_environment, wait_until

SCENARIOS = ("kill9", "sigterm", "kafka", "kentik", "s3proxy", "rebalance", "badinput", "iamvpc", "secrets",
             "overwrite", "ctrlkeys", "delete403", "secrets_debug")
SECRET_SCENARIOS = ("secrets", "secrets_debug")
SCENARIOS += ("redirect", "badbody", "slowkentik")   # a misbehaving Kentik (issue 9 items 2, 3)
SCENARIOS += ("sources",)   # two sources, one's COS failing (issue 13; devstack/fault_sources.py)
SCENARIOS += ("huge",)   # huge objects: bounded memory, size limit (issue 9 item 7)
SCENARIOS += fault_embedded.SCENARIOS   # the embedded Kafka killed, crashed with its worker, emptied (issue 23)
SCENARIOS += ("kentikstall",)   # Kentik redirecting 3 x --unhealthy_after: not ready, still alive (issue 22/28)
# Scenarios whose fault must meet objects still in flight: with groups of 50 a CI-sized run (80 objects) was done
# before the fault began (kentik: no POST saw the 401; overwrite: nothing left to overwrite).
SMALL_GROUPS = ("kentik", "overwrite")
QUICK_DEFAULT = ("kill9", "sigterm", "kentik", "s3proxy", "badinput", "secrets")
SECRET_IAM = "BFSECRET-iam-7f3a9c1e5d"
SECRET_KENTIK = "BFSECRET-kentik-2b8e6d4a0c"


# ---------------------------------------------------------------- a run: bucket, workers, observations

@dataclass
class FaultRun:
    """One scenario's isolated run: topic prefix, generated objects, workers, stand-in endpoints."""

    env: dict[str, str]
    run_id: str
    objects: list
    bad_keys: set[str]
    log_dir: Path
    worker_overrides: dict[str, str] = field(default_factory=dict)
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    retired: list[WorkerProcess] = field(default_factory=list)
    kentik_before: list[dict] = field(default_factory=list)  # flows saved before a stand-in restart
    notes: dict = field(default_factory=dict)
    rewritten_at: dict[str, float] = field(default_factory=dict)  # key -> when the scenario overwrote it
    written_at: dict[str, float] = field(default_factory=dict)  # key -> when it was written (fault_phase)
    fault_events: list[tuple[str, float]] = field(default_factory=list)  # (what, when) the fault acted
    started_at: float = 0.0  # when the first worker was started

    def mark(self, what: str) -> None:
        """The fault acts now (a kill, a stop, an outage begins, faults armed for new work): its verdict
        counts the objects pending at this moment (devstack/fault_phase.py)."""
        self.fault_events.append((what, time.time()))

    @property
    def good(self) -> list:
        return [o for o in self.objects if o.key not in self.bad_keys]

    @property
    def proxy(self) -> str:
        return self.env["BLUEFLOW_COS_IAM_ENDPOINT"]

    def worker_env(self, **overrides: str) -> dict[str, str]:
        base = {"BLUEFLOW_COS_ENDPOINT": self.env["BLUEFLOW_COS_IAM_ENDPOINT"], "BLUEFLOW_COS_HMAC_ACCESS_KEY": "",
                "BLUEFLOW_COS_HMAC_SECRET_KEY": "", "BLUEFLOW_CHUNK_FLOWS": "40"}
        base.update(self.worker_overrides)
        base.update(overrides)
        return run_environment(self.env, self.run_id, **base)

    def start(self, name: str, **overrides: str) -> WorkerProcess:
        old = self.workers.get(name)
        if old is not None:
            self.retired.append(old)
        worker = WorkerProcess(name, self.worker_env(**overrides), self.log_dir, ("--devstack",)).start()
        self.workers[name] = worker
        return worker

    def live(self) -> list[WorkerProcess]:
        return [w for w in self.workers.values() if w.alive]

    def leader(self) -> WorkerProcess | None:
        for w in self.live():
            info = w.info()
            if info and info.get("leader"):
                return w
        return None

    def stop_all(self) -> None:
        for w in list(self.workers.values()):
            w.stop(20)

    def bucket_keys(self) -> set[str]:
        from connectors.cos import list_objects
        from devstack.demo import hmac_client

        return {o.key for o in list_objects(hmac_client(self.env), self.env["BLUEFLOW_BUCKET"], "")}

    def drained(self) -> bool:
        try:
            return self.bucket_keys() <= self.bad_keys and len(self.deadletters()) >= len(self.bad_keys)
        except Exception:  # noqa: BLE001 - S3Proxy may be down during the fault
            return False

    def deadletters(self) -> dict[str, list[dict]]:
        from streams.formats.avro import Codec

        if not self.bad_keys:
            return {}
        codec = Codec("deadletter")
        out: dict[str, list[dict]] = {}
        for _, value, _ in read_topic(self.env, f"{self.run_id}.deadletter", 10):
            record = codec.decode(value)
            out.setdefault(record["key"], []).append(record)
        return out

    def flows(self) -> list[dict]:
        reply = requests.get(self.env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/flows", timeout=600)  # huge: ~1M
        reply.raise_for_status()
        return self.kentik_before + reply.json()["flows"]

    def proxy_requests(self) -> list[dict]:
        reply = requests.get(self.proxy + "/_emulator/requests", timeout=60)
        reply.raise_for_status()
        return reply.json()["requests"]

    def all_workers(self) -> list[WorkerProcess]:
        return self.retired + list(self.workers.values())


def read_topic(env: dict[str, str], topic: str, timeout_s: float = 10.0) -> list[tuple[bytes, bytes, int]]:
    """Every message of `topic` (key, value, timestamp ms), from the beginning to the current end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": env["BLUEFLOW_KAFKA_BOOTSTRAP"], "group.id": f"faults-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10)
        if topic not in meta.topics or meta.topics[topic].error is not None:
            return []
        partitions = sorted(meta.topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        starts = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0] for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out, positions = [], dict(starts)
        deadline = time.monotonic() + timeout_s
        while any(positions[p] < ends[p] for p in partitions) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            positions[msg.partition()] = msg.offset() + 1
            out.append((msg.key(), msg.value(), msg.timestamp()[1]))
        return out
    finally:
        consumer.close()


def prepare(env: dict[str, str], objects: int, *, seed: int, bad_kinds: list[str] | None = None,
            mean_flows: float = 30, log: Callable[[str], None] = print) -> FaultRun:
    """Empty bucket, Kentik stand-in and proxy log reset; the generated objects written."""
    from devstack.demo import empty_bucket, hmac_client
    from devstack.generator import generate_objects, write_objects
    from devstack.world import build_world

    client = hmac_client(env)
    empty_bucket(client, env["BLUEFLOW_BUCKET"])
    for url in (env["BLUEFLOW_KENTIK_EMULATOR"], env["BLUEFLOW_COS_IAM_ENDPOINT"], env["BLUEFLOW_IAM_URL"],
                vpc_root(env)):
        requests.post(url + "/_emulator/reset", timeout=10).raise_for_status()
    world = build_world(seed=int(env["BLUEFLOW_WORLD_SEED"]), regions=tuple(env["BLUEFLOW_REGIONS"].split(",")))
    bad_kinds = list(bad_kinds or [])
    generated = generate_objects(world, objects=objects, seed=seed, mean_flows=mean_flows, bad=len(bad_kinds),
                                 bad_kinds=bad_kinds or None, empty_share=0.1)
    written_at: dict[str, float] = {}
    result = write_objects(client, env["BLUEFLOW_BUCKET"], generated,
                           on_written=lambda o: written_at.__setitem__(o.key, time.time()))
    if result.failed:
        raise RuntimeError(f"could not write objects: {result.failed[:3]}")
    run_id = f"f{uuid.uuid4().hex[:10]}"
    bad = {o.key for o in generated if o.kind not in ("good", "empty")}
    log(f"  {len(generated)} objects written ({len(bad)} bad), run {run_id}")
    return FaultRun(env, run_id, generated, bad, stack.state_dir() / "logs" / run_id, written_at=written_at)


def write_more(run: FaultRun, objects: int, *, seed: int) -> int:
    """Write `objects` more good objects to the bucket mid-scenario; they are owed like the first ones."""
    return len(fault_phase.feed(run, objects, seed=seed))


def vpc_root(env: dict[str, str]) -> str:
    return env["BLUEFLOW_VPC_URL_TEMPLATE"].split("/{region}")[0]


def inject(url: str, *faults: dict) -> None:
    requests.post(url + "/_emulator/faults", json=list(faults), timeout=10).raise_for_status()


# ---------------------------------------------------------------- the verdict of one scenario

def deletion_times(requests_log: list[dict], bucket: str,
                   after: dict[str, float] | None = None) -> dict[str, float]:
    """Object key -> start time of its first successful delete, from the proxy's request log; for a key in
    `after` (rewritten by the scenario at that time) only deletes after the rewrite count."""
    after = after or {}
    out: dict[str, float] = {}
    prefix = f"/{bucket}/"
    for entry in requests_log:
        if entry["status"] not in (200, 204):
            continue
        keys: list[str] = []
        if entry["method"] == "POST" and "delete" in entry.get("query", ""):
            keys = entry.get("keys") or []
        elif entry["method"] == "DELETE" and entry["path"].startswith(prefix):
            keys = [entry["path"][len(prefix):]]
        for key in keys:
            if entry["at"] >= after.get(key, 0.0):
                out[key] = min(out.get(key, entry["at"]), entry["at"])
    return out


def first_complete_times(objects, flows: list[dict]) -> dict[str, float | None]:
    """Per object, when Kentik had accepted every owed record for the first time (stand-in clock): for a
    record owed n times, its n-th earliest acceptance. Later duplicates (a re-sent chunk) do not count,
    so a deletion between the first acceptance and a duplicate is not early. None if a record is missing."""
    times: dict[tuple, list[float]] = {}
    for flow in flows:
        times.setdefault(accepted_record(flow), []).append(float(flow.get("received_at", 0.0)))
    for values in times.values():
        values.sort()
    out: dict[str, float | None] = {}
    for obj in objects:
        latest = 0.0
        for record, n in Counter(owed_records(obj)).items():
            seen = times.get(record, [])
            if len(seen) < n:
                latest = None
                break
            latest = max(latest, seen[n - 1])
        out[obj.key] = latest
    return out


def judge(run: FaultRun, scenario: str, fault_end: float, drained_at: float | None) -> dict:
    """Referee verdict plus early deletes, dead-letter checks and per-scenario notes."""
    from streams.formats.avro import Codec

    flows = run.flows()
    remaining = run.bucket_keys()
    verdict = compare(run.good, flows, in_bucket=remaining)  # missing + still in the bucket = pending, not lost
    needed_by = first_complete_times(run.good, flows)
    deleted = deletion_times(run.proxy_requests(), run.env["BLUEFLOW_BUCKET"], run.rewritten_at)
    ledger_codec = Codec("ledger")
    ledger = {}
    for _, value, _ in read_topic(run.env, f"{run.run_id}.ledger", 15):
        record = ledger_codec.decode(value)
        ledger[record["key"]] = record
    gone = fault_phase.deletions(deleted, ledger)  # the ledger's for objects deleted outside the proxy (HMAC)
    good_keys = {o.key for o in run.good}
    met = fault_phase.fault_met(run.fault_events, {k: t for k, t in run.written_at.items() if k in good_keys},
                                gone, run.notes.get("faults_applied"))
    early: list[str] = []
    for obj in run.good:
        at = gone.get(obj.key)
        if at is None:
            continue
        needed = needed_by.get(obj.key)  # None: some owed record never arrived
        if needed is None or at < needed:
            early.append(obj.key)
    bad_deleted = sorted(k for k in run.bad_keys if k in deleted)
    letters = run.deadletters()
    unclear = sorted(k for k in run.bad_keys if not letters.get(k) or
                     not all(r["stage"] and len(r["reason"]) > 15 for r in letters[k]))
    entry = {
        "scenario": scenario, "owed": verdict.owed, "accepted": verdict.accepted, "pending": verdict.pending,
        "lost": verdict.lost,
        "duplicates": verdict.duplicates, "early_deletes": len(early) + len(bad_deleted),
        "recovery_s": round(drained_at - fault_end, 1) if drained_at is not None else None,
        "peak_rss_mb": fault_report.peak_rss_mb(run),
        "details": {
            "objects": len(run.objects), "bad_objects": len(run.bad_keys), "unexpected": verdict.unexpected,
            "drained": drained_at is not None, "good_left_in_bucket": len(remaining - run.bad_keys),
            "bad_left_in_bucket": len(remaining & run.bad_keys), "bad_deleted": bad_deleted[:5],
            "lost_objects": verdict.lost_objects[:5], "pending_objects": len(verdict.pending_objects),
            "early_deleted": early[:5], "deadlettered": len(letters),
            "deadletter_unclear": unclear[:5], "deadletter_repeats": sum(len(v) - 1 for v in letters.values()),
            "ledger_records": len(ledger), "deletes_seen_at_proxy": len(deleted),
            "good_deleted_seen": len({o.key for o in run.good} & set(deleted)), "run_id": run.run_id,
            "fault_met": met, **run.notes,
        },
    }
    problems = fault_phase.met_problems(met)
    if verdict.lost or entry["early_deletes"]:
        problems.append("lost or deleted early")
    if drained_at is None:
        problems.append("bucket not drained")
    if unclear or remaining & run.bad_keys != run.bad_keys:
        problems.append("bad input not quarantined (or deleted)")
    problems += run.notes.get("problems", [])
    entry["ok"] = not problems
    entry["problems"] = problems
    return entry


# ---------------------------------------------------------------- scenarios (fault actions)

def _progress_started(run: FaultRun, timeout: float = 120) -> bool:
    """Wait until the first objects were delivered and deleted (so faults land mid-stream)."""
    total = len(run.good)
    return wait_until(lambda: len(run.bucket_keys() - run.bad_keys) < total * 0.9, timeout, 1.0)


def fault_kill9(run: FaultRun, rng: random.Random, quick: bool) -> float:
    kills = 5 if quick else 8
    done = 0
    while done < kills:
        time.sleep(rng.uniform(1.5, 5.0))
        target = run.leader() if done % 2 == 0 else None
        if target is None:
            live = run.live()
            leader = run.leader()
            followers = [w for w in live if w is not leader] or live
            target = rng.choice(followers)
        role = "leader" if done % 2 == 0 else "follower"
        fault_phase.feed(run, 4, seed=rng.randrange(1 << 30))  # fresh work in the bucket at every kill
        run.mark(f"kill -9 {target.name} ({role})")
        target.kill()
        run.notes.setdefault("kills", []).append(f"{target.name}:{role}")
        time.sleep(rng.uniform(0.5, 3.0))
        run.start(target.name)
        done += 1
    return time.time()


def fault_sigterm(run: FaultRun, rng: random.Random, quick: bool) -> float:
    exits = []
    for _ in range(2 if quick else 4):
        time.sleep(rng.uniform(2.0, 5.0))
        target = rng.choice(run.live())
        fault_phase.feed(run, 4, seed=rng.randrange(1 << 30))  # fresh work in the bucket at every stop
        run.mark(f"SIGTERM {target.name}")
        t0 = time.monotonic()
        code = target.stop(45)
        exits.append({"worker": target.name, "exit": code, "seconds": round(time.monotonic() - t0, 1)})
        run.start(target.name)
    run.notes["sigterm_exits"] = exits
    slow = [e for e in exits if e["exit"] != 0 or e["seconds"] > 40]
    if slow:
        run.notes.setdefault("problems", []).append(f"unclean SIGTERM shutdowns: {slow}")
    return time.time()


def fault_kafka(run: FaultRun, rng: random.Random, quick: bool) -> float:
    time.sleep(rng.uniform(2.0, 4.0))
    fault_phase.feed(run, 8, seed=rng.randrange(1 << 30))  # fresh work in the bucket when Kafka stops
    run.mark("Kafka stopped")
    stack.stop_component("kafka")
    down = 10 if quick else 20
    time.sleep(down)
    stack.start_component("kafka")
    run.notes["kafka_down_s"] = down
    return time.time()


def _healthz(w: WorkerProcess, path: str = "/readyz") -> tuple[int, list]:
    """(status, problems) of a worker's readiness — where a stall must show with its cause (liveness, /healthz,
    fails only when a restart helps)."""
    try:
        reply = requests.get(f"http://127.0.0.1:{w.port}{path}", timeout=3)
        return reply.status_code, reply.json().get("problems", [])
    except (requests.RequestException, ValueError):
        return 0, []


def _stop_checked(run: FaultRun, note: str, grace_s: float = 30.0, *, strict: bool = True) -> None:
    """SIGTERM every live worker (SIGKILL after `grace_s`); record exit codes and seconds. With `strict`, an
    unclean stop is a problem of the scenario; otherwise it is only reported (known issue, see the report)."""
    exits = []
    for w in run.live():
        t0 = time.monotonic()
        code = w.stop(grace_s)
        exits.append({"worker": w.name, "exit": code, "seconds": round(time.monotonic() - t0, 1)})
    run.notes[note] = exits
    bad = [e for e in exits if e["exit"] != 0]
    if bad and strict:
        run.notes.setdefault("problems", []).append(f"unclean SIGTERM shutdown ({note}): {bad}")


def fault_kentik(run: FaultRun, rng: random.Random, quick: bool) -> float:
    """401 first (while most work is pending), then, with the credentials fixed, 500/503/429/latency/drops."""
    url = run.env["BLUEFLOW_KENTIK_EMULATOR"]
    # 401: restart the workers with a wrong token; they must turn unhealthy and get nothing accepted. Fresh
    # objects make sure there is work for them (a small run may have delivered everything by now)
    _stop_checked(run, "sigterm_before_401")
    run.notes["written_for_401"] = write_more(run, 12 if quick else 40, seed=rng.randrange(1 << 30))
    run.mark("workers restarted with a wrong Kentik token")  # nothing can be accepted: all fresh work waits
    for name in list(run.workers):
        run.start(name, KENTIK_API_TOKEN="wrong-token-on-purpose")
    before = len(run.flows())
    unhealthy = wait_until(lambda: any(_healthz(w)[0] == 503 for w in run.live()), 90, 2)
    time.sleep(3)
    after = len(run.flows())
    statuses = {w.name: _healthz(w) for w in run.live()}
    run.notes["auth_phase"] = {"unhealthy_seen": unhealthy, "accepted_during_401": after - before,
                               "healthz": {k: v[0] for k, v in statuses.items()},
                               "problems": [p for _, ps in statuses.values() for p in ps][:2]}
    if not unhealthy or after != before:
        run.notes.setdefault("problems", []).append("401 phase: worker not unhealthy or flows accepted")
    # known issue: a sink stuck in the 401 retry loop keeps Faust's wait_empty() from finishing, so SIGTERM
    # needs the SIGKILL fallback (the batch is not committed: nothing lost); reported, not failed here
    _stop_checked(run, "sigterm_while_401", 20.0, strict=False)
    n = 4 if quick else 10
    faults = [{"status": 500, "count": n, "path_prefix": "/chf"}, {"status": 503, "count": n, "path_prefix": "/chf"},
              {"status": 429, "count": n, "path_prefix": "/chf"},
              {"latency_ms": 2500 if quick else 35000, "count": 2, "path_prefix": "/chf"},
              {"drop": True, "count": n, "path_prefix": "/chf"}, {"status": 500, "count": 3, "path_prefix": "/api"}]
    inject(url, *faults)
    # the 401 phase's objects are still owed (nothing was accepted): the faults meet them, and a failed POST
    # is retried, taking the next fault, so every queued fault is applied while one POST is pending
    run.mark("Kentik 5xx/429/latency/drops armed, workers restarted")
    for name in list(run.workers):  # credentials fixed, workers restarted
        run.start(name)
    wait_until(lambda: not fault_phase.pending_faults(url) or run.drained(), 180, 2)
    _all_applied(run, url, sum(f["count"] for f in faults), "Kentik")
    run.notes["kentik_faults_applied"] = run.notes["faults_applied"]
    return time.time()


def _all_applied(run: FaultRun, url: str, injected: int, where: str) -> None:
    """Record the stand-in's applied faults; faults still queued (the work drained first) are a problem."""
    run.notes["faults_applied"] = fault_phase.faults_applied(url)
    left = fault_phase.pending_faults(url)
    if left:
        run.notes.setdefault("problems", []).append(
            f"not exercised: {left} of the {injected} faults queued at {where} never met a request")


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
    fault_phase.hold_deletes(run)  # queued after the counted faults: those are taken first
    fresh = fault_phase.feed(run, 8 if quick else 20, seed=rng.randrange(1 << 30))
    held = wait_until(lambda: fault_phase.pending_faults(run.proxy) == 2
                      and fault_phase.faults_applied(run.proxy) > injected, 120, 1)
    run.notes["written_for_outage"] = len(fresh)
    run.notes["good_left_at_outage"] = len(run.bucket_keys() - run.bad_keys)  # exact: deletes are refused
    if not held:
        run.notes.setdefault("problems", []).append("not exercised: COS faults not all applied, or no delete "
                                                    "was held, within 120 s of writing the fresh objects")
    for name in ("s3proxy", "s3proxy-open"):
        stack.stop_component(name)
    run.mark("S3Proxy stopped")
    run.notes["faults_applied"] = run.notes["cos_faults_applied"] = fault_phase.faults_applied(run.proxy)
    fault_phase.release(run.proxy)  # the outage refuses the deletes now
    down = 15 if quick else 30
    seen: list[tuple[int, list]] = []
    end = time.monotonic() + down
    while time.monotonic() < end:
        seen += [_healthz(w) for w in run.live()]
        time.sleep(2)
    for name in ("s3proxy", "s3proxy-open"):
        stack.start_component(name)
    run.notes["s3proxy_down_s"] = down
    run.notes["unhealthy_seen_while_down"] = any(code == 503 for code, _ in seen)
    run.notes["problems_while_down"] = sorted({p[:160] for code, ps in seen if code == 503 for p in ps})[:4]
    return time.time()


def fault_rebalance(run: FaultRun, rng: random.Random, quick: bool) -> float:
    for i in range(3 if quick else 6):
        name = f"w{3 + i % 2}"
        fault_phase.feed(run, 4, seed=rng.randrange(1 << 30))  # fresh work at every join and leave
        run.mark(f"{name} joins")
        run.start(name)
        time.sleep(rng.uniform(3.0, 8.0))
        w = run.workers[name]
        fault_phase.feed(run, 4, seed=rng.randrange(1 << 30))
        run.mark(f"{name} leaves")
        if i % 3 == 2:
            w.kill()
        else:
            w.stop(30)
        time.sleep(rng.uniform(1.0, 3.0))
    return time.time()


def fault_none(run: FaultRun, rng: random.Random, quick: bool) -> float:
    """The input is the fault (bad objects, secrets in play): it met every object present at the start."""
    run.fault_events.append(("objects present when the workers started", run.started_at))
    return time.time()


def fault_iamvpc(run: FaultRun, rng: random.Random, quick: bool) -> float:
    """The VPC API fails throughout (armed before the start); now IAM fails too, met by a worker that joins
    with fresh work (it must get a COS token before it can read anything)."""
    iam = run.env["BLUEFLOW_IAM_URL"]
    time.sleep(2)
    fault_phase.feed(run, 8, seed=rng.randrange(1 << 30))
    before = fault_phase.faults_applied(iam)
    inject(iam, {"status": 500, "count": 3, "path_prefix": "/identity"},
           {"status": 503, "count": 3, "path_prefix": "/identity"})
    run.mark("IAM token service failing, w3 joins")
    run.start("w3")
    samples = run.notes.setdefault("_healthz_samples", [])  # /readyz during the fault too (see run_scenario)

    def faults_consumed() -> bool:
        samples.extend((w.name, *_healthz(w)) for w in run.live())
        return not fault_phase.pending_faults(iam)

    wait_until(faults_consumed, 60, 2)
    run.notes["faults_applied"] = fault_phase.faults_applied(iam) - before
    return time.time()


def wait_drained_watching_health(run: FaultRun, timeout_s: float) -> tuple[bool, list[tuple[str, int, list]]]:
    """Wait until the bucket is drained, sampling every live worker's /readyz meanwhile (every ~2 s)."""
    samples: list[tuple[str, int, list]] = []

    def check() -> bool:
        samples.extend((w.name, *_healthz(w)) for w in run.live())
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


# ---------------------------------------------------------------- secrets

def secret_values() -> list[str]:
    return [SECRET_IAM, SECRET_KENTIK, stack.HMAC_SECRET_KEY]


def scan_for_secrets(run: FaultRun, metrics_texts: list[str]) -> dict:
    """Occurrences of each secret in worker logs, /metrics texts and every message of every run topic."""
    from confluent_kafka.admin import AdminClient

    hits: dict[str, int] = {}
    secrets = [s.encode() for s in secret_values()]
    def count(where: str, data: bytes) -> None:
        for s in secrets:
            n = data.count(s)
            if n:
                hits[where] = hits.get(where, 0) + n
    lines = 0
    for w in run.all_workers():
        try:
            data = w.log_path.read_bytes()
        except OSError:
            continue
        lines += data.count(b"\n")
        count(f"log:{w.name}", data)
    for i, text in enumerate(metrics_texts):
        count(f"metrics:{i}", text.encode())
    admin = AdminClient({"bootstrap.servers": run.env["BLUEFLOW_KAFKA_BOOTSTRAP"]})
    topics = sorted(t for t in admin.list_topics(timeout=10).topics if t.startswith(run.run_id))
    messages = 0
    for topic in topics:
        for key, value, _ in read_topic(run.env, topic, 30):
            messages += 1
            count(f"topic:{topic}", (key or b"") + (value or b""))
    return {"secret_hits": hits, "log_lines": lines, "metrics_pages": len(metrics_texts), "topics": len(topics),
            "messages": messages}


def _replace_arg(cmd: list[str], flag: str, value: str, *, append: bool = False) -> list[str]:
    out = list(cmd)
    if append or flag not in out:
        return out + [flag, value]
    out[out.index(flag) + 1] = value
    return out


# ---------------------------------------------------------------- running scenarios

ACTIONS: dict[str, Callable] = {
    "kill9": fault_kill9, "sigterm": fault_sigterm, "kafka": fault_kafka, "kentik": fault_kentik,
    "s3proxy": fault_s3proxy, "rebalance": fault_rebalance, "badinput": fault_none, "iamvpc": fault_iamvpc,
    "secrets": fault_none, "secrets_debug": fault_none, **hostile.ACTIONS,
}
ACTIONS.update(fault_peers.ACTIONS)
ACTIONS.update(fault_huge.ACTIONS)
ACTIONS.update(fault_readiness.ACTIONS)


def run_scenario(name: str, env: dict[str, str], objects: int, quick: bool, seed: int,
                 log: Callable[[str], None] = print) -> dict:
    from devstack import badinputs, fault_sources

    t0 = time.monotonic()
    if name == "sources":  # a run of its own: two sources, steady writes, per-source latency
        entry = fault_sources.run_sources(env, objects, quick, seed, log)
        entry["details"]["wall_s"] = round(time.monotonic() - t0, 1)
        return entry
    if name in fault_embedded.SCENARIOS:  # a run of its own: one worker, no Kafka configured
        entry = fault_embedded.run_embedded(name, env, objects, quick, seed, log)
        entry["details"]["wall_s"] = round(time.monotonic() - t0, 1)
        return entry
    rng = random.Random(seed)
    bad_kinds = ["not_gzip", "bad_ip"]
    if name == "badinput":
        bad_kinds = list(badinputs.BAD_KINDS)
    restore: list[tuple[str, list[str]]] = []
    overrides: dict[str, str] = {"BLUEFLOW_UNHEALTHY_AFTER": "8" if name == "s3proxy" else "60"}
    overrides.update(hostile.OVERRIDES.get(name, {}))
    if name in SMALL_GROUPS:  # many messages in flight when the fault starts, also in a small (CI) run
        overrides["BLUEFLOW_GROUP_OBJECTS"] = "4"
    overrides.update(fault_huge.OVERRIDES.get(name, {}))
    overrides.update(fault_readiness.OVERRIDES.get(name, {}))
    if name in SECRET_SCENARIOS:
        for component, flag, value, append in (("iam", "--api-key", SECRET_IAM, True),
                                               ("kentik", "--token", SECRET_KENTIK, False)):
            original = stack.component_cmd(component)
            restore.append((component, original))
            stack.stop_component(component)
            stack.start_component(component, cmd=_replace_arg(original, flag, value, append=append))
        overrides.update(IBM_COS_API_KEY=SECRET_IAM, IBM_VPC_API_KEY=SECRET_IAM, KENTIK_API_TOKEN=SECRET_KENTIK)
        overrides.update(debug_secrets_overrides(name))
    if name == "iamvpc":
        inject(vpc_root(env), {"status": 500, "count": 0, "path_prefix": "/"})
        overrides["BLUEFLOW_METADATA_INTERVAL"] = "5"
    run = None
    try:
        run = prepare(env, objects, seed=seed, bad_kinds=bad_kinds, log=log)
        if name == "iamvpc":  # prepare() reset the stand-ins: inject after it
            inject(vpc_root(env), {"status": 500, "count": 0, "path_prefix": "/"}, )
            # the first IAM token fetches fail too, whichever client asks first (the leader's VPC tokens, or a
            # worker's first COS token: an outage to wait out, never "check IBM_COS_API_KEY")
            inject(env["BLUEFLOW_IAM_URL"], {"status": 500, "count": 4, "path_prefix": "/identity"})
        run.worker_overrides = overrides
        run.started_at = time.time()
        run.start("w1")
        run.start("w2")
        if name in SECRET_SCENARIOS:  # the HMAC path too, so the HMAC secret is in play
            run.start("w3", BLUEFLOW_COS_ENDPOINT=env["BLUEFLOW_COS_ENDPOINT"],
                      BLUEFLOW_COS_HMAC_ACCESS_KEY=env["BLUEFLOW_COS_HMAC_ACCESS_KEY"],
                      BLUEFLOW_COS_HMAC_SECRET_KEY=env["BLUEFLOW_COS_HMAC_SECRET_KEY"])
            inject(env["BLUEFLOW_KENTIK_EMULATOR"], {"status": 500, "count": 3, "path_prefix": "/chf"})
        if not _progress_started(run):
            run.notes.setdefault("problems", []).append("no object finished within 120 s of the start")
        run.notes["good_left_at_fault_start"] = len(run.bucket_keys() - run.bad_keys)
        fault_end = ACTIONS[name](run, rng, quick)
        if name == "iamvpc":
            requests.post(vpc_root(env) + "/_emulator/reset", timeout=10)
        timeout = 300 if quick else 900
        if name == "iamvpc":
            drained, samples = wait_drained_watching_health(run, timeout)
            samples = run.notes.pop("_healthz_samples", []) + samples
            run.notes["healthz"] = dict(Counter(status for _, status, _ in samples))
            run.notes.setdefault("problems", []).extend(iamvpc_health_problems(drained, samples))
        else:
            drained = wait_until(run.drained, timeout, 2.0)
        drained_at = time.time() if drained else None
        if name in SECRET_SCENARIOS:
            texts = []
            for w in run.live():
                try:
                    texts.append(requests.get(f"http://127.0.0.1:{w.port}/metrics", timeout=10).text)
                except requests.RequestException:
                    pass
        if name == "iamvpc":
            logs = "".join(w.log_path.read_text(errors="replace") for w in run.all_workers() if w.log_path.exists())
            run.notes["metadata_fallback_logged"] = "enrichment falls back" in logs or "ids from the object keys" in logs
        run.stop_all()
        if name in SECRET_SCENARIOS:
            run.notes.update(scan_for_secrets(run, texts))
            if run.notes["secret_hits"]:
                run.notes.setdefault("problems", []).append(f"secrets leaked: {run.notes['secret_hits']}")
            check_debug_scan(run, name)
        entry = judge(run, name, fault_end, drained_at)
    except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
        entry = {"scenario": name, "owed": None, "accepted": None, "pending": None, "lost": None, "duplicates": None,
                 "early_deletes": None, "recovery_s": None, "ok": False,
                 "peak_rss_mb": fault_report.peak_rss_mb(run) if run else None, "problems": [f"{type(exc).__name__}: {exc}"],
                 "details": {"run_id": run.run_id if run else None}}
        if run is not None:
            run.stop_all()
    finally:
        for component, cmd in restore:
            stack.stop_component(component)
            stack.start_component(component, cmd=cmd)
        for component in ("kafka", "s3proxy", "s3proxy-open"):  # never leave the stack broken
            if not any(r["name"] == component and r["alive"] for r in stack.status()):
                stack.start_component(component)
    entry["details"]["wall_s"] = round(time.monotonic() - t0, 1)
    return entry


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="blueflow-dev faults", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few hundred objects, fewer faults")
    ap.add_argument("--scenarios", default="", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    ap.add_argument("--objects", type=int, default=0, help="objects per scenario (default 300 quick, 2000 full)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--report", default="faults-report.json")
    ap.add_argument("--shuffle-listings", action="store_true",
                    help="the COS stand-in lists each page in random order (IBM: \"non-lexographical order\")")
    args = ap.parse_args(argv)
    names = [s for s in args.scenarios.split(",") if s] or list(SCENARIOS)
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenarios {unknown}; choose from {','.join(SCENARIOS)}")
    objects = args.objects or (300 if args.quick else 2000)
    env = stack.ensure_up()
    if args.shuffle_listings:  # otherwise as the stack was started (BLUEFLOW_DEVSTACK_SHUFFLE_LISTINGS)
        requests.post(env["BLUEFLOW_COS_IAM_ENDPOINT"] + "/_emulator/listing_order", json={"shuffle": True},
                      timeout=10).raise_for_status()
    report: list[dict] = []
    for i, name in enumerate(names):
        print(f"[faults] {name}: {objects} objects ...", flush=True)
        entry = run_scenario(name, env, objects, args.quick, args.seed + i)
        report.append(entry)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
        print(f"[faults] {name}: owed={entry['owed']} accepted={entry['accepted']} pending={entry.get('pending')} "
              f"lost={entry['lost']} "
              f"duplicates={entry['duplicates']} early_deletes={entry['early_deletes']} "
              f"recovery_s={entry['recovery_s']} peak_rss_mb={entry.get('peak_rss_mb')} "
              f"fault_met=[{fault_report.met_summary(entry) or '-'}] "
              f"{'ok' if entry['ok'] else 'FAILED ' + str(entry['problems'])}", flush=True)
        for line in entry["details"].get("table", ()):
            print(f"[faults] {name}:   {line}", flush=True)
    print(fault_report.table(report), flush=True)
    return 0 if all(e["ok"] for e in report) else 1


if __name__ == "__main__":
    sys.exit(main())
