"""The leader's other loops: VPC metadata refresh (→ compacted `vpc-metadata`; every source's account and
regions) and the Kentik export status heartbeat (every source's export). Plus every worker's 30 s progress
line. Failures here are logged and retried on the next interval; they never hold a stage (enrichment falls
back to ids from the object keys).
"""
from __future__ import annotations

import asyncio
import logging
import time

import orjson

from streams.observe import metrics
from streams.state.metadata import fetch_snapshots, metadata_accounts, snapshot_key
from streams.formats.records import MetadataRecord

log = logging.getLogger("blueflow")


async def metadata_loop(ctx) -> None:
    """Leader task: fetch every region's VPC metadata every `metadata_interval` and publish the snapshots."""
    last_fetch = 0.0
    while True:
        try:
            if not ctx.app.is_leader():
                last_fetch = 0.0
            elif time.monotonic() - last_fetch >= ctx.settings.metadata_interval:
                last_fetch = time.monotonic()
                await _refresh_metadata(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("metadata: refresh failed: %s", ctx.rt.scrub(str(exc)))
        await asyncio.sleep(1.0)


async def _refresh_metadata(ctx) -> None:
    for account in metadata_accounts(ctx.settings, ctx.settings.sources):
        snapshots, problems = await ctx.rt.run_sync(fetch_snapshots, account)
        for problem in problems:
            log.warning("metadata: %s%s; enrichment falls back to ids from the object keys",
                        f"source {account.label}: " if account.label else "", ctx.rt.scrub(problem))
        for snapshot in snapshots:
            record = MetadataRecord(region=snapshot_key(account.label, snapshot["region"]),
                                    fetched_at=float(snapshot.get("fetched_at", 0)),
                                    json=orjson.dumps(snapshot).decode())
            await ctx.send(ctx.topics.vpc_metadata, record.region, record)


def heartbeat_status(started: bool, problem: str) -> tuple[str, str]:
    """(status, message) of the next export heartbeat: START once, then ERROR with the problem, or OK."""
    if not started:
        return "START", "blueflow worker started"
    if problem:
        return "ERROR", problem
    return "OK", (f"delivered {int(metrics.counter_value(metrics.CHF_DELIVERED))} flows, deleted "
                  f"{int(metrics.counter_value(metrics.OBJECTS_DELETED))} objects, quarantined "
                  f"{int(metrics.counter_value(metrics.DEADLETTERED))}")


async def heartbeat_loop(ctx) -> None:
    """Leader task: for every source with an export (and the Kentik sink), START at once, then one status per
    `heartbeat_interval` to that source's export with its Kentik user (also while Kentik refuses it). A
    source's own COS problem is reported to its export only."""
    last: dict[str, float] = {}
    started: set[str] = set()
    while True:
        await asyncio.sleep(1.0)
        if not ctx.app.is_leader():
            continue
        for source in ctx.sources.all:
            if source.dry_run or not source.export_id or source.sink == "ipfix":
                continue
            if time.monotonic() - last.get(source.name, float("-inf")) < ctx.settings.heartbeat_interval:
                continue
            last[source.name] = time.monotonic()
            cause = ctx.health.fatal
            problem = cause.message if cause else ctx.failures.state[source.name].problem
            status, message = heartbeat_status(source.name in started, problem)
            try:
                await ctx.rt.run_sync(ctx.rt.kentik_client(source).heartbeat, source.export_id, status, message)
                started.add(source.name)
            except Exception as exc:
                log.warning("heartbeat: export %s status %s not sent: %s", source.export_id, status,
                            ctx.rt.scrub(str(exc)))


async def progress_log_loop(ctx, every_s: float = 30.0) -> None:
    """One INFO line per interval with what this worker did since the last one (per-object lines are DEBUG)."""
    from streams.observe.web import progress_counts

    last = progress_counts()
    while True:
        await asyncio.sleep(every_s)
        now = progress_counts()
        delta = {k: now[k] - last.get(k, 0) for k in now}
        if any(delta.values()):
            log.info("progress (last %.0fs): %d objects parsed, %d flows, %d kflow records accepted by Kentik, "
                     "%d handed to IPFIX collectors, %d objects completed, %d deleted, %d quarantined, %d skipped "
                     "as already done", every_s, delta["objects_parsed"], delta["flows_parsed"],
                     delta["chf_delivered"], delta["ipfix_exported"],
                     delta["objects_completed"], delta["objects_deleted"], delta["deadlettered"],
                     delta["objects_skipped"])
        last = now
