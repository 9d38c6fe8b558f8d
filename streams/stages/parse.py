"""Stage parse: objects → flows. Download one listed object (the exact version listed), parse and validate
it, and publish its flows as FlowChunk messages of at most `chunk_flows` flows; a bad object is quarantined
(it stays in the bucket).

Pure core: `admit` (process, or skip and why) and `flow_chunks` (document → FlowChunk records).
Shell: `handle` (decode, dedup, download, publish).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from streams import metrics, source_metrics
from streams.flowlog import FlowDocument, FlowLogError, iter_chunks, parse_object_bytes, parse_object_key
from streams.records import FlowChunk, ObjectRef
from streams.stages import bucket
from streams.stages.context import SourceUnavailable

log = logging.getLogger("blueflow")


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


def flow_chunks(ref: ObjectRef, doc: FlowDocument, chunk_flows: int) -> list[FlowChunk]:
    """The FlowChunk records of a parsed object: at least one (an empty object gives one empty chunk)."""
    header = doc.header
    columns = list(iter_chunks(doc, chunk_flows)) if doc.flow_count else [None]
    return [FlowChunk.of(ref, header, number, len(columns), cols) for number, cols in enumerate(columns)]


def download_and_parse(ctx, ref: ObjectRef) -> FlowDocument | None:
    """Blocking: stream the object through the parser. None if it vanished or changed since it was listed.
    Raises FlowLogError for a bad object, Transient for a COS problem."""
    parse_object_key(ref.key)  # unknown layouts are quarantined before any download
    source = ctx.sources.get(ref.source)
    chunks = bucket.open_version(ctx, source, ref.bucket, ref.key, ref.etag)
    if chunks is None:
        return None
    failure: list[Exception] = []

    def guarded():
        try:
            yield from chunks
        except Exception as exc:  # a broken download is transient, never a bad object
            failure.append(exc)
            raise

    try:
        doc = parse_object_bytes(guarded(), max_bytes=ctx.settings.max_object_bytes)
    except Exception as exc:
        if failure:
            raise bucket.download_broke(ctx, source, ref.key, failure[0]) from None
        if isinstance(exc, FlowLogError):
            raise
        raise FlowLogError("parse", f"unexpected parser failure: {exc}") from None
    bucket.download_done(ctx, source)
    return doc


async def handle(ctx, raw: bytes, event_key: bytes | None) -> None:
    started = time.perf_counter()
    ref = await ctx.decode(ObjectRef, raw, event_key, "objects")
    if ref is None:
        return
    source = ctx.source_for(ref)
    if source is None:
        return
    await ctx.sync_outcomes("parse")
    admission = admit(ref, ctx.outcomes.outcome(ref.skey, ref.etag), ctx.in_flight.get(ref.skey))
    if not admission.process:
        metrics.OBJECTS_SKIPPED.labels(reason=admission.skip_reason).inc()
        return
    if admission.reparse:
        log.info("parse: object %r still in the bucket long after it was parsed; parsing it again "
                 "(chunks already accepted are not sent again)", ref.key)
    try:  # one hand-off to the thread pool: download, parse and encode together
        fetched = await ctx.source_retry(source, "get", f"download of {ref.key!r}", "parse: download", fetch, ctx,
                                         ref)
    except FlowLogError as exc:
        await ctx.quarantine(ref, exc.stage, exc.reason)
        return
    except SourceUnavailable as exc:
        source_metrics.WAITING.labels(source=source.name, stage="parse").inc()
        log.info("parse: %s; object %r stays in the bucket until the source answers again", exc, ref.key)
        return
    if fetched is None:
        metrics.OBJECTS_SKIPPED.labels(reason="vanished").inc()
        log.info("parse: object %r vanished or changed since it was listed (a new version is listed anew)",
                 ref.key)
        return
    flow_count, messages = fetched
    metrics.OBJECTS_PARSED.inc()
    metrics.FLOWS_PARSED.inc(flow_count)
    for message in messages:
        await ctx.send(ctx.topics.flows, ref.skey, message)
    ctx.in_flight[ref.skey] = (ref.etag, time.time())
    if source.dry_run:
        log.info("parse: dry run: %r parsed, %d flows", ref.key, flow_count)
    ctx.health.progressed()
    metrics.STAGE_SECONDS.labels(stage="parse").observe(time.perf_counter() - started)


def fetch(ctx, ref: ObjectRef) -> tuple[int, list[bytes]] | None:
    """Blocking: (flows, encoded FlowChunk messages) of the object — none in a dry run — or None if it
    vanished or changed since it was listed."""
    doc = download_and_parse(ctx, ref)
    if doc is None:
        return None
    if ctx.sources.get(ref.source).dry_run:
        return doc.flow_count, []
    return doc.flow_count, [chunk.encode() for chunk in flow_chunks(ref, doc, ctx.settings.chunk_flows)]

