"""Stage sink: kflow → Kentik. Deliver each KflowChunk to Kentik (gzipped packed Cap'n Proto, HTTP 200
only counts; one POST per Kentik device of the message) and hand objects to `finalize` exactly when the last
of their chunks was accepted — a message may carry chunks of many objects (parts), each accounted on its own.

Pure core: `ObjectProgress` (which chunks of an object Kentik accepted), `decide` (replay, skip the object,
skip the chunk, or deliver; per part) and `prepare` (the one hand-off per message: decode, decide, encode
each device's POST body). Shell: `handle`, `deliver_posts`, `deliver_chunk`.
Chunks already accepted — by this worker, or by another one before a rebalance (topic `progress`) — are
never sent again; after a crash only the chunks consumed but not yet committed can be.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, replace
from itertools import chain

from streams import metrics
from streams.avro import AvroDecodeError
from streams.delivery import BatchRefused, PostResult, deliver
from streams.outcomes import DELIVERED
from streams.records import CUSTOMS_PER_FLOW, KFLOW_INT_COLUMNS, KflowChunk, KflowPart, Progress, now_ms
from streams.stages import finalize


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

    def accept(self, chunk: KflowPart | KflowChunk) -> "ObjectProgress":
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


def decide(chunk: KflowPart | KflowChunk, outcome: str | None, local: ObjectProgress | None,
           shared: Progress | None) -> Decision:
    """What to do with one kflow chunk of an object (a KflowPart, or a whole version-1 KflowChunk), given the
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
    """A kflow message after its one hand-off to the thread pool: decoded, decided per part, and the POST
    of each device (its rows, and the body when the device is already known). Errors are values."""

    chunk: KflowChunk | None
    plan: list = field(default_factory=list)  # (KflowPart, Decision)
    posts: list = field(default_factory=list)  # (KflowChunk of one device's rows, body or None)
    error: str = ""


def prepare(ctx, raw: bytes) -> Prepared:
    """Blocking: decode, decide each part (outcomes as synced), select and encode each device's rows."""
    from connectors.kflow import encode_packed_chf, frame_body

    try:
        chunk = KflowChunk.decode(raw)
    except AvroDecodeError as exc:
        return Prepared(None, error=f"kflow message could not be decoded: {exc}")
    plan = [(part, decide(part, ctx.outcomes.outcome(part.key, part.etag), ctx.sink_progress.get(part.key),
                          ctx.shared_progress.get(part.key, part.etag))) for part in chunk.pieces()]
    if ctx.settings.dry_run and not chunk.replay:
        return Prepared(chunk, plan)
    sending = [part for part, d in plan if d.action in (Action.DELIVER, Action.REPLAY) and part.flow_count]
    posts = []
    for rows in per_device(chunk, sending):
        known = ctx.devices.cached(rows.device_name)
        body = None if known is None else frame_body(encode_packed_chf(rows.slice(0, rows.flow_count),
                                                                       int(known[0].id), known[1]))
        posts.append((rows, body))
    return Prepared(chunk, plan, posts)


async def handle(ctx, raw: bytes, event_key: bytes | None) -> None:
    started = time.perf_counter()
    await ctx.sync_outcomes("sink")
    prepared = await ctx.rt.run_sync(prepare, ctx, raw)
    if prepared.chunk is None:
        await ctx.quarantine(ctx.unknown(event_key), "decode", prepared.error)
        return
    refused = await deliver_posts(ctx, prepared.posts)
    if prepared.chunk.replay:  # operator replay: sent again on purpose; no dedup, no delete, no ledger
        for part, _ in prepared.plan:
            if id(part) in refused:
                await ctx.quarantine(part, "sink", f"replayed {refused[id(part)]}")
    else:
        await _account_all(ctx, prepared.chunk, prepared.plan, refused)
    metrics.STAGE_SECONDS.labels(stage="sink").observe(time.perf_counter() - started)


async def _account_all(ctx, chunk: KflowChunk, plan: list, refused: dict) -> None:
    """After delivery: objects whose every chunk is now accepted are finalized together; the others'
    progress is shared; objects of a device Kentik refused are quarantined."""
    completed, progressed = [], []
    for part, decision in plan:
        if decision.action is Action.SKIP_OBJECT:
            metrics.CHF_SKIPPED_DUPLICATE.inc(part.flow_count)
        elif id(part) in refused:
            await ctx.quarantine(part, "sink", str(refused[id(part)]))
            ctx.sink_progress.pop(part.key, None)
        else:
            progress = _account(ctx, part, decision)
            if progress.complete:
                completed.append((part, progress))
            elif decision.action is Action.DELIVER:
                progressed.append((part.key, _progress_record(chunk.bucket, part, progress)))
    await ctx.send_all(ctx.topics.progress, progressed)
    await finalize.finalize(ctx, chunk.bucket, completed)


def _account(ctx, part: KflowPart, decision: Decision) -> ObjectProgress:
    if decision.action is Action.SKIP_CHUNK:
        metrics.CHF_SKIPPED_DUPLICATE.inc(part.flow_count)
        return decision.progress
    current = ctx.sink_progress.get(part.key)  # includes parts of this object accepted earlier in this message
    same = current is not None and (current.etag, current.chunks) == (part.etag, part.chunks)
    progress = (current if same else decision.progress).accept(part)
    ctx.sink_progress[part.key] = progress
    return progress


def _progress_record(bucket: str, part: KflowPart, progress: ObjectProgress) -> Progress:
    """Which chunks of this object Kentik accepted, for every worker (compacted `progress` topic)."""
    return Progress(bucket=bucket, key=part.key, etag=part.etag, chunks=progress.chunks, done=progress.done_list(),
                    flows=progress.flows, chf=progress.chf, at=now_ms())


def per_device(chunk: KflowChunk, parts: list[KflowPart]) -> list[KflowChunk]:
    """The rows of `parts` grouped by Kentik device: one chunk (one POST) per device."""
    by_device: dict[str, list[KflowPart]] = {}
    for part in parts:
        if part.flow_count:
            by_device.setdefault(part.device_name, []).append(part)
    return [select(chunk, group) for group in by_device.values()]


async def deliver_posts(ctx, posts: list) -> dict:
    """Deliver each device's rows (split on 413); returns id(part) -> BatchRefused for the parts of each
    device Kentik refused for good."""
    refused = {}
    for rows, body in posts:
        try:
            await deliver_chunk(ctx, rows, body)
        except BatchRefused as exc:
            refused.update((id(part), exc) for part in rows.parts)
    return refused


def select(chunk: KflowChunk, parts: list[KflowPart]) -> KflowChunk:
    """A chunk with only the rows of `parts` — objects of one Kentik device — for one POST."""
    first = parts[0]
    count = sum(p.flow_count for p in parts)
    device = dict(key=first.key, etag=first.etag, chunk=first.chunk, chunks=first.chunks,
                  device_name=first.device_name, subnet_id=first.subnet_id, region=first.region, zone=first.zone)
    if count == chunk.flow_count:
        return replace(chunk, **device, parts=list(parts))
    ranges = [(p.start, p.start + p.flow_count) for p in parts if p.flow_count]
    columns = {c: list(chain.from_iterable(chunk.columns[c][a:b] for a, b in ranges)) for c in KFLOW_INT_COLUMNS}
    columns["strings"] = chunk.columns["strings"]
    columns["custom_idx"] = list(chain.from_iterable(
        chunk.columns["custom_idx"][a * CUSTOMS_PER_FLOW:b * CUSTOMS_PER_FLOW] for a, b in ranges))
    return replace(chunk, **device, flow_count=count, columns=columns, parts=list(parts))


async def deliver_chunk(ctx, chunk: KflowChunk, body: bytes | None = None) -> None:
    """Get every record of one chunk (one device) accepted by Kentik (raises BatchRefused for permanent
    refusals). `body`: the whole chunk's request body if already encoded."""
    from connectors.kflow import encode_packed_chf, frame_body
    from connectors.kentik import KentikTransportError

    device, field_ids = await ctx.devices.get(ctx, chunk.device_name, chunk.region, chunk.zone, chunk.subnet_id)
    objects = len({p.key for p in chunk.pieces()})
    what = (f"chunk {chunk.chunk + 1}/{chunk.chunks} of {chunk.key!r}" if objects == 1 else
            f"chunks of {objects} objects from {chunk.key!r} on")
    what = f"{what} ({chunk.flow_count} flows, device {device.name})"
    def encode_sync(start: int, stop: int) -> bytes:
        return frame_body(encode_packed_chf(chunk.slice(start, stop), int(device.id), field_ids))

    def post_sync(body: bytes) -> PostResult:
        try:
            return ctx.rt.kentik.post_flows_result(device, body)
        except KentikTransportError as exc:
            return PostResult(0, None, ctx.rt.scrub(str(exc)))

    async def encode(start, stop):
        if body is not None and (start, stop) == (0, chunk.flow_count):
            return body
        return await ctx.rt.run_sync(encode_sync, start, stop)

    async def post(body):
        return await ctx.rt.run_sync(post_sync, body)

    try:
        await deliver(encode, post, chunk.flow_count, what=what, health=ctx.health, sleep=ctx.pause)
    except BatchRefused as exc:
        raise BatchRefused(exc.status, f"{what}: {exc.detail}") from None
    metrics.CHF_DELIVERED.inc(chunk.flow_count)
