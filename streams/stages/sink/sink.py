"""Stage sink: kflow → Kentik, or IPFIX collectors. Deliver each KflowChunk to where its source's flows go —
Kentik (gzipped packed Cap'n Proto, HTTP 200 only counts; one POST per Kentik device of the message) or, for a
source with sink `ipfix`, its collectors (streams/stages/sink/ipfix_sink.py) — and hand objects to `finalize` exactly
when the last of their chunks was accepted — a message may carry chunks of many objects (parts), each accounted
on its own.

Pure core: `ObjectProgress` (which chunks of an object Kentik accepted), `decide` (replay, skip the object,
skip the chunk, or deliver; per part) and `prepare` (the one hand-off per message: decode, decide, encode
each device's POST body). Shell: `handle`, `deliver_posts` (Kentik: delivery.py `deliver_chunk`; IPFIX:
ipfix_sink.py).
Chunks already accepted — by this worker, or by another one before a rebalance (topic `progress`) — are
never sent again; after a crash only the chunks consumed but not yet committed can be.
"""
from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, field, replace

from streams.observe import metrics, source_metrics
from streams.formats.avro import AvroDecodeError
from streams.formats.columns import concat
from streams.stages.sink import delivery
from streams.stages.sink.delivery import BatchRefused
from streams.state.outcomes import DELIVERED
from streams.formats.batches import CUSTOMS_PER_FLOW, KFLOW_INT_COLUMNS, KflowChunk, KflowPart, part_object
from streams.formats.records import Progress, now_ms
from streams.stages.finalize import finalize
from streams.stages.sink import ipfix_sink
from streams.stages.retry import SourceUnavailable
from streams.stages.stopping import HandOver

log = logging.getLogger("blueflow")


@dataclass(frozen=True)
class ObjectProgress:
    """The chunks of one object version (key + ETag) Kentik accepted so far, as a bitmap."""

    etag: str
    chunks: int
    done: int = 0
    chf: int = 0
    flows: int = 0

    @property
    def complete(self) -> bool:
        return self.done == (1 << self.chunks) - 1

    def has(self, chunk: int) -> bool:
        return bool(self.done >> chunk & 1)

    def accept(self, chunk: KflowPart) -> "ObjectProgress":
        return replace(self, done=self.done | 1 << chunk.chunk, chf=self.chf + chunk.flow_count,
                       flows=self.flows + chunk.source_flows)

    def done_list(self) -> list[int]:
        return [c for c in range(self.chunks) if self.done >> c & 1]

    @classmethod
    def of(cls, record: Progress) -> "ObjectProgress":
        return cls(record.etag, record.chunks, sum(1 << c for c in set(record.done)), record.chf, record.flows)


class Action(enum.Enum):
    REPLAY = "replay"  # operator replay: send again on purpose; no dedup, no delete, no ledger
    SKIP_OBJECT = "skip_object"  # this object version is already delivered
    SKIP_CHUNK = "skip_chunk"  # this chunk is already accepted
    DELIVER = "deliver"


@dataclass(frozen=True)
class Decision:
    action: Action
    progress: ObjectProgress | None = None


def decide(chunk: KflowPart, outcome: str | None, local: ObjectProgress | None,
           shared: Progress | None) -> Decision:
    """What to do with one kflow chunk of an object (a KflowPart of a message), given the
    object's outcome, this worker's progress of it, and the newest `progress` record of it (of the same ETag)
    from any worker."""
    if chunk.replay:
        return Decision(Action.REPLAY)
    if outcome == DELIVERED:
        return Decision(Action.SKIP_OBJECT)
    if local is None or local.etag != chunk.etag or local.chunks != chunk.chunks:
        if shared is not None and shared.etag == chunk.etag and shared.chunks == chunk.chunks:
            local = ObjectProgress.of(shared)
        else:
            local = ObjectProgress(chunk.etag, chunk.chunks)
    return Decision(Action.SKIP_CHUNK if local.has(chunk.chunk) else Action.DELIVER, local)


@dataclass
class Prepared:
    """A kflow message after its one hand-off to the thread pool: decoded, its source, decided per part, and
    the POST of each device (its rows, and the Kentik body when the device is already known). Errors are
    values."""

    chunk: KflowChunk | None
    source: object = None  # streams.config.sources.Source; None: decode failed or the source is no longer configured
    plan: list = field(default_factory=list)  # (KflowPart, Decision)
    posts: list = field(default_factory=list)  # (KflowChunk of one device's rows, body or None)
    error: str = ""


def prepare(ctx, raw: bytes) -> Prepared:
    """Blocking: decode, decide each part (outcomes as synced), select each device's rows and (Kentik sink)
    encode the bodies of devices already known. A group is of one source: its sink, keep/dry-run and clients
    apply to every part."""
    from streams.formats.kflow.kflow import encode_packed_chf, frame_body

    try:
        chunk = KflowChunk.decode(raw)
    except AvroDecodeError as exc:
        return Prepared(None, error=f"kflow message could not be decoded: {exc}")
    source = ctx.source_for(chunk)
    if source is None:
        return Prepared(chunk)
    plan = [(part, decide(part, ctx.outcomes.outcome(part.skey, part.etag), ctx.sink_progress.get(part.skey),
                          ctx.shared_progress.get(part.skey, part.etag))) for part in chunk.parts]
    if source.dry_run and not chunk.replay:
        return Prepared(chunk, source, plan)
    sending = [part for part, d in plan if d.action in (Action.DELIVER, Action.REPLAY) and part.flow_count]
    if source.sink == "ipfix":  # one hand-over per object chunk (its own observation point)
        return Prepared(chunk, source, plan, [(select(chunk, [part]), None) for part in sending])
    posts = []
    for rows in per_device(chunk, sending):
        known = ctx.devices.cached(rows.device_name, source)
        body = None if known is None else frame_body(encode_packed_chf(rows.slice(0, rows.flow_count),
                                                                       int(known[0].id), known[1]))
        posts.append((rows, body))
    return Prepared(chunk, source, plan, posts)


async def handle(ctx, raw: bytes, event_key: bytes | None, held=None) -> None:
    """One kflow message; `held` (finalize/held_ack.py HeldAck): its ack, which a delete batch its objects join holds."""
    started = time.perf_counter()
    await ctx.sync_outcomes("sink")
    prepared = await ctx.rt.run_sync(prepare, ctx, raw)
    if prepared.chunk is None:
        await ctx.quarantine(ctx.unknown(event_key), "decode", prepared.error)
        return
    if prepared.source is None:
        return
    accepted: list = []
    try:
        refused, waiting = await deliver_posts(ctx, prepared.posts, prepared.source, prepared.chunk, accepted)
    except HandOver:
        await _keep_accepted(ctx, prepared, accepted)
        raise
    if prepared.chunk.replay:  # operator replay: sent again on purpose; no dedup, no delete, no ledger
        for part, _ in prepared.plan:
            if id(part) in refused:
                await ctx.quarantine(part_object(prepared.chunk, part), "sink", f"replayed {refused[id(part)]}")
    else:
        await _account_all(ctx, prepared, refused, waiting, held)
    metrics.STAGE_SECONDS.labels(stage="sink").observe(time.perf_counter() - started)


async def _account_all(ctx, prepared: Prepared, refused: dict, waiting: set, held=None) -> None:
    """After delivery: objects whose every chunk is now accepted are finalized together; the others'
    progress is shared; objects of a device Kentik refused are quarantined; objects whose source is
    unavailable wait (nothing accounted: they are sent when published again)."""
    chunk, completed, progressed = prepared.chunk, [], []
    for part, decision in prepared.plan:
        if decision.action is Action.SKIP_OBJECT:
            metrics.CHF_SKIPPED_DUPLICATE.inc(part.flow_count)
        elif id(part) in refused:
            await ctx.quarantine(part_object(chunk, part), "sink", str(refused[id(part)]))
            ctx.sink_progress.pop(part.skey, None)
        elif id(part) not in waiting:
            progress = _account(ctx, part, decision)
            if progress.complete:
                completed.append((part, progress))
            if decision.action is Action.DELIVER and share_progress(progress.complete, ctx.deletes is not None):
                progressed.append((part.skey, _progress_record(chunk.bucket, part, progress)))
    await ctx.send_all(ctx.topics.progress, progressed)
    for _, record in progressed:
        if record.chunks == len(record.done):  # finalize tombstones what it finds here
            ctx.shared_progress.record(record)
    await finalize.finalize(ctx, prepared.source, chunk.bucket, completed, held)


async def _keep_accepted(ctx, prepared: Prepared, accepted: list) -> None:
    """A rebalance took the message while a later POST was being retried: the chunks Kentik already accepted
    go to topic `progress`, so the message's next owner does not send them again."""
    if prepared.chunk.replay:
        return
    ids = {id(part) for part in accepted}
    records = [(part.skey, _progress_record(prepared.chunk.bucket, part, _account(ctx, part, decision)))
               for part, decision in prepared.plan if id(part) in ids and decision.action is Action.DELIVER]
    await ctx.send_all(ctx.topics.progress, records)
    for _, record in records:
        if record.chunks == len(record.done):
            ctx.shared_progress.record(record)


def share_progress(complete: bool, finalize_deferred: bool) -> bool:
    """Whether an object's progress goes to topic `progress` after a delivery: always while chunks are still
    owed; once complete, only when its finalize waits for a delete batch — the kflow message is then acked
    late, so a worker that dies before the batch leaves it to be redelivered, and the next worker must find
    every chunk accepted rather than send them all again (no ledger record exists yet)."""
    return not complete or finalize_deferred


def _account(ctx, part: KflowPart, decision: Decision) -> ObjectProgress:
    if decision.action is Action.SKIP_CHUNK:
        metrics.CHF_SKIPPED_DUPLICATE.inc(part.flow_count)
        return decision.progress
    current = ctx.sink_progress.get(part.skey)  # includes parts of this object accepted earlier in this message
    same = current is not None and (current.etag, current.chunks) == (part.etag, part.chunks)
    progress = (current if same else decision.progress).accept(part)
    ctx.sink_progress[part.skey] = progress
    return progress


def _progress_record(bucket: str, part: KflowPart, progress: ObjectProgress) -> Progress:
    """Which chunks of this object Kentik accepted, for every worker (compacted `progress` topic)."""
    return Progress(bucket=bucket, key=part.key, etag=part.etag, chunks=progress.chunks, done=progress.done_list(),
                    flows=progress.flows, chf=progress.chf, at=now_ms(), source=part.source)


def per_device(chunk: KflowChunk, parts: list[KflowPart]) -> list[KflowChunk]:
    """The rows of `parts` grouped by Kentik device: one chunk (one POST) per device."""
    by_device: dict[str, list[KflowPart]] = {}
    for part in parts:
        if part.flow_count:
            by_device.setdefault(part.device_name, []).append(part)
    return [select(chunk, group) for group in by_device.values()]


async def _hand_over(ctx, source, rows: KflowChunk, body: bytes | None) -> None:
    if source.sink == "ipfix":
        await ipfix_sink.deliver_chunk(ctx, rows)
    else:
        await delivery.deliver_chunk(ctx, rows, body)


async def deliver_posts(ctx, posts: list, source, chunk: KflowChunk | None = None,
                        accepted: list | None = None) -> tuple[dict, set]:
    """Hand over each post's rows to the source's sink (Kentik: `deliver_chunk` with the prepared body, split
    on 413; IPFIX: `ipfix_sink.deliver_chunk`). Returns (id(part) -> why (BatchRefused, or an unexpected failure) for the
    parts of each post refused for good, ids of the parts that wait because their source is unavailable). A post of several objects
    that is refused or fails unexpectedly is handed over again object by object (`chunk`: the message its rows
    were selected from), so only the object Kentik refuses is quarantined. `accepted` gets the parts of each
    post accepted, as they are."""
    refused, waiting = {}, set()
    for rows, body in posts:
        try:
            await _hand_over(ctx, source, rows, body)
        except SourceUnavailable as exc:  # these chunks wait (streams/stages/retry.py Failures.kentik_guard)
            source_metrics.WAITING.labels(source=source.name, stage="sink").inc()
            log.info("sink: %s; %d objects from %r wait in the bucket and are sent when published again", exc,
                     len(rows.parts), rows.key)
            waiting.update(id(part) for part in rows.parts)
            continue
        except Exception as exc:  # noqa: BLE001 - refused (BatchRefused) or unexpected: blamed on its object
            if len({p.key for p in rows.parts}) > 1 and chunk is not None:
                log.warning("sink: %s; handing over its %d objects one by one", ctx.rt.scrub(str(exc)),
                            len(rows.parts))
                alone, wait = await deliver_posts(ctx, [(select(chunk, [p]), None) for p in rows.parts], source,
                                                  accepted=accepted)
                refused.update(alone)
                waiting.update(wait)
                continue
            why = exc if isinstance(exc, BatchRefused) else RuntimeError(f"unexpected failure: {exc!r}")
            refused.update((id(part), why) for part in rows.parts)
            continue
        source_metrics.DELIVERED.labels(source=source.name).inc(rows.flow_count)
        if accepted is not None:
            accepted.extend(rows.parts)
    return refused, waiting


def select(chunk: KflowChunk, parts: list[KflowPart]) -> KflowChunk:
    """A chunk with only the rows of `parts` — objects of one Kentik device — for one POST."""
    count = sum(p.flow_count for p in parts)
    if count == chunk.flow_count:
        return replace(chunk, parts=list(parts))
    ranges = [(p.start, p.start + p.flow_count) for p in parts if p.flow_count]
    columns = {c: concat([chunk.columns[c][a:b] for a, b in ranges]) for c in KFLOW_INT_COLUMNS}
    columns["strings"] = chunk.columns["strings"]
    columns["custom_idx"] = concat([chunk.columns["custom_idx"][a * CUSTOMS_PER_FLOW:b * CUSTOMS_PER_FLOW]
                                    for a, b in ranges])
    return replace(chunk, flow_count=count, columns=columns, parts=list(parts))
