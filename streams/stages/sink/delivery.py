"""Getting one batch of kflow records accepted by Kentik, whatever it takes.

Policy (docs/kentik.md): success is HTTP 200 only (whatever its body). Transport errors (timeouts included),
408, 429, 3xx and 5xx are retried forever with capped exponential backoff and jitter (honouring
Retry-After): a redirect is never followed by the client and never means "accepted" nor "refused for good" --
it is a misrouted or misconfigured endpoint, so the batch waits instead of being dead-lettered; every failed
attempt is reported to health (step "sink: kentik delivery", dependency kentik), so /readyz and /service/info
problems name Kentik and its last answer once it kept failing for --unhealthy_after (liveness stays green: a
restart does not fix Kentik). 401/403 mean the credentials are wrong: the
worker reports unhealthy and keeps retrying slowly without advancing, so nothing is lost and nothing
after it is committed. 413 splits the batch in halves. Other 4xx are permanent: the batch is refused and
the caller quarantines the object.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

from connectors.kentik import PostResult  # status (0 = transport error), retry_after, reason
from streams.observe import metrics
from streams.stages.retry import Backoff

log = logging.getLogger("blueflow.sink")


class BatchRefused(Exception):
    """Kentik refused a batch for good (a 4xx other than 401/403/413/429)."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"Kentik refused the batch with HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass
class RetryPolicy:
    """Kentik's use of the one backoff (streams/stages/retry.py): a faster start, plus the 401/403 and refusal rules."""

    backoff_curve: Backoff = Backoff(base_s=0.2, cap_s=30.0)
    auth_wait_s: float = 15.0
    max_permanent_attempts: int = 3

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        return self.backoff_curve.delay(attempt, retry_after)


def retried(status: int) -> bool:
    """Statuses (0 = no HTTP answer) that are retried with backoff until Kentik accepts."""
    return status in (0, 408, 429) or 300 <= status < 400 or status >= 500


KENTIK_STEP = "sink: kentik delivery"  # the step health knows Kentik's failing answers by (streams/observe/health.py)

Post = Callable[[bytes], Awaitable[PostResult]]
Encode = Callable[[int, int], Awaitable[bytes]]


async def deliver(encode: Encode, post: Post, count: int, *, what: str, health, policy: RetryPolicy | None = None,
                  sleep=asyncio.sleep) -> int:
    """Deliver records [0, count) and return how many were accepted (always `count`).

    `encode(start, stop)` builds the request body for a slice of the batch; `post(body)` sends it.
    Never returns before every record is accepted; raises BatchRefused for permanent refusals.
    """
    policy = policy or RetryPolicy()
    pending = [(0, count)]
    accepted = 0
    while pending:
        start, stop = pending.pop(0)
        body = await encode(start, stop)
        attempt = 0
        permanent = 0
        while True:
            result = await post(body)
            status = result.status
            metrics.KENTIK_REQUESTS.labels(result=str(status) if status else "transport_error").inc()
            if status == 200:
                metrics.KENTIK_BYTES.inc(len(body))
                accepted += stop - start
                if health.fatal.startswith("Kentik"):
                    health.fatal = ""
                health.ok(KENTIK_STEP)
                health.progressed()
                break
            if status in (401, 403):
                health.fatal = (f"Kentik rejected the credentials (HTTP {status}) for {what}; fix KENTIK_API_TOKEN "
                                f"/ --api_email and restart. Nothing is lost: the batch waits.")
                log.error("sink: %s", health.fatal)
                await sleep(policy.auth_wait_s)
                continue
            if status == 413 and stop - start > 1:
                middle = (start + stop) // 2
                log.warning("sink: Kentik said the request for %s is too large (%d records, %d bytes); splitting",
                            what, stop - start, len(body))
                pending[:0] = [(start, middle), (middle, stop)]
                break
            if retried(status):
                delay = policy.backoff(attempt, result.retry_after)
                attempt += 1
                why = result.reason or f"HTTP {status}"
                health.failing(KENTIK_STEP, f"Kentik answered {why} to the POST of {what}" if status else
                               f"Kentik did not answer the POST of {what}: {why}")
                log.warning("sink: delivery of %s failed (%s); retry %d in %.1fs", what, why, attempt, delay)
                await sleep(delay)
                continue
            permanent += 1
            if permanent >= policy.max_permanent_attempts:
                raise BatchRefused(status, result.reason or f"HTTP {status}")
            await sleep(policy.backoff(attempt, None))
            attempt += 1
    return accepted
