"""Fault scenarios of the workers themselves: `kill9` (kill -9 of the leader and of followers, restarted),
`sigterm` (graceful stops within the grace period, restarted), `rebalance` (workers joining and leaving), and
`none`, the action of the scenarios whose input is the fault (bad input, secrets in play). Each writes fresh
work before it acts (phase.feed), so the fault meets objects in flight."""
from __future__ import annotations

import random
import time

from devstack.faults import phase
from devstack.faults.run import FaultRun


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
        phase.feed(run, 4, seed=rng.randrange(1 << 30))  # fresh work in the bucket at every kill
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
        phase.feed(run, 4, seed=rng.randrange(1 << 30))  # fresh work in the bucket at every stop
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


def fault_rebalance(run: FaultRun, rng: random.Random, quick: bool) -> float:
    for i in range(3 if quick else 6):
        name = f"w{3 + i % 2}"
        phase.feed(run, 4, seed=rng.randrange(1 << 30))  # fresh work at every join and leave
        run.mark(f"{name} joins")
        run.start(name)
        time.sleep(rng.uniform(3.0, 8.0))
        w = run.workers[name]
        phase.feed(run, 4, seed=rng.randrange(1 << 30))
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


ACTIONS = {"kill9": fault_kill9, "sigterm": fault_sigterm, "rebalance": fault_rebalance, "badinput": fault_none,
           "secrets": fault_none, "secrets_debug": fault_none}
