"""Per-source Prometheus metrics (label `source`: the configured source name, `default` for the implicit one).

The worker-wide metrics of streams/observe/metrics.py stay as they are (dashboards, `blueflow status`); these add
the per-source view: what each source listed, published, delivered and completed, its COS errors, the
objects left waiting because its COS failed, its backlog in the bucket and whether it is healthy.
"""
from __future__ import annotations

from prometheus_client import Counter, Gauge

from streams.observe.metrics import REGISTRY

LISTED = Counter("blueflow_source_objects_listed_total", "Objects seen in listings, per source (leader).",
                 ["source"], registry=REGISTRY)
PUBLISHED = Counter("blueflow_source_objects_published_total", "Object references published, per source.",
                    ["source"], registry=REGISTRY)
HELD_BACK = Counter("blueflow_source_objects_held_back_total",
                    "Due objects not published in a listing because the source's budget was used up.",
                    ["source"], registry=REGISTRY)
COMPLETED = Counter("blueflow_source_objects_completed_total",
                    "Objects whose every flow was accepted, per source.", ["source"], registry=REGISTRY)
DELIVERED = Counter("blueflow_source_chf_delivered_total", "kflow records accepted, per source.", ["source"],
                    registry=REGISTRY)
COS_ERRORS = Counter("blueflow_source_cos_errors_total", "COS call failures, per source and operation.",
                     ["source", "operation"], registry=REGISTRY)
WAITING = Counter("blueflow_source_objects_waiting_total",
                  "Objects left in the bucket for a later listing because their source's COS kept failing.",
                  ["source", "stage"], registry=REGISTRY)
BACKLOG = Gauge("blueflow_source_backlog_objects", "Objects in the source's bucket at the last listing (leader).",
                ["source"], registry=REGISTRY)
OLDEST_AGE = Gauge("blueflow_source_oldest_object_age_seconds",
                   "Age of the oldest object in the source's bucket at the last listing (leader).", ["source"],
                   registry=REGISTRY)
HEALTHY = Gauge("blueflow_source_healthy", "1 when the source's COS calls succeed, 0 while they fail.",
                ["source"], registry=REGISTRY)
