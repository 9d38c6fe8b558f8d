"""Finalize: the one place that deletes an object, writes its ledger record and its progress tombstone, and
that batches them.

The sink hands `finalize` the objects a kflow message completed (every chunk of each object version accepted
by Kentik). They wait up to `delete_batch_seconds` (default 1; 0: each message finalizes its own at once) in
a batch per (source, bucket) with those other messages complete, then `finalize_now` deletes them together,
each only if it is still that version (bucket.delete_versions → connectors.cos_delete.delete_versions_if_unchanged:
listings of the keys compare the ETags, then one DeleteObjects per 1,000 keys; keys the batch reports failed
are retried, never assumed gone; keys the DeleteObjects XML cannot carry are deleted one by one with
If-Match). An object overwritten meanwhile stays: its new ETag is listed and processed as the new version it is.

Waiting costs nothing in safety: an object whose delete has not run yet is still in the bucket, so a worker
that dies meanwhile leaves it to be delivered again; it is never lost and never deleted early. The kflow
message that completed an object is acked only once the object was finalized (streams/stages/finalize/held_ack.py).
A worker that stops cleanly finalizes what it holds first (`flush(force=True)`); a batch whose delete is
being retried when a rebalance begins is dropped, its messages left unacked for their next owners.

Pure core: `due`, `plan`, `ledger_entry`. Shell: `finalize`, `DeleteBatcher` (add, flush), `flush_loop` (the
timer of every worker), `finalize_now`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from connectors.cos import PAGE_SIZE
from connectors.cos_delete import CHANGED, DELETED
from streams.observe import metrics, source_metrics
from streams.state.outcomes import DELIVERED
from streams.formats.records import LedgerEntry, Progress, now_ms
from streams.stages import bucket
from streams.stages.finalize.held_ack import HeldAck
from streams.stages.retry import SourceUnavailable
from streams.stages.stopping import HandOver

log = logging.getLogger("blueflow")

TICK_S = 0.25


def due(first_added: float, count: int, now: float, wait_s: float, limit: int = PAGE_SIZE) -> bool:
    """Whether a batch is finalized now: its oldest object waited `wait_s`, or it holds `limit` objects
    (a DeleteObjects' worth)."""
    return count >= limit or now - first_added >= wait_s


@dataclass(frozen=True)
class Plan:
    delete: bool
    why: str


def plan(keep_objects: bool, dry_run: bool) -> Plan:
    if dry_run:
        return Plan(False, "dry run")
    if keep_objects:
        return Plan(False, "--keep_objects")
    return Plan(True, "every flow accepted")


def ledger_entry(bucket_name: str, part, progress, deleted: bool) -> LedgerEntry:
    return LedgerEntry(bucket=bucket_name, key=part.key, etag=part.etag, flows=progress.flows, chf=progress.chf,
                       device_name=part.device_name, delivered_at=now_ms(), deleted=deleted, source=part.source)


async def finalize(ctx, source, bucket_name: str, completed: list, held=None) -> None:
    """Every chunk of each object version in `completed` ((KflowPart, ObjectProgress) pairs, all of `source`)
    was accepted: finalize them with the objects other messages completed within `delete_batch_seconds`, or
    now when that is 0. `held`: the ack of the kflow message that completed them (held_ack.HeldAck), held
    until their batch is finalized."""
    if not completed:
        return
    if ctx.deletes is None:
        await finalize_now(ctx, source, bucket_name, completed)
        return
    ctx.deletes.add(source, bucket_name, completed, held)
    await ctx.deletes.flush(ctx)  # only what is due: a full batch now, the others by the timer


@dataclass
class _Batch:
    source: object  # streams.config.sources.Source
    bucket: str
    first_added: float
    items: dict = field(default_factory=dict)  # (skey, etag) -> (KflowPart, ObjectProgress)
    acks: list = field(default_factory=list)  # HeldAck of the messages whose objects these are


class DeleteBatcher:
    """Completed objects waiting to be finalized, one batch per (source, bucket)."""

    def __init__(self, wait_s: float, clock=time.monotonic):
        self.wait_s, self.clock = wait_s, clock
        self._batches: dict[tuple[str, str], _Batch] = {}
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return sum(len(b.items) for b in self._batches.values())

    def add(self, source, bucket: str, completed: list, held: HeldAck | None = None, acks: list | None = None) -> None:
        """Hold `completed` ((KflowPart, ObjectProgress) pairs of `source`) for the next finalize, and `held`
        (the ack of the message that completed them) until then; `acks`: ones already held (a failed batch)."""
        batch = self._batches.get((source.name, bucket))
        if batch is None:
            batch = self._batches[(source.name, bucket)] = _Batch(source, bucket, self.clock())
        for part, progress in completed:
            batch.items[(part.skey, part.etag)] = (part, progress)
        if acks is not None:
            batch.acks.extend(acks)
        elif held is not None:
            held.hold()
            batch.acks.append(held)

    def _due(self, force: bool) -> list[tuple[str, str]]:
        now = self.clock()
        return [key for key, batch in self._batches.items()
                if force or due(batch.first_added, len(batch.items), now, self.wait_s)]

    async def flush(self, ctx, force: bool = False) -> None:
        """Finalize every batch that is due (all of them with `force`). One flush at a time; nothing due: no
        wait (the sink never queues behind the timer's flush for batches that are not its business)."""
        if not self._due(force):
            return
        async with self._lock:
            for key in self._due(force):
                batch = self._batches.pop(key)
                try:
                    await finalize_now(ctx, batch.source, batch.bucket, list(batch.items.values()))
                except asyncio.CancelledError:
                    raise
                except HandOver:  # their messages stay unacked: the partitions' next owners finalize them
                    log.info("finalize: a rebalance began while %d objects waited for their delete; they are left "
                             "to the next owners of their messages (every chunk is recorded accepted: deleted "
                             "then, not sent again)", len(batch.items))
                    for held in batch.acks:
                        held.abandon()
                    continue
                except Exception:
                    log.exception("finalize: %d objects could not be finalized; trying again", len(batch.items))
                    self.add(batch.source, batch.bucket, list(batch.items.values()), acks=batch.acks)
                    continue
                for held in batch.acks:
                    held.release()


async def flush_loop(ctx) -> None:
    """Every worker: finalize the batches that are due, also while no kflow message arrives."""
    batcher = ctx.deletes
    if batcher is None:
        return
    while True:
        await asyncio.sleep(TICK_S)
        if len(batcher):
            await batcher.flush(ctx)


async def finalize_now(ctx, source, bucket_name: str, completed: list) -> None:
    """Every chunk of each object version in `completed` was accepted: delete them in one batch (each only if
    still that version, and not kept by the source's settings), then ledger each, then tombstone their
    progress. A crash between the steps redoes them, never skips one."""
    if not completed:
        return
    results = {}
    decision = plan(source.keep_objects, source.dry_run)
    if decision.delete:
        items = [(part.key, part.etag) for part, _ in completed]
        try:
            results = await ctx.source_retry(source, "delete", f"delete of {_objects(items)}", "finalize: delete",
                                             bucket.delete_versions, ctx, source, bucket_name, items, {})
        except SourceUnavailable as exc:
            await _defer(ctx, bucket_name, completed, source, exc)
            return
    entries = [(part.skey, ledger_entry(bucket_name, part, progress, _deleted(part.key, results.get(part.key))))
               for part, progress in completed]
    await ctx.send_all(ctx.topics.ledger, entries)
    for part, _ in completed:
        ctx.outcomes.record(part.skey, part.etag, DELIVERED)
    # tombstones: the objects' progress is no longer needed
    await ctx.send_all(ctx.topics.progress, [(part.skey, None) for part, progress in completed
                                             if progress.chunks > 1 or ctx.shared_progress.get(part.skey, part.etag)])
    for (part, progress), (_, entry) in zip(completed, entries):
        ctx.sink_progress.pop(part.skey, None)
        ctx.in_flight.pop(part.skey, None)
        metrics.OBJECTS_COMPLETED.inc()
        source_metrics.COMPLETED.labels(source=source.name).inc()
        if part.last_modified:
            metrics.OBJECT_AGE_SECONDS.observe(max(0.0, time.time() - part.last_modified / 1000))
        log.debug("sink: %r delivered (%d flows, %d kflow records)%s", part.key, progress.flows, progress.chf,
                  " and deleted" if entry.deleted else "; object kept")
    ctx.health.progressed()


async def _defer(ctx, bucket_name: str, completed: list, source, why: Exception) -> None:
    """This source's COS keeps failing while other sources share the worker: every flow is accepted but the objects
    cannot be deleted now. Record every chunk as accepted (topic `progress`) and leave the objects: when they are
    listed again their chunks are all skipped and they are finalized then — nothing is sent twice, nothing is
    lost, and the sink goes on with the other sources meanwhile."""
    records = [(part.skey, Progress(bucket=bucket_name, key=part.key, etag=part.etag, chunks=progress.chunks,
                                    done=progress.done_list(), flows=progress.flows, chf=progress.chf, at=now_ms(),
                                    source=part.source)) for part, progress in completed]
    await ctx.send_all(ctx.topics.progress, records)
    for skey, record in records:
        ctx.shared_progress.record(record)
        ctx.sink_progress.pop(skey, None)
        ctx.in_flight.pop(skey, None)
    source_metrics.WAITING.labels(source=source.name, stage="finalize").inc(len(completed))
    log.warning("finalize: %s; every flow of %s was accepted, the delete waits until listed again", why,
                _objects([(part.key, part.etag) for part, _ in completed]))


def _objects(items: list) -> str:
    return f"{items[0][0]!r}" if len(items) == 1 else f"{len(items)} objects ({items[0][0]!r}, ...)"


def _deleted(key: str, result: str | None) -> bool:
    if result == DELETED:
        metrics.OBJECTS_DELETED.inc()
        return True
    if result == CHANGED:
        metrics.OBJECTS_SKIPPED.labels(reason="changed_before_delete").inc()
        log.warning("finalize: %r was overwritten after it was read; this version's flows are delivered, the "
                    "object is kept and its new version is processed on its own", key)
    return False
