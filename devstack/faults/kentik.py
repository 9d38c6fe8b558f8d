"""Fault scenarios of a failing or misbehaving Kentik. `run` is a FaultRun (run.py).

- `kentik`: 401 first (workers restarted with a wrong token: unhealthy, nothing accepted), then, with the
  credentials fixed, 500/503/429, latency and dropped connections on /chf and 500s on the API.
- `redirect`: /chf answers 301/302/307/308 to a decoy: nothing may reach the decoy, nothing counts as accepted.
- `badbody`: 200 with `Content-Encoding: gzip` on a plain body: accepted, once.
- `slowkentik`: answers 35 s late (no duplicate) and, once or twice, after the read timeout (bounded duplicates).
- `kentikstall` (issues 22 item 4, 28 item 2): liveness vs readiness while Kentik stalls. With the first objects
  of the run delivered, /chf answers 307 (a redirect, as a Kentik URL written http:// would get) to every POST;
  then 3 fresh objects are written and the redirects go on for 3 × --unhealthy_after from the first one
  answered. Meanwhile every worker's /healthz and /readyz are sampled every second: readiness (/readyz) is 503
  with a problem naming Kentik within --unhealthy_after + one observer poll (2 s) + one sample of the first
  redirect; liveness (/healthz) answers 200 at every sample, and no worker process restarts or exits; after the
  redirects stop, readiness is green again and the run's flows are all accepted (the referee: 0 lost).
"""
from __future__ import annotations

import random
import time
from collections import Counter
from typing import Callable

import requests

from devstack.faults import phase
from devstack.faults.run import FaultRun, inject, readyz
from devstack.referee import compare
from devstack.workers import wait_until

UNHEALTHY_AFTER_S = 10.0
OBSERVER_POLL_S = 2.0  # streams/observe/web.py watch_consumer
SAMPLE_S = 1.0
STALL_FACTOR = 3


def chf_modes(url: str, *modes: dict) -> None:
    """Queue answer modes of the Kentik stand-in (devstack/standins/kentik_modes.py)."""
    requests.post(url + "/_emulator/chf_modes", json=list(modes), timeout=10).raise_for_status()


def _chf_modes_settled(run, url: str, timeout_s: float, answered: Callable[[], bool] = lambda: True) -> float:
    """Wait until every queued mode was applied and `answered()` holds (or the bucket drained first: then the
    leftover modes are a problem of the scenario); the time the fault ended."""
    def pending() -> int:
        return len(requests.get(url + "/_emulator/chf_modes", timeout=10).json()["modes"])
    wait_until(lambda: (pending() == 0 and answered()) or run.drained(), timeout_s, 2)
    fault_end = time.time()
    left = pending()
    stats = requests.get(url + "/_emulator/stats", timeout=10).json().get("kentik", {})
    run.notes["kentik_modes_applied"] = applied = stats.get("modes_applied") or {}  # mode -> answers given
    run.notes["faults_applied"] = sum(applied.values())
    if left:
        run.notes.setdefault("problems", []).append(f"{left} Kentik answer mode(s) never applied")
    return fault_end


def _duplicates_within(run, fresh: list[str], bound: int, why: str) -> None:
    """After the drain: the referee's duplicates among the fault phase's objects (`fresh`, the only work while
    the Kentik answers were queued) must not exceed `bound` (a problem of the scenario if so). Duplicates of the
    first objects (a start-up rebalance of the small run) are reported, not judged here."""
    wait_until(run.drained, 300, 2)
    wanted = set(fresh)
    flows = run.flows()
    duplicates = compare([o for o in run.good if o.key in wanted], flows).duplicates
    run.notes["duplicate_bound"] = {"bound": bound, "why": why, "seen": duplicates,
                                    "seen_before_the_fault": compare(run.good, flows).duplicates - duplicates}
    if duplicates > bound:
        run.notes.setdefault("problems", []).append(f"{duplicates} duplicates, more than the bound {bound} ({why})")


def _fault_phase(run, url: str, rng: random.Random, label: str, *modes: dict) -> list[str]:
    """The fault phase of a misbehaving Kentik: once the first objects are drained (so the queued answers meet
    only this phase's work, after any start-up rebalance), queue `modes` and write fresh objects until every
    mode was applied (a redirected POST is retried, taking the next mode). Returns the fresh objects' keys."""
    wait_until(run.drained, 300, 2)
    chf_modes(url, *modes)
    before = {o.key for o in run.objects}
    run.notes["written_for_fault"] = phase.feed_until(
        run, lambda: _pending(url) == 0, batch=8, rounds=6, seed=rng.randrange(1 << 30), on_first=label)
    return [o.key for o in run.objects if o.key not in before]


def _pending(url: str) -> int:
    return len(requests.get(url + "/_emulator/chf_modes", timeout=10).json()["modes"])


def fault_redirect(run, rng: random.Random, quick: bool) -> float:
    """Kentik answers /chf with 301/302/307/308 pointing at a decoy that accepts anything: nothing may reach
    the decoy (no body, no token), nothing redirected counts as accepted, nothing is dead-lettered."""
    from devstack.standins.common import BackgroundServer
    from devstack.standins.kentik_modes import make_decoy_app

    url = run.env["BLUEFLOW_KENTIK_EMULATOR"]
    n = 5 if quick else 15
    with BackgroundServer(make_decoy_app()) as decoy:
        fresh = _fault_phase(run, url, rng, "Kentik redirects /chf", *(
            {"mode": "redirect", "status": status, "count": n, "location": decoy.url + "/chf"}
            for status in (301, 302, 307, 308)))
        fault_end = _chf_modes_settled(run, url, 180)
        wait_until(run.drained, 300, 2)
        hits = requests.get(decoy.url + "/_decoy/requests", timeout=10).json()["requests"]
    run.notes["redirect_target_requests"] = {"requests": len(hits), "with_token": sum(h["token_sent"] for h in hits),
                                             "methods": dict(Counter(h["method"] for h in hits))}
    if hits:
        run.notes.setdefault("problems", []).append(f"{len(hits)} request(s) followed a redirect to the decoy")
    _duplicates_within(run, fresh, 0, "a redirected POST is never stored, so never re-sent after an acceptance")
    return fault_end


def fault_badbody(run, rng: random.Random, quick: bool) -> float:
    """Kentik accepts but answers 200 with `Content-Encoding: gzip` on a plain body: still accepted, once."""
    url = run.env["BLUEFLOW_KENTIK_EMULATOR"]
    fresh = _fault_phase(run, url, rng, "Kentik answers 200 with an undecodable body",
                         {"mode": "bad_body", "count": 20 if quick else 60})
    fault_end = _chf_modes_settled(run, url, 180)
    _duplicates_within(run, fresh, 0, "every 200 counts as accepted whatever its body")
    return fault_end


def fault_slowkentik(run, rng: random.Random, quick: bool) -> float:
    """Kentik accepts, then answers 35 s later (beyond the old 30 s client timeout: no duplicate may follow),
    and, once or twice, only after the client's read timeout (its flows are re-sent: bounded duplicates)."""
    from connectors.kentik import LIMITS

    url = run.env["BLUEFLOW_KENTIK_EMULATOR"]
    beyond = LIMITS.read_s + 10

    def slow_requests() -> list[dict]:
        reqs = requests.get(url + "/_emulator/requests?body=0", timeout=60).json()["requests"]
        return [r for r in reqs if r.get("mode") == "slow"]

    counts = (3, 1 if quick else 2)
    fresh = _fault_phase(run, url, rng, "Kentik answers late", {"mode": "slow", "seconds": 35, "count": counts[0]},
                         {"mode": "slow", "seconds": beyond, "count": counts[1]})
    fault_end = _chf_modes_settled(run, url, 2 * beyond + 120, lambda: sum(
        r["status"] is not None or r["dropped"] for r in slow_requests()) >= sum(counts))
    wait_until(lambda: all(r["status"] is not None or r["dropped"] for r in slow_requests()), beyond + 30, 2)
    slow = slow_requests()
    run.notes["slow_answers"] = [{"seconds": r["mode_seconds"], "flows": r["flows"], "status": r["status"],
                                  "dropped": r["dropped"]} for r in slow]
    bound = sum(r["flows"] for r in slow if r["mode_seconds"] > LIMITS.read_s)
    _duplicates_within(run, fresh, bound, f"flows of the POSTs answered after the {LIMITS.read_s:g} s read "
                                          "timeout, each re-sent once")
    return fault_end


def fault_kentik(run: FaultRun, rng: random.Random, quick: bool) -> float:
    """401 first (while most work is pending), then, with the credentials fixed, 500/503/429/latency/drops."""
    url = run.env["BLUEFLOW_KENTIK_EMULATOR"]
    # 401: restart the workers with a wrong token; they must turn unhealthy and get nothing accepted. Fresh
    # objects make sure there is work for them (a small run may have delivered everything by now)
    _stop_checked(run, "sigterm_before_401")
    run.notes["written_for_401"] = phase.write_more(run, 12 if quick else 40, seed=rng.randrange(1 << 30))
    run.mark("workers restarted with a wrong Kentik token")  # nothing can be accepted: all fresh work waits
    for name in list(run.workers):
        run.start(name, KENTIK_API_TOKEN="wrong-token-on-purpose")
    before = len(run.flows())
    unhealthy = wait_until(lambda: any(readyz(w)[0] == 503 for w in run.live()), 90, 2)
    time.sleep(3)
    after = len(run.flows())
    statuses = {w.name: readyz(w) for w in run.live()}
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
    wait_until(lambda: not phase.pending_faults(url) or run.drained(), 180, 2)
    _all_applied(run, url, sum(f["count"] for f in faults), "Kentik")
    run.notes["kentik_faults_applied"] = run.notes["faults_applied"]
    return time.time()


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


def _all_applied(run: FaultRun, url: str, injected: int, where: str) -> None:
    """Record the stand-in's applied faults; faults still queued (the work drained first) are a problem."""
    run.notes["faults_applied"] = phase.faults_applied(url)
    left = phase.pending_faults(url)
    if left:
        run.notes.setdefault("problems", []).append(
            f"not exercised: {left} of the {injected} faults queued at {where} never met a request")



def _probe(port: int, path: str) -> tuple[int, list]:
    try:
        reply = requests.get(f"http://127.0.0.1:{port}{path}", timeout=3)
        return reply.status_code, reply.json().get("problems", [])
    except (requests.RequestException, ValueError):
        return 0, []


def _redirects_answered(url: str) -> int:
    applied = requests.get(url + "/_emulator/stats", timeout=10).json().get("kentik", {}).get("modes_applied") or 0
    return int(applied.get("redirect", 0) if isinstance(applied, dict) else applied)


def fault_kentikstall(run, rng: random.Random, quick: bool) -> float:
    url = run.env["BLUEFLOW_KENTIK_EMULATOR"]
    problems = run.notes.setdefault("problems", [])
    if not wait_until(run.drained, 300, 2):
        problems.append("the run's first objects were not delivered before the stall")
    workers = {w.name: w.proc.pid for w in run.live()}
    applied_before = _redirects_answered(url)
    chf_modes(url, {"mode": "redirect", "status": 307, "count": 0, "location": "https://kentik.invalid/chf"})
    written = phase.write_more(run, 3, seed=rng.randrange(1 << 30))
    run.mark("Kentik redirecting every POST, 3 fresh objects written")
    if not wait_until(lambda: _redirects_answered(url) > applied_before, 120, 0.5):
        problems.append("no POST met the redirects (fault not exercised)")
        requests.delete(url + "/_emulator/chf_modes", timeout=10)
        return time.time()
    first = time.time()
    live, ready = [], []  # (seconds since the first redirect, worker, status[, problems])
    while time.time() - first < STALL_FACTOR * UNHEALTHY_AFTER_S:
        for w in run.live():
            at = round(time.time() - first, 1)
            live.append((at, w.name, _probe(w.port, "/healthz")[0]))
            ready.append((at, w.name, *_probe(w.port, "/readyz")))
        time.sleep(SAMPLE_S)
    answered = _redirects_answered(url) - applied_before
    run.notes["faults_applied"] = answered
    requests.delete(url + "/_emulator/chf_modes", timeout=10).raise_for_status()  # the redirects stop (devices stay)
    fault_end = time.time()
    green_again = wait_until(lambda: all(_probe(w.port, "/readyz")[0] == 200 for w in run.live()), 120, 1)
    named = [(at, name, ps) for at, name, code, ps in ready if code == 503 and any("Kentik" in p for p in ps)]
    restarted = {n: pid for n, pid in workers.items()
                 if n not in run.workers or run.workers[n].proc.pid != pid or run.workers[n].proc.poll() is not None}
    bound = UNHEALTHY_AFTER_S + OBSERVER_POLL_S + SAMPLE_S
    run.notes["kentikstall"] = {
        "objects_written": written, "redirects_answered": answered, "unhealthy_after_s": UNHEALTHY_AFTER_S,
        "stall_s": round(fault_end - first, 1), "readiness_red_after_s": named[0][0] if named else None,
        "bound_s": bound, "readiness_problem": named[0][2][:2] if named else [],
        "liveness": {str(code): sum(1 for *_, c in live if c == code) for code in {c for *_, c in live}},
        "restarted": sorted(restarted), "ready_again": green_again}
    if not named:
        problems.append("readiness never named Kentik during the stall")
    elif named[0][0] > bound:
        problems.append(f"readiness named Kentik only after {named[0][0]}s (bound {bound}s)")
    if any(code != 200 for *_, code in live):
        problems.append(f"liveness failed during a Kentik stall: {[s for s in live if s[2] != 200][:3]}")
    if restarted:
        problems.append(f"workers restarted or exited during the stall: {sorted(restarted)}")
    if not green_again:
        problems.append("readiness not green again after the redirects stopped")
    return fault_end


ACTIONS = {"kentik": fault_kentik, "redirect": fault_redirect, "badbody": fault_badbody,
           "slowkentik": fault_slowkentik, "kentikstall": fault_kentikstall}
OVERRIDES = {"kentikstall": {"BLUEFLOW_UNHEALTHY_AFTER": str(int(UNHEALTHY_AFTER_S))}}
