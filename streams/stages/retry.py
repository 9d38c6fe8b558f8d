"""The one home of retries and failure state: for every dependency (COS, Kentik, IPFIX collectors, VPC API)
how long to wait between attempts, when to give up, and whom a failure makes unhealthy.

`POLICIES` is the table (one `Policy` per dependency); each client says what one of its failures is, next to
it (connectors/kentik.py `classify`; connectors/cos.py `CosError.transient`, a `Cause` by
streams/stages/bucket.py `cause_of`), and the pure decisions here turn that into an action: `Backoff.delay`,
`gives_up`, `holds_worker`, `probe_due`. `Failures` is the shell: each source's failing operations (its
state, `blueflow_source_healthy`), the worker's health (`Health.failing`, a typed `Cause` in `Health.fatal`)
and `source_retry`, the retry loop of every call of a source (`retry_transient`: of any blocking call).

One rule for one source or many (the flags make a list of one): a source's failure is the worker's own
(readiness names it, retried in place) unless other sources share the worker; then it is only that source's
problem, and once it has failed for `give_up_s` its objects wait in its bucket (SourceUnavailable) so that it
holds none of the others.

The pause between attempts leaves the process without acking once the app is asked to stop
(streams/stages/stopping.py).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from streams.observe.health import Cause
from streams.stages.stopping import HandOver, exit_without_ack

log = logging.getLogger("blueflow")


class Transient(Exception):
    """A failure that goes away by itself (COS unreachable, throttled, 5xx): retry, never quarantine."""


class SourceUnavailable(Exception):
    """One source kept failing while others share the worker: its object waits in its bucket, they go on."""


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.5
    cap_s: float = 30.0
    jitter: bool = True

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry number `attempt` (0-based); at least `retry_after` (bounded) when given."""
        delay = min(self.cap_s, self.base_s * 2 ** min(attempt, 16))
        if self.jitter:
            delay *= 0.5 + random.random() / 2
        if retry_after:
            delay = max(delay, min(retry_after, self.cap_s * 4))
        return delay


DEFAULT = Backoff()


@dataclass(frozen=True)
class Policy:
    """How the failures of one dependency are retried and reported."""

    dependency: str
    backoff: Backoff = DEFAULT
    # a source failing this long while others share the worker: its objects wait in the bucket (it holds none);
    # 3 s keeps the healthy sources' latency within noise (faults `sources` once saw acct-a's p99 at 6.3 s vs
    # 2.1 s with 10 s: an acct-b message retried ahead of its objects)
    give_up_s: float = 3.0
    probe_every_s: float = 30.0  # ...and one call per this interval (per worker and operation) checks it is back
    credentials_wait_s: float = 15.0  # credentials refused: the worker (or source) is unhealthy, retried this slowly
    refusals: int = 3  # a permanent refusal is believed after this many answers (then the object is quarantined)
    sdk_attempts: int = 1  # attempts the client's SDK makes per call before the pipeline's own retry
    loop_retry_s: float = 30.0  # a leader loop's failed round (listing, metadata) is tried again this soon


POLICIES = {
    # two SDK attempts (not the SDK's five), whatever the settings came from: the pipeline retries on its own,
    # and a failing source's probe must cost the shared stage a second or two, not ten
    "cos": Policy("cos", Backoff(0.5, 30.0), sdk_attempts=2),
    "kentik": Policy("kentik", Backoff(0.2, 30.0)),  # a faster start: most Kentik failures are brief
    "ipfix": Policy("ipfix", Backoff(0.5, 30.0)),
}  # vpc: the SDK's own retries (connectors/vpc.py); the leader's loop fetches again each metadata_interval
COS, KENTIK, IPFIX = POLICIES["cos"], POLICIES["kentik"], POLICIES["ipfix"]


# ------------------------------------------------------------------------------------------ pure decisions
def holds_worker(shared: bool) -> bool:
    """Whether a source's failure is the worker's (readiness fails, the call is retried in place): unless
    other sources share the worker (`shared`), whom waiting for it would hold."""
    return not shared


def gives_up(failing_for_s: float, shared: bool, policy: Policy = COS) -> bool:
    """Whether a call of a failing source stops being retried (SourceUnavailable: its objects wait in the
    bucket): it failed for `give_up_s` and other sources share the worker, which it would otherwise hold."""
    return shared and failing_for_s >= policy.give_up_s


def probe_due(failing_for_s: float, shared: bool, since_probe_s: float, policy: Policy = COS) -> bool:
    """Whether a call of a source that gave up is tried anyway (one probe per `probe_every_s`)."""
    return not gives_up(failing_for_s, shared, policy) or since_probe_s >= policy.probe_every_s


class Pauser:
    """Sleeps between retries: leaves the process (without ack) as soon as the app is asked to stop, and the
    message (HandOver, without ack) as soon as a rebalance begins."""

    def __init__(self, should_stop: Callable[[], bool], handing_over: Callable[[], bool] = lambda: False):
        self.should_stop, self.handing_over = should_stop, handing_over

    async def __call__(self, delay_s: float) -> None:
        deadline = time.monotonic() + delay_s
        while True:
            if self.should_stop():
                exit_without_ack("stopping while a message is still being retried")
            if self.handing_over():
                raise HandOver("a rebalance began while a call was being retried")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(0.5, remaining))


async def retry_transient(what: str, attempt_once: Callable[[], Any], *, pause: Callable, health=None,
                          step: str = "", scrub: Callable[[str], str] = str, backoff: Backoff = DEFAULT,
                          dependency: str = ""):
    """Await `attempt_once()` until it stops raising Transient. While it keeps failing, `health` learns that
    `step` is failing (so /healthz can report a stall with its cause); success clears it."""
    step = f"{step}: {what}" if step else ""
    attempt = 0
    while True:
        try:
            result = await attempt_once()
        except Transient as exc:
            reason = scrub(str(exc))
            if health is not None and step:
                health.failing(step, reason, dependency)
            delay = backoff.delay(attempt)
            attempt += 1
            log.warning("%s failed (%s); retry %d in %.1fs", what, reason, attempt, delay)
            try:
                await pause(delay)
            except HandOver:
                if health is not None and step:
                    health.ok(step)  # the message's next owner retries it and reports what it meets
                raise
            continue
        if health is not None and step:
            health.ok(step)
        return result


# ------------------------------------------------------------------------------------------ failure state
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

    # ---------------------------------------------------------------- bookkeeping
    def shared(self, source) -> bool:
        """Whether other sources share this worker with `source` (the flags' one source: no)."""
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

    def step_of(self, step: str, source) -> str:
        """`step` as health knows it for `source`: the implicit source's steps keep their plain names."""
        return f"{step} (source {source.name})" if source.record_name else step

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
