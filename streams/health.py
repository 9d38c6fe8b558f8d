"""What /healthz reports: pure bookkeeping fed by the stages and by the consumer observer (streams/web.py).

A worker is unhealthy when
- `fatal` is set (a credentials problem: Kentik or COS rejected the keys), or
- a stage is stuck: its topic has messages on this worker's partitions that are not committed, and its
  committed offsets did not move for `unhealthy_after` seconds (`observe_stage`), or
- a step keeps failing: stage code reports each failed attempt of a retried step (`failing(step, reason)`)
  and its success (`ok(step)`); a step failing for `unhealthy_after` seconds, and still being retried, is a
  problem with its last reason (a COS delete answering 403 forever, a key the delete cannot carry), or
- (no consumer observed yet) the older `pending` flag is set and nothing `progressed()` for that long.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

STAGE_TOPICS = {"parse": "objects", "enrich": "flows", "sink": "kflow"}  # stage -> topic suffix it consumes
STALE_FAILURE_S = 120.0  # a failing step not reported again for this long is no longer being retried


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


@dataclass
class Health:
    fatal: str = ""
    pending: bool = False
    clock: Callable[[], float] = time.monotonic
    last_progress: float = field(default=None)  # type: ignore[assignment]
    stages: dict[str, StageWatch] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)

    def __post_init__(self):
        if self.last_progress is None:
            self.last_progress = self.clock()

    # ------------------------------------------------------------ what stage code calls
    def progressed(self) -> None:
        """Something moved forward (a delivery, a delete, a parsed object)."""
        self.last_progress = self.clock()

    def failing(self, step: str, reason: str) -> None:
        """One more failed attempt of `step` (e.g. "delete of 'key'"), which will be retried."""
        now = self.clock()
        for old in [s for s, f in self.failures.items() if now - f.last > STALE_FAILURE_S]:
            del self.failures[old]  # abandoned without an ok() (e.g. the partition moved on)
        failure = self.failures.get(step)
        if failure is None:
            self.failures[step] = Failure(reason, now, now)
        else:
            failure.reason, failure.last, failure.attempts = reason, now, failure.attempts + 1

    def ok(self, step: str) -> None:
        """`step` succeeded (or was given up on purpose): it no longer counts as failing."""
        self.failures.pop(step, None)

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
        return [{"step": step, "failing_s": round(now - f.since, 1), "attempts": f.attempts, "reason": f.reason}
                for step, f in sorted(self.failures.items(), key=lambda item: item[1].since)
                if now - f.last <= STALE_FAILURE_S]

    def problems(self, unhealthy_after: float) -> list[str]:
        now = self.clock()
        problems = [self.fatal] if self.fatal else []
        for stage, watch in sorted(self.stages.items()):
            idle = now - watch.last_progress
            if watch.lag > 0 and idle > unhealthy_after:
                problems.append(f"stage {stage} stuck: no progress for {idle:.0f}s while {watch.lag} messages of "
                                f"its topic ({STAGE_TOPICS.get(stage, stage)}) are pending on this worker")
        for item in self.retrying():
            if item["failing_s"] > unhealthy_after:
                problems.append(f"{item['step']} keeps failing ({item['attempts']} attempts in "
                                f"{item['failing_s']:.0f}s): {item['reason']}")
        if not self.stages and self.pending and now - self.last_progress > unhealthy_after:
            problems.append(f"no progress for {now - self.last_progress:.0f}s while work is pending")
        return problems


def consumer_lag(assignment, highwater, committed, read) -> tuple[int, int]:
    """(lag, sum of committed offsets) over `assignment`: `highwater(tp)` is the next offset to be written
    (None if unknown), `committed(tp)`/`read(tp)` the last committed/read offsets (None if none)."""
    lag = 0
    total = 0
    for tp in assignment:
        hw = highwater(tp)
        done = committed(tp)
        if done is None:
            done = read(tp)
        if done is not None:
            total += done
        if hw is None:
            continue
        lag += max(0, hw - 1 - (done if done is not None else -1))
    return lag, total
