"""The one home of retries and failure state: for every dependency (COS, Kentik, IPFIX collectors, VPC API)
how long to wait between attempts, when to give up, and whom a failure makes unhealthy.

`POLICIES` is the table (one `Policy` per dependency); each client says what one of its failures is, next to
it (connectors/kentik.py `classify`; connectors/cos.py `CosError.transient`, a `Cause` by
streams/stages/bucket.py `cause_of`), and the pure decisions here turn that into an action: `Backoff.delay`,
`gives_up`, `holds_worker`, `probe_due`; `retry_transient` is the retry loop of any call, `Pauser` its
stop-aware pause. The shell that applies them to each source's calls, with each source's failure state and
what it makes of the worker's health, is streams/stages/failures.py (`Failures.source_retry`).

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
from dataclasses import dataclass
from typing import Any, Callable

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
