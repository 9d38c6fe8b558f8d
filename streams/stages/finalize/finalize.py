"""Finalize: the one place that deletes an object, writes its ledger record and its progress tombstone.

Called by the sink with the objects a kflow message completed (every chunk of each object version accepted
by Kentik), or with `delete_batch_seconds` > 0 those of several messages (streams/stages/finalize/delete_batch.py).
They are deleted together, each only if it is still that version (bucket.delete_versions →
connectors.cos_delete.delete_versions_if_unchanged: listings of the keys compare the ETags, then one
DeleteObjects per 1,000 keys; keys the batch reports failed are retried, never assumed gone; keys the
DeleteObjects XML cannot carry are deleted one by one with If-Match). An object overwritten meanwhile stays:
its new ETag is listed and processed as the new version it is.

Pure core: `plan` (delete or keep, and why) and `ledger_entry`. Shell: `finalize`, `finalize_now`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from connectors.cos_delete import CHANGED, DELETED
from streams.observe import metrics, source_metrics
from streams.state.outcomes import DELIVERED
from streams.formats.records import LedgerEntry, Progress, now_ms
from streams.stages import bucket
from streams.config.sources import SourceUnavailable

log = logging.getLogger("blueflow")


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


async def finalize(ctx, source, bucket_name: str, completed: list) -> None:
    """Every chunk of each object version in `completed` ((KflowPart, ObjectProgress) pairs, all of `source`)
    was accepted: finalize them with the objects other messages completed within `delete_batch_seconds`
    (streams/stages/finalize/delete_batch.py), or now when batching is off."""
    if not completed:
        return
    if ctx.deletes is None:
        await finalize_now(ctx, source, bucket_name, completed)
        return
    ctx.deletes.add(source, bucket_name, completed)
    await ctx.deletes.flush(ctx)  # only what is due: a full batch now, the others by the timer


async def finalize_now(ctx, source, bucket_name: str, completed: list) -> None:
    """Every chunk of each object version in `completed` was accepted: delete them in one batch (each only if still that version, and not kept by the source's
    settings), then ledger each, then tombstone their progress. A crash between the steps redoes them, never
    skips one."""
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
    """Several sources, and this one's COS keeps failing: every flow is accepted but the objects cannot be
    deleted now. Record every chunk as accepted (topic `progress`) and leave the objects: when they are
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
