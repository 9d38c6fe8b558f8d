"""HTTP endpoints on port 8083, like Blueflow's: /service/info, /healthz, /readyz, /metrics.

/healthz (liveness, 503 + problems) fails only when a restart can help: an agent or task died, the worker's
watch stopped turning, a stage is wedged with no dependency failing. /readyz (readiness, 503 + problems) fails
on every problem — Kentik or COS rejecting the credentials, Kentik answering redirects or 5xx, COS, IAM or the
VPC API failing, the leader's listing failing, a stage stuck for `unhealthy_after` seconds — each named with
its cause (streams/observe/health.py). /service/info lists both, the steps being retried and each dependency's state.
Nothing here shows a secret: settings go through `Settings.public_view()`.
"""
from __future__ import annotations

import time

import logging

from streams.observe import metrics

log = logging.getLogger("blueflow")

VERSION = metrics.VERSION


def progress_counts() -> dict:
    """The counters `blueflow status` and `blueflow-dev demo` add up across workers."""
    c = metrics.counter_value
    return {
        "objects_listed": int(c(metrics.OBJECTS_LISTED)),
        "objects_published": int(c(metrics.OBJECTS_PUBLISHED)),
        "objects_parsed": int(c(metrics.OBJECTS_PARSED)),
        "objects_skipped": int(c(metrics.OBJECTS_SKIPPED)),
        "flows_parsed": int(c(metrics.FLOWS_PARSED)),
        "chf_translated": int(c(metrics.CHF_TRANSLATED)),
        "chf_delivered": int(c(metrics.CHF_DELIVERED)),
        "ipfix_exported": int(c(metrics.IPFIX_EXPORTED)),
        "chf_skipped_duplicate": int(c(metrics.CHF_SKIPPED_DUPLICATE)),
        "objects_completed": int(c(metrics.OBJECTS_COMPLETED)),
        "objects_deleted": int(c(metrics.OBJECTS_DELETED)),
        "deadlettered": int(c(metrics.DEADLETTERED)),
        "kentik_bytes": int(c(metrics.KENTIK_BYTES)),
    }


def observe_consumer(app, pipeline, starts: dict | None = None) -> None:
    """Feed this worker's pending messages and committed offsets per stage (its agents' topics) into its
    Health; `starts`: the earliest offset of partitions (`partition_starts`) where the group never committed."""
    from streams.formats.stage_topics import CONSUMES
    from streams.observe.health import consumer_lag

    try:
        consumer = app.consumer
        assignment = list(consumer.assignment())
        committed = consumer._committed_offset.get  # noqa: SLF001
    except Exception:  # no consumer yet, or not assigned: nothing to observe
        return
    total = 0
    for stage, suffix in CONSUMES.items():
        topic = pipeline.settings.topic(suffix)
        lag, done = consumer_lag([tp for tp in assignment if tp.topic == topic], consumer.highwater, committed,
                                 (starts or {}).get)
        pipeline.rt.health.observe_stage(stage, lag, done)
        total += lag
    metrics.CONSUMER_LAG.set(total)


async def partition_starts(app, pipeline, starts: dict) -> None:
    """Learn the earliest offset of each assigned stage partition without a committed offset (asked once per
    partition; Kafka answers from metadata), so its pending messages count from its start."""
    from streams.formats.stage_topics import CONSUMES

    try:
        consumer = app.consumer
        topics = {pipeline.settings.topic(suffix) for suffix in CONSUMES.values()}
        unknown = [tp for tp in consumer.assignment() if tp.topic in topics and tp not in starts
                   and consumer._committed_offset.get(tp) is None]  # noqa: SLF001
        if unknown:
            starts.update(await consumer.earliest_offsets(*unknown))
    except Exception as exc:  # noqa: BLE001 - no consumer yet, or the broker did not answer: asked again later
        log.debug("earliest offsets not known yet: %s", exc)


def register(app, pipeline) -> None:
    rt = pipeline.rt

    starts: dict = {}  # partition -> earliest offset, for partitions without a commit

    @app.timer(2.0)
    async def watch_consumer():
        rt.health.tick()
        await partition_starts(app, pipeline, starts)
        observe_consumer(app, pipeline, starts)
        metrics.update_health(rt.health, rt.settings.unhealthy_after)  # blueflow_healthy without a /healthz call

    @app.page("/service/info")
    async def service_info(web, request):
        problems = rt.health.problems(rt.settings.unhealthy_after)
        return web.json({
            "service": "blueflow",
            "version": VERSION,
            "leader": bool(app.is_leader()),
            "uptime_s": round(time.time() - rt.started_at, 1),
            "healthy": not problems,
            "live": not rt.health.live_problems(rt.settings.unhealthy_after),
            "lag": rt.health.lag,
            "problems": problems,
            "retrying": rt.health.retrying(),
            "dependencies": rt.health.dependencies(),
            "metadata_regions": sorted(pipeline.metadata.snapshots),
            "devices_cached": len(pipeline.devices),
            "sources": pipeline.failures.view(),
            "counts": progress_counts(),
            "settings": rt.settings.public_view(),
        })

    @app.page("/healthz")
    async def healthz(web, request):
        observe_consumer(app, pipeline, starts)
        metrics.update_health(rt.health, rt.settings.unhealthy_after)
        return _verdict(web, rt.health.live_problems(rt.settings.unhealthy_after))

    @app.page("/readyz")
    async def readyz(web, request):
        observe_consumer(app, pipeline, starts)
        return _verdict(web, metrics.update_health(rt.health, rt.settings.unhealthy_after))

    @app.page("/metrics")
    async def prometheus(web, request):
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")


def _verdict(web, problems: list[str]):
    body = {"status": "unhealthy" if problems else "ok", "problems": problems}
    return web.json(body, status=503 if problems else 200)
