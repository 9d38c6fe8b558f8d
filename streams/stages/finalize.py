"""Finalize: the one place that deletes an object, writes its ledger record and its progress tombstone.

Called by the sink exactly when every chunk of an object version was accepted by Kentik. The object is
deleted only if it is still that version (connectors.cos.delete_if_unchanged: ETag compared right before
the delete, and a conditional delete where the server supports it). An object overwritten meanwhile stays:
its new ETag is listed and processed as the new version it is.

Pure core: `plan` (delete or keep, and why) and `ledger_entry`. Shell: `finalize`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from connectors.cos import CHANGED, DELETED
from streams import metrics, source_metrics
from streams.outcomes import DELIVERED
from streams.records import KflowChunk, LedgerEntry, Progress, now_ms
from streams.stages import bucket
from streams.stages.context import SourceUnavailable

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


def ledger_entry(chunk: KflowChunk, progress, deleted: bool) -> LedgerEntry:
    return LedgerEntry(bucket=chunk.bucket, key=chunk.key, etag=chunk.etag, flows=progress.flows,
                       chf=progress.chf, device_name=chunk.device_name, delivered_at=now_ms(), deleted=deleted,
                       source=chunk.source)


async def finalize(ctx, chunk: KflowChunk, progress) -> None:
    """Every chunk of `chunk`'s object version was accepted: delete it (if still that version and not kept),
    then ledger it, then tombstone its progress. A crash between the steps redoes them, never skips one."""
    key, skey = chunk.key, chunk.skey
    deleted = False
    source = ctx.sources.get(chunk.source)
    decision = plan(source.keep_objects, source.dry_run)
    if decision.delete:
        try:
            result = await ctx.source_retry(source, "delete", f"delete of {key!r}", "finalize: delete",
                                            bucket.delete_version, ctx, source, chunk.bucket, key, chunk.etag)
        except SourceUnavailable as exc:
            await _defer(ctx, chunk, progress, source, exc)
            return
        deleted = result == DELETED
        if deleted:
            metrics.OBJECTS_DELETED.inc()
        elif result == CHANGED:
            metrics.OBJECTS_SKIPPED.labels(reason="changed_before_delete").inc()
            log.warning("finalize: %r was overwritten after it was read; this version's flows are delivered, the "
                        "object is kept and its new version is processed on its own", key)
    await ctx.send(ctx.topics.ledger, skey, ledger_entry(chunk, progress, deleted))
    ctx.outcomes.record(skey, chunk.etag, DELIVERED)
    if progress.chunks > 1 or ctx.shared_progress.get(skey, chunk.etag):  # tombstone: no longer needed
        await ctx.send(ctx.topics.progress, skey, None)
    ctx.sink_progress.pop(skey, None)
    ctx.in_flight.pop(skey, None)
    metrics.OBJECTS_COMPLETED.inc()
    source_metrics.COMPLETED.labels(source=source.name).inc()
    if chunk.last_modified:
        metrics.OBJECT_AGE_SECONDS.observe(max(0.0, time.time() - chunk.last_modified / 1000))
    ctx.health.progressed()
    log.debug("sink: %r delivered (%d flows, %d kflow records)%s", key, progress.flows, progress.chf,
              " and deleted" if deleted else "; object kept")


async def _defer(ctx, chunk: KflowChunk, progress, source, why: Exception) -> None:
    """Several sources, and this one's COS keeps failing: every flow is accepted but the object cannot be
    deleted now. Record every chunk as accepted (topic `progress`) and leave the object: when it is listed
    again its chunks are all skipped and it is finalized then — nothing is sent twice, nothing is lost,
    and the sink goes on with the other sources meanwhile."""
    record = Progress(bucket=chunk.bucket, key=chunk.key, etag=chunk.etag, chunks=progress.chunks,
                      done=progress.done_list(), flows=progress.flows, chf=progress.chf, at=now_ms(),
                      source=chunk.source)
    await ctx.send(ctx.topics.progress, chunk.skey, record)
    ctx.shared_progress.record(record)
    ctx.sink_progress.pop(chunk.skey, None)
    ctx.in_flight.pop(chunk.skey, None)
    source_metrics.WAITING.labels(source=source.name, stage="finalize").inc()
    log.warning("finalize: %s; every flow of %r was accepted, its delete waits until the object is listed "
                "again", why, chunk.key)
