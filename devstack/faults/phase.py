"""Faults that meet work in flight whatever the pipeline's speed (issue 21). `run` is a FaultRun (run.py).

At a CI size (80 objects) a fast pipeline can drain the bucket before a fault that begins after a fixed sleep,
and the scenario then proves nothing (and its health checks fail for want of a stall). So every scenario
- writes its own fresh objects for its fault phase (`feed`) right after arming the fault or right before the
  fault acts, or holds them back (`hold_deletes`: COS refuses every delete until `release`, so an object that
  was read stays in flight however fast the rest is);
- marks each moment its fault acts (`FaultRun.mark`: a kill, a stop, an outage, faults armed for new work);
- and before its verdict checks that the fault met work (`fault_met`, `met_problems`): per event, the good
  objects written and not yet deleted at that moment (from the write times and the COS proxy's delete log),
  and for faults injected into a stand-in, how many the stand-in applied. A scenario whose fault met nothing
  is "not exercised" and fails, never "ok".
"""
from __future__ import annotations

import time
from datetime import timedelta

import requests

from devstack.faults.run import fresh_bodies, inject
from devstack.stack.bucket import hmac_client
from devstack.synth.layout import DEFAULT_START
from devstack.synth.writer import write_objects
from devstack.workers import wait_until


# ---------------------------------------------------------------- pure: did the fault meet work?

def pending_at(written_at: dict[str, float], deleted_at: dict[str, float], t: float) -> int:
    """Objects written before `t` and not deleted by then (never deleted counts as not deleted)."""
    return sum(1 for key, written in written_at.items() if written <= t and deleted_at.get(key, float("inf")) > t)


def fault_met(events: list[tuple[str, float]], written_at: dict[str, float], deleted_at: dict[str, float],
              faults_applied: int | None) -> dict:
    """The report's `fault_met`: per fault event the objects pending then; the stand-in faults applied
    (None: the scenario injected none)."""
    return {"events": [{"fault": label, "pending": pending_at(written_at, deleted_at, at)} for label, at in events],
            "faults_applied": faults_applied}


def met_problems(met: dict) -> list[str]:
    """"not exercised" problems: no fault event, an event that met no pending object, injected faults never
    applied."""
    events = met["events"]
    if not events:
        return ["not exercised: the scenario recorded no moment its fault acted"]
    problems = [f"not exercised: {e['fault']} met no pending object" for e in events if e["pending"] == 0]
    if met.get("faults_applied") == 0:
        problems.append("not exercised: no injected fault was applied (the stand-ins saw no matching request)")
    return problems


def deletions(proxy_deletes: dict[str, float], ledger: dict[str, dict]) -> dict[str, float]:
    """Key -> when it was deleted: the proxy's log, else the ledger (objects deleted on the HMAC path)."""
    out = dict(proxy_deletes)
    for key, record in ledger.items():
        if key not in out and record.get("deleted"):
            out[key] = record["delivered_at"] / 1000.0
    return out


# ---------------------------------------------------------------- I/O: fresh work, holding it in flight

def feed(run, objects: int, *, seed: int) -> list[str]:
    """Write `objects` more good objects (capture times of their own: other keys) now; they are owed like the
    first ones and their write times recorded. Returns their keys."""
    known = {o.key for o in run.objects}
    start = DEFAULT_START + timedelta(days=1 + seed % 300)
    fresh = [o for o in fresh_bodies(run, objects, seed, start) if o.key not in known]
    result = write_objects(hmac_client(run.env), run.env["BLUEFLOW_BUCKET"], fresh,
                           on_written=lambda o: run.written_at.__setitem__(o.key, time.time()))
    if result.failed:
        raise RuntimeError(f"could not write objects: {result.failed[:3]}")
    run.objects.extend(fresh)
    return [o.key for o in fresh]


def write_more(run, objects: int, *, seed: int) -> int:
    """Write `objects` more good objects to the bucket mid-scenario; how many (they are owed like the first)."""
    return len(feed(run, objects, seed=seed))


def feed_until(run, met, *, batch: int, rounds: int, seed: int, wait_s: float = 20.0, on_first: str = "") -> int:
    """Write `batch` fresh objects at a time until `met()` holds (checked every second for up to `wait_s`
    after each batch), at most `rounds` batches; returns how many objects were written. With `on_first`, the
    fault event of that name is marked once the first batch is written."""
    written = 0
    for i in range(rounds):
        written += len(feed(run, batch, seed=seed + i))
        if i == 0 and on_first:
            run.mark(on_first)
        if wait_until(met, wait_s, 1.0):
            break
    return written


def hold_deletes(run) -> None:
    """COS (the auth proxy in front of S3Proxy) answers 503 to every delete of the run's bucket until
    `release`: an object that was read cannot be finalized, so it stays in flight."""
    bucket = run.env["BLUEFLOW_BUCKET"]
    inject(run.proxy, {"status": 503, "count": 0, "method": "DELETE", "path_prefix": f"/{bucket}/"},
           {"status": 503, "count": 0, "method": "POST", "path_prefix": f"/{bucket}"})


def release(url: str) -> None:
    """Clear every pending fault of a stand-in (or the COS proxy)."""
    requests.delete(url + "/_emulator/faults", timeout=10).raise_for_status()


def faults_applied(url: str) -> int:
    return int(requests.get(url + "/_emulator/stats", timeout=10).json().get("faults_applied") or 0)


def pending_faults(url: str) -> int:
    return len(requests.get(url + "/_emulator/faults", timeout=10).json()["faults"])


def fetched(run, keys) -> set[str]:
    """Which of `keys` the pipeline has read (a successful GET at the COS proxy)."""
    prefix = f"/{run.env['BLUEFLOW_BUCKET']}/"
    wanted = set(keys)
    return {e["path"][len(prefix):] for e in run.proxy_requests()
            if e["method"] == "GET" and e["status"] == 200 and e["path"].startswith(prefix)
            and e["path"][len(prefix):] in wanted}
