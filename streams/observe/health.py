"""What /healthz (liveness) and /readyz (readiness) report: pure bookkeeping fed by the stages and by the
consumer observer (streams/observe/web.py).

Liveness fails only when a restart can help (`live_problems`):
- an agent or task of the worker died (`died`), or the worker's own 2-second watch stopped turning (`tick`);
- a stage is wedged: messages of its topic are pending on this worker, its committed offsets did not move
  for `unhealthy_after` seconds, and no dependency is failing that would explain it.
Readiness fails on every problem (`problems`), dependency trouble first of all — a restart does not fix it:
- `fatal` is set (a credentials problem: Kentik or COS rejected the keys), or
- a stage is stuck (as above, whatever the cause), or
- a step keeps failing: stage code reports each failed attempt of a retried step (`failing(step, reason)`)
  and its success (`ok(step)`); a step failing for `unhealthy_after` seconds, and still being retried, is a
  problem with its last reason (Kentik answering 307 or 5xx, a COS delete answering 403 forever, the leader's
  listing failing even with nothing pending), or
- (no consumer observed yet) the older `pending` flag is set and nothing `progressed()` for that long.
Each failing step belongs to a dependency (`dependency_of`): `dependencies()` gives, per dependency, the
problem it has now ("" when fine), for the metric `blueflow_dependency_up`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from streams.formats.stage_topics import CONSUMES

STALE_FAILURE_S = 120.0  # a failing step not reported again for this long is no longer being retried
WATCH_STALL_S = 60.0  # the 2-second watch not run for this long: the event loop or Faust's timers are wedged
DEPENDENCIES = ("kentik", "cos", "vpc", "ipfix")
STEP_DEPENDENCIES = (  # step prefix -> the dependency whose failure it is
    ("sink: kentik", "kentik"), ("sink: device", "kentik"), ("sink: ipfix", "ipfix"), ("parse: download", "cos"),
    ("finalize: delete", "cos"), ("leader: listing", "cos"), ("leader: metadata", "vpc"),
)


def dependency_of(step: str) -> str:
    """The dependency a failing step is the failure of ("" when none is known)."""
    for prefix, dependency in STEP_DEPENDENCIES:
        if step.startswith(prefix):
            return dependency
    return ""


@dataclass
class StageWatch:
    lag: int
    committed: int
    last_progress: float


@dataclass
class Failure:
    reason: str
    since: float
    last: float
    attempts: int = 1
    dependency: str = ""


@dataclass
class Health:
    fatal: str = ""
    pending: bool = False
    clock: Callable[[], float] = time.monotonic
    last_progress: float = field(default=None)  # type: ignore[assignment]
    stages: dict[str, StageWatch] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    dead: dict[str, str] = field(default_factory=dict)  # agent or task -> why it stopped
    last_tick: float | None = None  # the watch's last run (None: not started, nothing to judge)
    trouble_at: float = float("-inf")  # the last time a dependency was failing (or just recovered)

    def __post_init__(self):
        if self.last_progress is None:
            self.last_progress = self.clock()

    # ------------------------------------------------------------ what the process itself calls
    def tick(self) -> None:
        """The worker's 2-second watch ran (its event loop and timers turn)."""
        self.last_tick = self.clock()

    def died(self, name: str, why: str) -> None:
        """An agent or task stopped for good (a restart is what helps)."""
        self.dead[name] = why

    def revived(self, name: str) -> None:
        self.dead.pop(name, None)

    # ------------------------------------------------------------ what stage code calls
    def progressed(self) -> None:
        """Something moved forward (a delivery, a delete, a parsed object)."""
        self.last_progress = self.clock()

    def failing(self, step: str, reason: str, dependency: str = "") -> None:
        """One more failed attempt of `step` (e.g. "delete of 'key'"), which will be retried; `dependency`
        (default: `dependency_of(step)`) is whose failure it is."""
        now = self.clock()
        for old in [s for s, f in self.failures.items() if now - f.last > STALE_FAILURE_S]:
            del self.failures[old]  # abandoned without an ok() (e.g. the partition moved on)
        self.trouble_at = now
        failure = self.failures.get(step)
        if failure is None:
            self.failures[step] = Failure(reason, now, now, dependency=dependency or dependency_of(step))
        else:
            failure.reason, failure.last, failure.attempts = reason, now, failure.attempts + 1

    def ok(self, step: str) -> None:
        """`step` succeeded (or was given up on purpose): it no longer counts as failing."""
        if self.failures.pop(step, None) is not None:
            self.trouble_at = self.clock()  # a stage it held gets unhealthy_after from now to move

    # ------------------------------------------------------------ what the consumer observer calls
    def observe_stage(self, stage: str, lag: int, committed: int) -> None:
        """This worker's lag on `stage`'s topic and the sum of its committed offsets there."""
        now = self.clock()
        watch = self.stages.get(stage)
        if watch is None:
            self.stages[stage] = StageWatch(lag, committed, now)
            return
        if committed > watch.committed or (lag > 0 and watch.lag <= 0):
            watch.last_progress = now  # offsets moved, or work just arrived: its clock starts now
        watch.lag, watch.committed = lag, committed

    @property
    def lag(self) -> int | None:
        return sum(w.lag for w in self.stages.values()) if self.stages else None

    # ------------------------------------------------------------ the verdict
    def retrying(self) -> list[dict]:
        """Steps being retried now, oldest first (for /service/info, also below the threshold)."""
        now = self.clock()
        return [{"step": step, "failing_s": round(now - f.since, 1), "attempts": f.attempts, "reason": f.reason,
                 "dependency": f.dependency}
                for step, f in sorted(self.failures.items(), key=lambda item: item[1].since)
                if now - f.last <= STALE_FAILURE_S]

    def problems(self, unhealthy_after: float) -> list[str]:
        """Readiness: every problem, a dependency's trouble included (none = ready)."""
        now = self.clock()
        problems = [self.fatal] if self.fatal else []
        problems += self._stuck(unhealthy_after, "stuck")
        for item in self.retrying():
            if item["failing_s"] > unhealthy_after:
                problems.append(f"{item['step']} keeps failing ({item['attempts']} attempts in "
                                f"{item['failing_s']:.0f}s): {item['reason']}")
        if not self.stages and self.pending and now - self.last_progress > unhealthy_after:
            problems.append(f"no progress for {now - self.last_progress:.0f}s while work is pending")
        return problems + self.live_problems(unhealthy_after, stuck=False)

    def live_problems(self, unhealthy_after: float, stuck: bool = True) -> list[str]:
        """Liveness: only what a restart can help — a dead agent or task, a watch that stopped turning, a
        stage stuck while no dependency is failing (none = alive)."""
        problems = [f"{name} stopped: {why}" for name, why in sorted(self.dead.items())]
        idle = 0.0 if self.last_tick is None else self.clock() - self.last_tick
        if idle > max(WATCH_STALL_S, unhealthy_after / 5):
            problems.append(f"the worker's 2-second watch has not run for {idle:.0f}s (event loop or timers "
                            "wedged)")
        if self.fatal:
            self.trouble_at = self.clock()
        if stuck and not self.retrying():  # wedged: stuck for unhealthy_after since any dependency trouble
            problems += [f"{p}; no dependency is failing (wedged)"
                         for p in self._stuck(unhealthy_after, "stuck", since=self.trouble_at)]
        return problems

    def dependencies(self) -> dict[str, str]:
        """Per dependency, its current problem ("" when none): a failing step of it, or its rejected keys."""
        out = dict.fromkeys(DEPENDENCIES, "")
        for item in reversed(self.retrying()):  # the oldest failure of each dependency wins
            if item["dependency"]:
                out[item["dependency"]] = f"{item['step']}: {item['reason']}"
        if self.fatal:
            out["kentik" if self.fatal.startswith("Kentik") else "cos"] = self.fatal
        return out

    def _stuck(self, unhealthy_after: float, word: str, since: float = float("-inf")) -> list[str]:
        now = self.clock()
        out = []
        for stage, watch in sorted(self.stages.items()):
            idle = now - max(watch.last_progress, since)
            if watch.lag > 0 and idle > unhealthy_after:
                out.append(f"stage {stage} {word}: no progress for {idle:.0f}s while {watch.lag} messages of "
                           f"its topic ({CONSUMES.get(stage, stage)}) are pending on this worker")
        return out


def consumer_lag(assignment, highwater, committed, start=lambda tp: None) -> tuple[int, int]:
    """(messages pending, sum of committed offsets) over `assignment`. `highwater(tp)` is the next offset to
    be written (None if unknown), `committed(tp)` the committed offset — Kafka's, Faust's: the next offset to
    read, so everything before it is done — or None when the group never committed on that partition: then
    everything from the partition's start (`start(tp)`, its earliest offset; None: 0) is pending, however far
    the consumer has read (read is not done)."""
    lag = 0
    total = 0
    for tp in assignment:
        hw = highwater(tp)
        done = committed(tp)
        if done is not None:
            total += done
        else:
            done = start(tp) or 0
        if hw is not None:
            lag += max(0, hw - done)
    return lag, total
