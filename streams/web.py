"""HTTP endpoints on port 8083, like Blueflow's: /service/info, /healthz, /metrics.

/service/info answers as soon as the worker runs (readiness) and lists the steps being retried; /healthz
fails (liveness) when Kentik or COS reject the credentials, when a stage of this worker has messages pending
and its offsets did not move for `unhealthy_after` seconds, or when a retried step kept failing that long
(streams/health.py; the problems name the stage or the step and its last reason).
Nothing here shows a secret: settings go through `Settings.public_view()`.
"""
from __future__ import annotations

import time

from streams import metrics

VERSION = metrics.VERSION


def progress_counts() -> dict:
    """The counters `blueflow demo` and `blueflow status` add up across workers."""
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


def observe_consumer(app, pipeline) -> None:
    """Feed this worker's lag and committed offsets per stage (its agents' topics) into its Health."""
    from streams.health import STAGE_TOPICS, consumer_lag

    try:
        consumer = app.consumer
        assignment = list(consumer.assignment())
        committed, read = consumer._committed_offset.get, consumer._read_offset.get  # noqa: SLF001
    except Exception:  # no consumer yet, or not assigned: nothing to observe
        return
    total = 0
    for stage, suffix in STAGE_TOPICS.items():
        topic = pipeline.settings.topic(suffix)
        lag, done = consumer_lag([tp for tp in assignment if tp.topic == topic], consumer.highwater, committed, read)
        pipeline.rt.health.observe_stage(stage, lag, done)
        total += lag
    metrics.CONSUMER_LAG.set(total)


def register(app, pipeline) -> None:
    rt = pipeline.rt

    @app.timer(2.0)
    async def watch_consumer():
        observe_consumer(app, pipeline)
        metrics.update_health(rt.health, rt.settings.unhealthy_after)  # blueflow_healthy without a /healthz call

    @app.page("/service/info")
    async def service_info(web, request):
        return web.json({
            "service": "blueflow",
            "version": VERSION,
            "leader": bool(app.is_leader()),
            "uptime_s": round(time.time() - rt.started_at, 1),
            "healthy": not rt.health.problems(rt.settings.unhealthy_after),
            "lag": rt.health.lag,
            "problems": rt.health.problems(rt.settings.unhealthy_after),
            "retrying": rt.health.retrying(),
            "metadata_regions": sorted(pipeline.metadata.snapshots),
            "devices_cached": len(pipeline.devices),
            "sources": pipeline.sources.view(),
            "counts": progress_counts(),
            "settings": rt.settings.public_view(),
        })

    @app.page("/healthz")
    async def healthz(web, request):
        observe_consumer(app, pipeline)
        problems = metrics.update_health(rt.health, rt.settings.unhealthy_after)
        body = {"status": "unhealthy" if problems else "ok", "problems": problems}
        return web.json(body, status=503 if problems else 200)

    @app.page("/metrics")
    async def prometheus(web, request):
        return web.bytes(metrics.render(), content_type="text/plain; version=0.0.4")
