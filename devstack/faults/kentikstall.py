"""Fault-suite scenario `kentikstall` (issues 22 item 4, 28 item 2): liveness vs readiness while Kentik stalls.

With the first objects of the run delivered, /chf answers 307 (a redirect, as a Kentik URL written http://
would get) to every POST; then 3 fresh objects are written and the redirects go on for 3 × --unhealthy_after
from the first one answered. Meanwhile every worker's /healthz and /readyz are sampled every second:
- readiness (/readyz) is 503 with a problem naming Kentik within --unhealthy_after + one observer poll (2 s) +
  one sample of the first redirect;
- liveness (/healthz) answers 200 at every sample, and no worker process restarts or exits;
- after the redirects stop, readiness is green again and the run's flows are all accepted (the referee: 0 lost).
`run` is a FaultRun (run.py).
"""
from __future__ import annotations

import random
import time

import requests

from devstack.faults.kentik import chf_modes
from devstack.faults.phase import write_more
from devstack.workers import wait_until

UNHEALTHY_AFTER_S = 10.0
OBSERVER_POLL_S = 2.0  # streams/observe/web.py watch_consumer
SAMPLE_S = 1.0
STALL_FACTOR = 3


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
    written = write_more(run, 3, seed=rng.randrange(1 << 30))
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


ACTIONS = {"kentikstall": fault_kentikstall}
OVERRIDES = {"kentikstall": {"BLUEFLOW_UNHEALTHY_AFTER": str(int(UNHEALTHY_AFTER_S))}}
