"""Getting one batch of kflow records accepted by Kentik, whatever it takes.

Policy (docs/kentik.md): what each answer means is `connectors.kentik.classify` (success is HTTP 200 only,
whatever its body); how long to wait is the Kentik row of streams/stages/retry.py's `POLICIES`. Transport
errors (timeouts included), 408, 429, 3xx and 5xx are retried forever with capped exponential backoff and
jitter (honouring Retry-After): a redirect is never followed by the client and never means "accepted" nor
"refused for good" -- it is a misrouted or misconfigured endpoint, so the batch waits instead of being
dead-lettered; every failed attempt is reported (step "sink: kentik delivery", dependency kentik), so
/readyz and /service/info problems name Kentik and its last answer once it kept failing for
--unhealthy_after (liveness stays green: a restart does not fix Kentik). 401/403 mean the credentials are
wrong: a `Cause` (kentik, credentials) is reported and the batch retried slowly without advancing, so nothing
is lost and nothing after it is committed. 413 splits the batch in halves. Other 4xx are permanent: the batch
is refused and the caller quarantines the object.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from connectors.kentik import PostResult, Verdict, classify  # PostResult: status (0 = transport error), ...
from streams.observe import metrics
from streams.observe.health import Cause
from streams.formats.batches import KflowChunk
from streams.stages.retry import KENTIK, Policy

log = logging.getLogger("blueflow.sink")


class BatchRefused(Exception):
    """Kentik refused a batch for good (a 4xx other than 401/403/413/429)."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"Kentik refused the batch with HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


KENTIK_STEP = "sink: kentik delivery"  # the step health knows Kentik's failing answers by (streams/observe/health.py)

Post = Callable[[bytes], Awaitable[PostResult]]
Encode = Callable[[int, int], Awaitable[bytes]]


def credentials_cause(status: int, what: str) -> Cause:
    return Cause("kentik", "credentials", f"Kentik rejected the credentials (HTTP {status}) for {what}; fix "
                 "KENTIK_API_TOKEN / --api_email and restart. Nothing is lost: the batch waits.", "kentik")


async def deliver(encode: Encode, post: Post, count: int, *, what: str, report, policy: Policy = KENTIK,
                  sleep=asyncio.sleep) -> int:
    """Deliver records [0, count) and return how many were accepted (always `count`).

    `encode(start, stop)` builds the request body for a slice of the batch; `post(body)` sends it; `report`
    (streams.stages.retry.KentikReport) learns each answer. Never returns before every record is accepted;
    raises BatchRefused for permanent refusals.
    """
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
            verdict = classify(status)
            if verdict is Verdict.ACCEPTED:
                metrics.KENTIK_BYTES.inc(len(body))
                accepted += stop - start
                report.accepted(KENTIK_STEP)
                break
            if verdict is Verdict.CREDENTIALS:
                cause = credentials_cause(status, what)
                report.credentials_refused(cause)
                log.error("sink: %s", cause.message, extra={"dependency": cause.dependency, "cause": cause.kind})
                await sleep(policy.credentials_wait_s)
                continue
            if verdict is Verdict.TOO_LARGE and stop - start > 1:
                middle = (start + stop) // 2
                log.warning("sink: Kentik said the request for %s is too large (%d records, %d bytes); splitting",
                            what, stop - start, len(body))
                pending[:0] = [(start, middle), (middle, stop)]
                break
            if verdict is Verdict.RETRY:
                delay = policy.backoff.delay(attempt, result.retry_after)
                attempt += 1
                why = result.reason or f"HTTP {status}"
                report.failing(KENTIK_STEP, f"Kentik answered {why} to the POST of {what}" if status else
                               f"Kentik did not answer the POST of {what}: {why}")
                log.warning("sink: delivery of %s failed (%s); retry %d in %.1fs", what, why, attempt, delay)
                await sleep(delay)
                continue
            permanent += 1
            if permanent >= policy.refusals:
                raise BatchRefused(status, result.reason or f"HTTP {status}")
            await sleep(policy.backoff.delay(attempt, None))
            attempt += 1
    return accepted


async def deliver_chunk(ctx, chunk: KflowChunk, body: bytes | None = None) -> None:
    """Get every record of one chunk (one device) accepted by the Kentik account of its source (raises
    BatchRefused for permanent refusals). `body`: the whole chunk's request body if already encoded."""
    from streams.formats.kflow.kflow import encode_packed_chf, frame_body
    from connectors.kentik import KentikTransportError

    source = ctx.sources.get(chunk.source)
    device, field_ids = await ctx.devices.get(ctx, chunk.device_name, chunk.region, chunk.zone, chunk.subnet_id,
                                              source)
    objects = len({p.key for p in chunk.parts})
    what = (f"chunk {chunk.chunk + 1}/{chunk.chunks} of {chunk.key!r}" if objects == 1 else
            f"chunks of {objects} objects from {chunk.key!r} on")
    what = f"{what} ({chunk.flow_count} flows, device {device.name})"

    def encode_sync(start: int, stop: int) -> bytes:
        return frame_body(encode_packed_chf(chunk.slice(start, stop), int(device.id), field_ids))

    def post_sync(body: bytes) -> PostResult:
        try:
            return ctx.rt.kentik_client(source).post_flows_result(device, body)
        except KentikTransportError as exc:
            return PostResult(0, None, ctx.rt.scrub(str(exc)))

    async def encode(start, stop):
        if body is not None and (start, stop) == (0, chunk.flow_count):
            return body
        return await ctx.rt.run_sync(encode_sync, start, stop)

    async def post(body):
        return await ctx.rt.run_sync(post_sync, body)

    report, pause = ctx.failures.kentik_guard(source, ctx.pause)
    try:
        await deliver(encode, post, chunk.flow_count, what=what, report=report, sleep=pause)
    except BatchRefused as exc:
        raise BatchRefused(exc.status, f"{what}: {exc.detail}") from None
    metrics.CHF_DELIVERED.inc(chunk.flow_count)
