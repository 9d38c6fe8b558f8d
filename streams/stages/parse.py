"""Stage parse: objects → flows. Download the listed objects of one `objects` message (a group; the exact
versions listed), parse and validate them, and publish their flows as FlowChunk messages of at most
`chunk_flows` flows — several small objects share a message; a big one spans several. A bad object is
quarantined alone (it stays in the bucket); the others of its group go on.

Pure core: `admit` (process, or skip and why) and `pack` (documents → FlowChunk records).
Shell: `handle` (decode, dedup, one hand-off to download + parse + encode, publish).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from itertools import chain

from streams import metrics, source_metrics
from streams.avro import AvroDecodeError
from streams.flowlog import FlowDocument, FlowLogError, iter_chunks, parse_object_bytes, parse_object_key
from streams.records import FlowChunk, FlowPart, ObjectRef
from streams.retry import Transient
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
    """The FlowChunk records of one parsed object: at least one (an empty object gives one empty chunk)."""
    return pack([(ref, doc)], chunk_flows)


def pack(docs: list[tuple[ObjectRef, FlowDocument]], chunk_flows: int) -> list[FlowChunk]:
    """The FlowChunk records of a group of parsed objects. Each object is cut into chunks of at most
    `chunk_flows` flows as on its own (an empty object: one empty chunk); consecutive chunks are packed into
    one message while it holds at most `chunk_flows` flows, so a message may span objects."""
    messages: list[FlowChunk] = []
    pending: list = []
    flows = 0
    for ref, doc in docs:
        header = doc.header
        columns = list(iter_chunks(doc, chunk_flows)) if doc.flow_count else [None]
        for number, cols in enumerate(columns):
            count = len(cols["direction"]) if cols else 0
            if pending and flows + count > chunk_flows:
                messages.append(packed(pending))
                pending, flows = [], 0
            pending.append((ref, header, number, len(columns), cols))
            flows += count
    if pending:
        messages.append(packed(pending))
    return messages


def packed(pieces: list[tuple[ObjectRef, dict, int, int, dict | None]]) -> FlowChunk:
    """One message carrying the object chunks `pieces` (ref, header, chunk, chunks, columns) in order; its
    top-level identity is the first piece's."""
    parts, blocks, start = [], [], 0
    for ref, header, chunk, chunks, columns in pieces:
        count = len(columns["direction"]) if columns else 0
        parts.append(FlowPart(ref.key, ref.etag, ref.size, ref.last_modified, header, chunk, chunks, start, count))
        if count:
            blocks.append(columns)
        start += count
    message = FlowChunk.of(pieces[0][0], pieces[0][1], pieces[0][2], pieces[0][3], None)
    message.columns, message.flow_count, message.parts = concat_columns(blocks), start, parts
    return message


def concat_columns(blocks: list[dict]) -> dict:
    """Columns of several row blocks with the same column names, one after the other."""
    if len(blocks) <= 1:
        return blocks[0] if blocks else {}
    return {name: list(chain.from_iterable(block[name] for block in blocks)) for name in blocks[0]}


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


@dataclass
class Fetched:
    """What downloading a group gave, per object (errors are values): parsed objects with their encoded
    messages, bad objects with the reason, objects that vanished, and COS failures to retry."""

    parsed: list = field(default_factory=list)  # (ref, flow count)
    messages: list = field(default_factory=list)  # encoded FlowChunk
    bad: list = field(default_factory=list)  # (ref, FlowLogError)
    vanished: list = field(default_factory=list)  # ref
    transient: list = field(default_factory=list)  # (ref, Transient)


def fetch(ctx, source, refs: list[ObjectRef]) -> Fetched:
    """Blocking, one thread-pool hand-off per message: download and parse every object of the group (all of
    `source`; up to `fetch_concurrency` at once), pack their flows into FlowChunk messages in the group's order
    and encode them (none in the source's dry run)."""
    out = Fetched()
    docs = []
    for ref, result in zip(refs, download_all(ctx, refs)):
        if isinstance(result, FlowLogError):
            out.bad.append((ref, result))
        elif isinstance(result, Transient):
            out.transient.append((ref, result))
        elif result is None:
            out.vanished.append(ref)
        else:
            docs.append((ref, result))
            out.parsed.append((ref, result.flow_count))
    if docs and not source.dry_run:
        out.messages = [chunk.encode() for chunk in pack(docs, ctx.settings.chunk_flows)]
    return out


def download_all(ctx, refs: list[ObjectRef]) -> list:
    """Blocking: each object's document, None (vanished) or its FlowLogError / Transient as a value, in the
    order of `refs`; up to `fetch_concurrency` objects at once on the runtime's fetch pool (the COS round
    trips overlap; one object's failure never stops the others)."""
    def one(ref: ObjectRef):
        try:
            return download_and_parse(ctx, ref)
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
        await _fetch_and_publish(ctx, source, refs, message.skey)
    metrics.STAGE_SECONDS.labels(stage="parse").observe(time.perf_counter() - started)


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


def _what(refs: list[ObjectRef]) -> str:
    return repr(refs[0].key) if len(refs) == 1 else f"{len(refs)} objects ({refs[0].key!r}, ...)"


def _wait(source, why: str, what: str) -> None:
    """Several sources, and this one's COS keeps failing: its objects stay in the bucket for a later listing."""
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
    now = time.time()
    for ref, flows in fetched.parsed:
        ctx.in_flight[ref.skey] = (ref.etag, now)
        metrics.OBJECTS_PARSED.inc()
        metrics.FLOWS_PARSED.inc(flows)
        if source.dry_run:
            log.info("parse: dry run: %r parsed, %d flows", ref.key, flows)
    ctx.health.progressed()
