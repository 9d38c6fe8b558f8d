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
from streams import metrics
from streams.outcomes import DELIVERED
from streams.records import KflowChunk, LedgerEntry, now_ms
from streams.stages import bucket

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
                       chf=progress.chf, device_name=chunk.device_name, delivered_at=now_ms(), deleted=deleted)


async def finalize(ctx, chunk: KflowChunk, progress) -> None:
    """Every chunk of `chunk`'s object version was accepted: delete it (if still that version and not kept),
    then ledger it, then tombstone its progress. A crash between the steps redoes them, never skips one."""
    key = chunk.key
    deleted = False
    decision = plan(ctx.settings.keep_objects, ctx.settings.dry_run)
    if decision.delete:
        result = await ctx.retry(f"delete of {key!r}", "finalize: delete", bucket.delete_version, ctx,
                                 chunk.bucket, key, chunk.etag)
        deleted = result == DELETED
        if deleted:
            metrics.OBJECTS_DELETED.inc()
        elif result == CHANGED:
            metrics.OBJECTS_SKIPPED.labels(reason="changed_before_delete").inc()
            log.warning("finalize: %r was overwritten after it was read; this version's flows are delivered, the "
                        "object is kept and its new version is processed on its own", key)
    await ctx.send(ctx.topics.ledger, key, ledger_entry(chunk, progress, deleted))
    ctx.outcomes.record(key, chunk.etag, DELIVERED)
    if progress.chunks > 1:  # tombstone: the object's progress is no longer needed
        await ctx.send(ctx.topics.progress, key, None)
    ctx.sink_progress.pop(key, None)
    ctx.in_flight.pop(key, None)
    metrics.OBJECTS_COMPLETED.inc()
    if chunk.last_modified:
        metrics.OBJECT_AGE_SECONDS.observe(max(0.0, time.time() - chunk.last_modified / 1000))
    ctx.health.progressed()
    log.debug("sink: %r delivered (%d flows, %d kflow records)%s", key, progress.flows, progress.chf,
              " and deleted" if deleted else "; object kept")
