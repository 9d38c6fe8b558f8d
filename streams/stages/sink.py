"""Stage sink: kflow → Kentik. Deliver each KflowChunk to Kentik (gzipped packed Cap'n Proto, HTTP 200
only counts) and hand an object to `finalize` exactly when the last of its chunks was accepted.

Pure core: `ObjectProgress` (which chunks of an object Kentik accepted) and `decide` (replay, skip the
object, skip the chunk, or deliver). Shell: `handle`, `deliver_chunk`, `record_progress`.
Chunks already accepted — by this worker, or by another one before a rebalance (topic `progress`) — are
never sent again; after a crash only the chunks consumed but not yet committed can be.
"""
from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass, replace

from streams import metrics, source_metrics
from streams.delivery import BatchRefused, PostResult, deliver
from streams.outcomes import DELIVERED
from streams.records import KflowChunk, Progress, now_ms
from streams.stages import finalize
from streams.stages.context import SourceUnavailable
from streams.stages.source_guard import kentik_guard

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

    def accept(self, chunk: KflowChunk) -> "ObjectProgress":
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


def decide(chunk: KflowChunk, outcome: str | None, local: ObjectProgress | None,
           shared: Progress | None) -> Decision:
    """What to do with one kflow chunk, given the object's outcome, this worker's progress of it, and the
    newest `progress` record of it (of the same ETag) from any worker."""
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


async def handle(ctx, raw: bytes, event_key: bytes | None, deliver=None) -> None:
    """`deliver(ctx, chunk)`: how a chunk is handed over (default: Kentik; the ipfix sink passes its own)."""
    deliver = deliver or deliver_chunk
    started = time.perf_counter()
    chunk = await ctx.decode(KflowChunk, raw, event_key, "kflow")
    if chunk is None:
        return
    source = ctx.source_for(chunk)
    if source is None:
        return
    if not chunk.replay:
        await ctx.sync_outcomes("sink")
    decision = decide(chunk, ctx.outcomes.outcome(chunk.skey, chunk.etag), ctx.sink_progress.get(chunk.skey),
                      ctx.shared_progress.get(chunk.skey, chunk.etag))
    if decision.action is Action.REPLAY:
        try:
            await deliver(ctx, chunk)
        except BatchRefused as exc:
            await ctx.quarantine(chunk, "sink", f"replayed {exc}")
    elif decision.action is Action.SKIP_OBJECT:
        metrics.CHF_SKIPPED_DUPLICATE.inc(chunk.flow_count)
    else:
        await _deliver_and_account(ctx, chunk, decision, deliver, source)
    metrics.STAGE_SECONDS.labels(stage="sink").observe(time.perf_counter() - started)


async def _deliver_and_account(ctx, chunk: KflowChunk, decision: Decision, deliver, source) -> None:
    progress = decision.progress
    if decision.action is Action.SKIP_CHUNK:
        metrics.CHF_SKIPPED_DUPLICATE.inc(chunk.flow_count)
    else:
        if chunk.flow_count and not source.dry_run:
            try:
                await deliver(ctx, chunk)
            except BatchRefused as exc:
                await ctx.quarantine(chunk, "sink", str(exc))
                ctx.sink_progress.pop(chunk.skey, None)
                return
            except SourceUnavailable as exc:  # several sources: this chunk waits (streams/stages/source_guard.py)
                source_metrics.WAITING.labels(source=source.name, stage="sink").inc()
                log.info("sink: %s; %r waits in the bucket and is sent when published again", exc, chunk.key)
                return
            source_metrics.DELIVERED.labels(source=source.name).inc(chunk.flow_count)
        progress = progress.accept(chunk)
        ctx.sink_progress[chunk.skey] = progress
        if not progress.complete:
            await record_progress(ctx, chunk, progress)
    if progress.complete:
        await finalize.finalize(ctx, chunk, progress)


async def record_progress(ctx, chunk: KflowChunk, progress: ObjectProgress) -> None:
    """Tell every worker which chunks of this object Kentik accepted (compacted `progress` topic)."""
    record = Progress(bucket=chunk.bucket, key=chunk.key, etag=chunk.etag, chunks=progress.chunks,
                      done=progress.done_list(), flows=progress.flows, chf=progress.chf, at=now_ms(),
                      source=chunk.source)
    await ctx.send(ctx.topics.progress, chunk.skey, record)


async def deliver_chunk(ctx, chunk: KflowChunk) -> None:
    """Get every record of one chunk accepted by Kentik (raises BatchRefused for permanent refusals)."""
    from connectors.kflow import encode_packed_chf, frame_body
    from connectors.kentik import KentikTransportError

    source = ctx.sources.get(chunk.source)
    device, field_ids = await ctx.devices.get(ctx, chunk.device_name, chunk.region, chunk.zone, chunk.subnet_id,
                                              source)
    what = (f"chunk {chunk.chunk + 1}/{chunk.chunks} of {chunk.key!r} ({chunk.flow_count} flows, "
            f"device {device.name})")

    def encode_sync(start: int, stop: int) -> bytes:
        return frame_body(encode_packed_chf(chunk.slice(start, stop), int(device.id), field_ids))

    def post_sync(body: bytes) -> PostResult:
        try:
            return ctx.sources.kentik(source).post_flows_result(device, body)
        except KentikTransportError as exc:
            return PostResult(0, None, ctx.rt.scrub(str(exc)))

    async def encode(start, stop):
        return await ctx.rt.run_sync(encode_sync, start, stop)

    async def post(body):
        return await ctx.rt.run_sync(post_sync, body)

    health, pause = kentik_guard(ctx, source)
    try:
        await deliver(encode, post, chunk.flow_count, what=what, health=health, sleep=pause)
    except BatchRefused as exc:
        raise BatchRefused(exc.status, f"{what}: {exc.detail}") from None
    metrics.CHF_DELIVERED.inc(chunk.flow_count)
