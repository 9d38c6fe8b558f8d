"""Stage sink: kflow → Kentik. Deliver each KflowChunk to Kentik (gzipped packed Cap'n Proto, HTTP 200
only counts; one POST per Kentik device of the message) and hand objects to `finalize` exactly when the last
of their chunks was accepted — a message may carry chunks of many objects (parts), each accounted on its own.

Pure core: `ObjectProgress` (which chunks of an object Kentik accepted) and `decide` (replay, skip the
object, skip the chunk, or deliver; per part). Shell: `handle`, `deliver_parts`, `deliver_chunk`.
Chunks already accepted — by this worker, or by another one before a rebalance (topic `progress`) — are
never sent again; after a crash only the chunks consumed but not yet committed can be.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, replace
from itertools import chain

from streams import metrics
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


async def handle(ctx, raw: bytes, event_key: bytes | None) -> None:
    started = time.perf_counter()
    chunk = await ctx.decode(KflowChunk, raw, event_key, "kflow")
    if chunk is None:
        return
    if chunk.replay:
        await _replay(ctx, chunk)
    else:
        await ctx.sync_outcomes("sink")
        await _deliver_and_account(ctx, chunk)
    metrics.STAGE_SECONDS.labels(stage="sink").observe(time.perf_counter() - started)


async def _replay(ctx, chunk: KflowChunk) -> None:
    """Operator replay: send every part again on purpose; no dedup, no delete, no ledger."""
    parts = chunk.pieces()
    refused = await deliver_parts(ctx, chunk, parts)
    for part in parts:
        if id(part) in refused:
            await ctx.quarantine(part, "sink", f"replayed {refused[id(part)]}")


async def _deliver_and_account(ctx, chunk: KflowChunk) -> None:
    """Decide per object part, deliver the parts to send (one POST per device), then account: objects whose
    every chunk is now accepted are finalized together; the others' progress is shared."""
    plan = [(part, decide(part, ctx.outcomes.outcome(part.key, part.etag), ctx.sink_progress.get(part.key),
                          ctx.shared_progress.get(part.key, part.etag))) for part in chunk.pieces()]
    sending = [part for part, d in plan if d.action is Action.DELIVER and part.flow_count]
    refused = {} if ctx.settings.dry_run else await deliver_parts(ctx, chunk, sending)
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


async def deliver_parts(ctx, chunk: KflowChunk, parts: list[KflowPart]) -> dict:
    """Deliver the rows of `parts`, one POST per Kentik device (split on 413); returns id(part) ->
    BatchRefused for the parts of each device Kentik refused for good."""
    by_device: dict[str, list[KflowPart]] = {}
    for part in parts:
        if part.flow_count:
            by_device.setdefault(part.device_name, []).append(part)
    refused = {}
    for group in by_device.values():
        try:
            await deliver_chunk(ctx, select(chunk, group))
        except BatchRefused as exc:
            refused.update((id(part), exc) for part in group)
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


async def deliver_chunk(ctx, chunk: KflowChunk) -> None:
    """Get every record of one chunk (one device) accepted by Kentik (raises BatchRefused for permanent
    refusals)."""
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
        return await ctx.rt.run_sync(encode_sync, start, stop)

    async def post(body):
        return await ctx.rt.run_sync(post_sync, body)

    try:
        await deliver(encode, post, chunk.flow_count, what=what, health=ctx.health, sleep=ctx.pause)
    except BatchRefused as exc:
        raise BatchRefused(exc.status, f"{what}: {exc.detail}") from None
    metrics.CHF_DELIVERED.inc(chunk.flow_count)
