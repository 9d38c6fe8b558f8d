"""Stage parse: objects → flows. Download the listed objects of one `objects` message (a group; the exact
versions listed), parse and validate them, and publish their flows as FlowChunk messages of at most
`chunk_flows` flows — several small objects share a message; a big one has a message per chunk. An object
streams through the decoder in bounded memory, its chunks held as compact encoded bytes until the object is
known good (streams/formats/flowlog/flowencode.py): a bad object is quarantined alone with nothing of it delivered (it
stays in the bucket); the others of its group go on.

Pure core: `admit` (process, or skip and why); streams/formats/flowlog/flowencode.py (`read_object`, `pack`).
Shell: `handle` (decode, dedup, one hand-off to download + parse + encode, publish).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from itertools import islice

from streams.observe import metrics, source_metrics
from streams.formats.avro import AvroDecodeError
from streams.formats.flowlog.flowencode import (ObjectFlows, encode_packed, envelope_failure, object_messages,
                                                read_object)
from streams.formats.flowlog.flowlog import FlowLogError, Limits, parse_object_key
from streams.formats.records import ObjectRef
from streams.stages.retry import SourceUnavailable, Transient
from streams.stages import bucket

log = logging.getLogger("blueflow")

SEND_WINDOW = 16  # messages of a big object made and in the producer's hands at a time (~4 MB at 2,000 flows)


@dataclass(frozen=True)
class Admission:
    process: bool
    skip_reason: str = ""  # already_delivered | already_quarantined | in_flight (metric label)
    reparse: bool = False  # stuck object parsed again (chunks already accepted are not sent again)


def admit(ref: ObjectRef, outcome: str | None, in_flight: tuple[str, float] | None) -> Admission:
    """Whether to process this reference: an object whose key + ETag already has an outcome is skipped (unless
    an operator forced it); one this worker is still delivering is skipped unless the poller says it is
    stuck (republish)."""
    if ref.force:
        return Admission(True)
    if outcome is not None:
        return Admission(False, f"already_{outcome}")
    if in_flight is not None and in_flight[0] == ref.etag:
        if not ref.republish:
            return Admission(False, "in_flight")
        return Admission(True, reparse=True)
    return Admission(True)


def download_and_parse(ctx, ref: ObjectRef, keep: bool = True) -> ObjectFlows | None:
    """Blocking: stream the object through the decoder, its flows encoded chunk by chunk as they come
    (streams/formats/flowlog/flowencode.py). None if it vanished or changed since it was listed. Raises FlowLogError
    for a bad object (nothing of it is kept), Transient for a COS problem."""
    parse_object_key(ref.key)  # unknown layouts are quarantined before any download
    settings = ctx.settings
    try:
        return bucket.read_version(ctx, ctx.sources.get(ref.source), ref, partial(read_object, ref),
                                   settings.chunk_flows, Limits(max_object_bytes=settings.max_object_bytes), keep)
    except (FlowLogError, Transient):
        raise
    except Exception as exc:
        raise FlowLogError("parse", f"unexpected parser failure: {exc}") from None


@dataclass
class Fetched:
    """What downloading a group gave, per object (errors are values): parsed objects with their encoded
    messages, bad objects with the reason, objects that vanished, and COS failures to retry."""

    parsed: list = field(default_factory=list)  # (ref, flow count)
    messages: list = field(default_factory=list)  # encoded FlowChunk of the objects of one chunk
    several: list = field(default_factory=list)  # ObjectFlows of several chunks: messages made as they are sent
    bad: list = field(default_factory=list)  # (ref, FlowLogError)
    vanished: list = field(default_factory=list)  # ref
    transient: list = field(default_factory=list)  # (ref, Transient)


def fetch(ctx, source, refs: list[ObjectRef]) -> Fetched:
    """Blocking, one thread-pool hand-off per message: download and parse every object of the group (all of
    `source`; up to `fetch_concurrency` at once), pack the flows of the objects of one chunk into encoded
    FlowChunk messages in the group's order; an object of several chunks stays compressed chunks, its messages
    made as they are sent (nothing kept in a dry run)."""
    out = Fetched()
    small = []  # objects of one chunk, packed together
    for ref, obj in zip(refs, download_all(ctx, refs, keep=not source.dry_run)):
        if isinstance(obj, FlowLogError):
            out.bad.append((ref, obj))
        elif isinstance(obj, Transient):
            out.transient.append((ref, obj))
        elif obj is None:
            out.vanished.append(ref)
        elif obj.encoded and (why := envelope_failure(obj)):
            out.bad.append((ref, FlowLogError("parse", why)))
        else:
            out.parsed.append((ref, obj.flow_count))
            if obj.encoded:
                out.several.append(obj)
            elif not source.dry_run:
                small.append(obj)
    out.messages, unencodable = encode_packed(small, ctx.settings.chunk_flows)
    for obj, why in unencodable:  # only the object that caused it: the others of its message go on
        out.bad.append((obj.ref, FlowLogError("parse", why)))
        out.parsed = [(ref, n) for ref, n in out.parsed if ref is not obj.ref]
    return out


def download_all(ctx, refs: list[ObjectRef], keep: bool = True) -> list:
    """Blocking: each object's document, None (vanished) or its FlowLogError / Transient as a value, in the
    order of `refs`; up to `fetch_concurrency` objects at once on the runtime's fetch pool (the COS round
    trips overlap; one object's failure never stops the others)."""
    def one(ref: ObjectRef):
        try:
            return download_and_parse(ctx, ref, keep=keep)
        except (FlowLogError, Transient) as exc:
            return exc

    if len(refs) <= 1 or ctx.settings.fetch_concurrency <= 1:
        return [one(ref) for ref in refs]
    return list(ctx.rt.fetch_pool.map(one, refs))


def fetch_one(ctx, source, ref: ObjectRef) -> Fetched:
    """`fetch` of one object that raises its COS failure (for the retry policy)."""
    out = fetch(ctx, source, [ref])
    if out.transient:
        raise out.transient[0][1]
    return out


async def handle(ctx, raw: bytes, event_key: bytes | None) -> None:
    started = time.perf_counter()
    try:  # a reference (group) is small: decoded on the loop, no hand-off
        message = ObjectRef.decode(raw)
    except AvroDecodeError as exc:
        await ctx.quarantine(ctx.unknown(event_key), "decode", f"objects message could not be decoded: {exc}")
        return
    source = ctx.source_for(message)  # a group is of one source
    if source is None:
        return
    await ctx.sync_outcomes("parse")
    refs = [ref for ref in message.members() if _admitted(ctx, ref)]
    if refs:
        await _isolated(ctx, source, refs, message.skey)
    metrics.STAGE_SECONDS.labels(stage="parse").observe(time.perf_counter() - started)


async def _isolated(ctx, source, refs: list[ObjectRef], group_key: str) -> None:
    """`_fetch_and_publish` of the group; a failure no object could be blamed for (e.g. the broker refusing a
    message of several objects) splits the group: each object is tried alone, and one that still fails is
    dead-lettered under its own key with the real reason — never the group under its first object's key."""
    try:
        await _fetch_and_publish(ctx, source, refs, group_key)
        return
    except Exception as exc:  # noqa: BLE001 - attributed below, object by object
        if kafka_unavailable(exc):
            raise  # the broker, not an object: no object is blamed (the message is handled as before)
        if len(refs) == 1:
            await ctx.quarantine(refs[0], "parse", f"unexpected failure: {ctx.rt.scrub(repr(exc))}")
            return
        log.warning("parse: a message of %s failed (%s); trying its objects one by one", _what(refs),
                    ctx.rt.scrub(repr(exc)))
    for ref in refs:
        if ctx.outcomes.outcome(ref.skey, ref.etag) is None:  # not dead-lettered by the group's attempt
            await _isolated(ctx, source, [ref], group_key)


async def _fetch_and_publish(ctx, source, refs: list[ObjectRef], group_key: str) -> None:
    """One hand-off for the group (`fetch` returns COS failures as values, so source_retry only gates it
    while the source waits; a group of one is retried as a whole), then the objects COS failed on retried
    one by one."""
    try:
        fetched = await ctx.source_retry(source, "get", f"download of {_what(refs)}", "parse: download",
                                         fetch_one if len(refs) == 1 else fetch, ctx, source,
                                         refs[0] if len(refs) == 1 else refs)
    except SourceUnavailable as unavailable:
        _wait(source, str(unavailable), _what(refs))
        return
    await _publish(ctx, source, fetched, group_key)
    for ref, exc in fetched.transient:  # rare: retried one by one, the others are already on their way
        log.info("parse: %s; retrying that object", ctx.rt.scrub(str(exc)))
        try:
            again = await ctx.source_retry(source, "get", f"download of {ref.key!r}", "parse: download", fetch_one,
                                           ctx, source, ref)
        except SourceUnavailable as unavailable:
            _wait(source, str(unavailable), repr(ref.key))
            continue
        await _publish(ctx, source, again, group_key)


def kafka_unavailable(exc: BaseException) -> bool:
    """Whether a failure is Kafka being unreachable or busy (a retriable broker error, a client-side timeout
    or lost connection) rather than something about the message (e.g. MessageSizeTooLarge)."""
    from aiokafka import errors

    return isinstance(exc, (errors.KafkaTimeoutError, errors.KafkaConnectionError, asyncio.TimeoutError)) or (
        isinstance(exc, errors.KafkaError) and exc.retriable)


def _what(refs: list[ObjectRef]) -> str:
    return repr(refs[0].key) if len(refs) == 1 else f"{len(refs)} objects ({refs[0].key!r}, ...)"


def _wait(source, why: str, what: str) -> None:
    """This source's COS keeps failing while other sources share the worker: its objects stay in the bucket for a later
    listing."""
    source_metrics.WAITING.labels(source=source.name, stage="parse").inc()
    log.info("parse: %s; %s stays in the bucket until the source answers again", why, what)


def _admitted(ctx, ref: ObjectRef) -> bool:
    admission = admit(ref, ctx.outcomes.outcome(ref.skey, ref.etag), ctx.in_flight.get(ref.skey))
    if not admission.process:
        metrics.OBJECTS_SKIPPED.labels(reason=admission.skip_reason).inc()
    elif admission.reparse:
        log.info("parse: object %r still in the bucket long after it was parsed; parsing it again "
                 "(chunks already accepted are not sent again)", ref.key)
    return admission.process


async def _publish(ctx, source, fetched: Fetched, group_key: str) -> None:
    """Quarantine the bad objects, then send the flows messages keyed by the group's key: every message of
    a group goes to one partition (one worker), so an object cut into chunks never spans workers."""
    for ref, exc in fetched.bad:
        await ctx.quarantine(ref, exc.stage, exc.reason)
    for ref in fetched.vanished:
        metrics.OBJECTS_SKIPPED.labels(reason="vanished").inc()
        log.info("parse: object %r vanished or changed since it was listed (a new version is listed anew)",
                 ref.key)
    if not fetched.parsed:
        return
    await ctx.send_all(ctx.topics.flows, [(group_key, m) for m in fetched.messages])
    for obj in fetched.several:  # a window at a time, made off the loop: never all of a big object's messages
        messages = object_messages(obj)
        while window := await ctx.rt.run_sync(lambda: list(islice(messages, SEND_WINDOW))):
            await ctx.send_all(ctx.topics.flows, [(group_key, m) for m in window])
    now = time.time()
    for ref, flows in fetched.parsed:
        ctx.in_flight[ref.skey] = (ref.etag, now)
        metrics.OBJECTS_PARSED.inc()
        metrics.FLOWS_PARSED.inc(flows)
        if source.dry_run:
            log.info("parse: dry run: %r parsed, %d flows", ref.key, flows)
    ctx.health.progressed()
