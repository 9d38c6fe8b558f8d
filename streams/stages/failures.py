"""Each source's failure state in one worker, and the shell that applies streams/stages/retry.py's policy to
it: `Failures.source_retry` (the retry loop of every call of a source), the failing operations of each source
(`blueflow_source_healthy`), what they make of the worker's health (`Health.failing`, a typed `Cause` in
`Health.fatal`), each source's backlog as the leader last listed it, and Kentik's credentials per source.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from streams.observe.health import Cause
from streams.stages.retry import COS, POLICIES, SourceUnavailable, Transient, gives_up, holds_worker, probe_due
from streams.stages.retry import retry_transient


@dataclass
class Backlog:
    objects: int = 0
    oldest_age_s: float = 0.0


@dataclass
class _Failing:
    problem: str
    since: float
    cause: Cause | None = None


@dataclass
class SourceFailures:
    """One source's failing operations (COS list/get/delete, kentik) and when a waiting one was last probed."""

    failing: dict = field(default_factory=dict)  # operation -> _Failing
    probed: dict = field(default_factory=dict)  # operation -> when it was last tried while waiting

    @property
    def problem(self) -> str:
        return "; ".join(f.problem for f in list(self.failing.values()))  # written by pool threads


class Failures:
    """The failure state of one worker: per source and operation, and what it makes of the worker's health."""

    def __init__(self, sources, health, scrub: Callable[[str], str] = str, clock: Callable[[], float] = time.monotonic):
        self.sources, self.health, self.scrub, self.clock = sources, health, scrub, clock
        self.state = {s.name: SourceFailures() for s in sources.all}
        self.backlog = {s.name: Backlog() for s in sources.all}  # the leader's last listing of each

    # ---------------------------------------------------------------- bookkeeping
    def shared(self, source) -> bool:
        """Whether other sources share this worker with `source` (then its failure is its own, not the worker's)."""
        return any(s.name != source.name for s in self.sources.all)

    def failing_for(self, source, operation: str) -> float:
        """Seconds the source's calls of `operation` have been failing (0: they work)."""
        found = self.state[source.name].failing.get(operation)
        return self.clock() - found.since if found else 0.0

    def failed(self, source, operation: str, problem: str, cause: Cause | None = None) -> None:
        """A call of `operation` of `source` failed with `problem`; a `cause` (credentials refused) is also the
        worker's `Health.fatal` while the source holds the worker."""
        from streams.observe import source_metrics

        failing = self.state[source.name].failing
        held = holds_worker(self.shared(source))
        since = failing[operation].since if operation in failing else self.clock()
        failing[operation] = _Failing(problem, since, cause)
        source_metrics.HEALTHY.labels(source=source.name).set(0)
        if cause is not None and held:
            self.health.fatal = cause

    def succeeded(self, source, operation: str | None = None) -> None:
        """A call of `operation` (None: every operation) of the source succeeded again."""
        from streams.observe import source_metrics

        failing = self.state[source.name].failing
        for name in ([operation] if operation else list(failing)):
            gone = failing.pop(name, None)
            fatal = self.health.fatal
            if gone is not None and gone.cause is not None and fatal is not None and fatal.same(gone.cause):
                self.health.fatal = None
        source_metrics.HEALTHY.labels(source=source.name).set(0 if failing else 1)

    def waiting(self, source, operation: str) -> bool:
        """True when a call of `operation` is not even tried: the source gave up and was probed less than
        `probe_every_s` ago (else this call is the probe)."""
        policy = POLICIES.get(operation, COS)
        probed = self.state[source.name].probed
        since_probe = self.clock() - probed.get(operation, float("-inf"))
        if probe_due(self.failing_for(source, operation), self.shared(source), since_probe, policy):
            if gives_up(self.failing_for(source, operation), self.shared(source), policy):
                probed[operation] = self.clock()
            return False
        return True

    def problems(self) -> dict[str, str]:
        return {name: state.problem for name, state in self.state.items() if state.problem}

    def view(self) -> list[dict]:
        """Per source: name, bucket, problem, backlog (leader), oldest object's age — for /service/info."""
        return [{"source": s.name, "bucket": s.bucket, "problem": self.state[s.name].problem,
                 "backlog": self.backlog[s.name].objects,
                 "oldest_object_age_s": round(self.backlog[s.name].oldest_age_s, 1)} for s in self.sources.all]

    def step_of(self, step: str, source) -> str:
        """`step` as health knows it for `source`: the flags' source's steps keep their plain names."""
        return step if source.from_flags else f"{step} (source {source.name})"

    # ---------------------------------------------------------------- the retry loop of a source's calls
    async def source_retry(self, run_sync, pause, source, operation: str, what: str, step: str, fn, *args):
        """Blocking `fn(*args)`, a call of one source's `operation` (COS get/delete/list, kentik), until it stops
        raising Transient. When other sources share the worker, a source that has failed for `give_up_s` gets
        one attempt per probe and then raises SourceUnavailable (its object stays in the bucket for a later
        listing), reported as that source's problem only; otherwise it is retried in place and the worker's
        health reports the step."""
        policy = POLICIES.get(operation, COS)
        if self.waiting(source, operation):
            raise SourceUnavailable(f"source {source.name}: {policy.dependency.upper()} {operation} failing for "
                                    f"{self.failing_for(source, operation):.0f}s")

        async def attempt():
            try:
                return await run_sync(fn, *args)
            except Transient as exc:
                if gives_up(self.failing_for(source, operation), self.shared(source), policy):
                    self.health.ok(f"{step}: {what}")
                    raise SourceUnavailable(f"source {source.name}: {self.scrub(str(exc))}") from None
                raise

        return await retry_transient(what, attempt, pause=pause, health=_WhileHeld(self, source), step=step,
                                     scrub=self.scrub, backoff=policy.backoff, dependency=policy.dependency)

    # ---------------------------------------------------------------- Kentik's credentials, per source
    def kentik_guard(self, source, pause):
        """(health, pause) for delivering one chunk of `source` (streams/stages/sink/delivery.py): a refusal of
        its credentials is the source's problem (and the worker's while it holds the worker); once refused for
        `give_up_s` while other sources share the worker, the pause raises SourceUnavailable (the chunk waits)."""
        self.check_kentik(source)
        reporter = KentikReport(self, source)

        async def guarded_pause(delay_s: float) -> None:
            if reporter.refused:
                self.check_kentik(source)
            await pause(delay_s)

        return reporter, guarded_pause

    def check_kentik(self, source) -> None:
        if self.waiting(source, "kentik"):
            raise SourceUnavailable(f"source {source.name}: Kentik refuses its credentials "
                                    f"({self.state[source.name].failing['kentik'].problem})")


class _WhileHeld:
    """The worker's health for a source's retried step, told only while the source holds the worker."""

    def __init__(self, failures: Failures, source):
        self.failures, self.source = failures, source

    def failing(self, step: str, reason: str, dependency: str = "") -> None:
        if holds_worker(self.failures.shared(self.source)):
            self.failures.health.failing(step, reason, dependency)

    def ok(self, step: str) -> None:
        self.failures.health.ok(step)


class KentikReport:
    """What the Kentik delivery reports to (streams/stages/sink/delivery.py): accepted, failing, refused."""

    def __init__(self, failures: Failures, source):
        self.failures, self.source = failures, source

    @property
    def refused(self) -> Cause | None:
        found = self.failures.state[self.source.name].failing.get("kentik")
        return found.cause if found else None

    def credentials_refused(self, cause: Cause) -> None:
        self.failures.failed(self.source, "kentik", cause.message, cause)

    def failing(self, step: str, reason: str) -> None:  # Kentik answering 3xx/5xx: the worker's health too
        self.failures.health.failing(self.failures.step_of(step, self.source), reason, "kentik")

    def accepted(self, step: str) -> None:
        if self.refused is not None:
            self.failures.succeeded(self.source, "kentik")
        self.failures.health.ok(self.failures.step_of(step, self.source))
        self.failures.health.progressed()
