"""Prometheus metrics of a worker, per stage, served on /metrics.

Counters count work done by this process; `blueflow status` and `blueflow-dev demo` add them up over workers.
No label ever holds a secret or an object key (keys would explode cardinality).
"""
from __future__ import annotations

import platform
from importlib import metadata

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector, ProcessCollector,
                               generate_latest)


def _version() -> str:
    try:
        return metadata.version("blueflow")
    except metadata.PackageNotFoundError:
        return "unknown"


VERSION = _version()
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds...
PlatformCollector(registry=REGISTRY)  # python_info
BUILD_INFO = Gauge("blueflow_build_info", "Always 1; the labels say which blueflow and Python this worker runs.",
                   ["version", "python"], registry=REGISTRY)
BUILD_INFO.labels(version=VERSION, python=platform.python_version()).set(1)

OBJECTS_LISTED = Counter("blueflow_objects_listed_total", "Objects seen in bucket listings (leader).",
                         registry=REGISTRY)
OBJECTS_PUBLISHED = Counter("blueflow_objects_published_total", "Object references published to the objects topic.",
                            ["reason"], registry=REGISTRY)
OBJECTS_PARSED = Counter("blueflow_objects_parsed_total", "Objects downloaded and parsed.", registry=REGISTRY)
OBJECTS_SKIPPED = Counter("blueflow_objects_skipped_total", "Object references skipped by the parse stage.",
                          ["reason"], registry=REGISTRY)
FLOWS_PARSED = Counter("blueflow_flows_parsed_total", "IBM flow records parsed.", registry=REGISTRY)
CHF_TRANSLATED = Counter("blueflow_chf_translated_total", "kflow records produced by the enrich stage.",
                         registry=REGISTRY)
OBJECTS_REGION_WITHOUT_METADATA = Counter(
    "blueflow_objects_region_without_metadata_total",
    "Objects whose key names a region whose VPC metadata this deployment does not load (add it to --regions): "
    "their flows carry ids, not names.", ["region"], registry=REGISTRY)
CHF_DELIVERED = Counter("blueflow_chf_delivered_total", "kflow records accepted by Kentik (HTTP 200).",
                        registry=REGISTRY)
CHF_SKIPPED_DUPLICATE = Counter("blueflow_chf_skipped_duplicate_total",
                                "kflow records not sent again because their chunk was already accepted.",
                                registry=REGISTRY)
# IPFIX sink (docs/ipfix.md): "exported" = handed to every collector's socket at its pace — not an acknowledgement
IPFIX_EXPORTED = Counter("blueflow_ipfix_exported_total", "kflow records handed over to every IPFIX collector of "
                         "their source (UDP: accepted by the socket at the collector's pace; no receipt).",
                         registry=REGISTRY)
IPFIX_RECORDS = Counter("blueflow_ipfix_records_total", "IPFIX data records handed over, per collector.",
                        ["collector"], registry=REGISTRY)
IPFIX_DATAGRAMS = Counter("blueflow_ipfix_datagrams_total", "IPFIX Messages handed over, templates included "
                          "(over UDP one datagram each), per collector.", ["collector"], registry=REGISTRY)
IPFIX_BYTES = Counter("blueflow_ipfix_bytes_total", "Bytes of IPFIX Messages handed over, per collector.",
                      ["collector"], registry=REGISTRY)
IPFIX_SEND_ERRORS = Counter("blueflow_ipfix_send_errors_total", "Failed IPFIX sends (each is retried), per "
                            "collector.", ["collector"], registry=REGISTRY)
IPFIX_PACE = Gauge("blueflow_ipfix_pace_records_per_second", "The pace of this worker's export to a collector "
                   "(UDP: --ipfix_rate; 0 = unpaced, TCP).", ["collector"], registry=REGISTRY)
IPFIX_PACE_WAIT = Counter("blueflow_ipfix_pace_wait_seconds_total", "Seconds the export waited for its pace, per "
                          "collector (grows as fast as time: the pace is the bottleneck).", ["collector"],
                          registry=REGISTRY)
KENTIK_REQUESTS = Counter("blueflow_kentik_requests_total", "Flow-ingest calls by result.", ["result"],
                          registry=REGISTRY)
KENTIK_BYTES = Counter("blueflow_kentik_request_bytes_total", "Bytes of flow-ingest request bodies sent.",
                       registry=REGISTRY)
OBJECTS_DELETED = Counter("blueflow_objects_deleted_total", "Source objects deleted after delivery.",
                          registry=REGISTRY)
OBJECTS_COMPLETED = Counter("blueflow_objects_completed_total",
                            "Objects whose every flow was accepted (deleted or kept).", registry=REGISTRY)
DEADLETTERED = Counter("blueflow_deadlettered_total", "Dead-letter records written, by stage.", ["stage"],
                       registry=REGISTRY)
COS_OPERATIONS = Counter("blueflow_cos_operations_total", "COS calls by operation and result.",
                         ["operation", "result"], registry=REGISTRY)
COS_REQUESTS = Counter("blueflow_cos_requests_total", "HTTP requests sent to COS (retries included), by S3 "
                       "operation (ListObjectsV2, GetObject, DeleteObjects, HeadObject, ...).", ["operation"],
                       registry=REGISTRY)
COS_POLL_LIST_REQUESTS = Counter("blueflow_cos_poll_list_requests_total",
                                 "ListObjectsV2 requests of the poller's listings (one per 1,000 keys listed).",
                                 registry=REGISTRY)
METADATA_REFRESHES = Counter("blueflow_metadata_refreshes_total", "VPC metadata fetches by result.",
                             ["result"], registry=REGISTRY)
STAGE_SECONDS = Histogram("blueflow_stage_seconds", "Time spent per message, by stage.", ["stage"],
                          buckets=(0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                          registry=REGISTRY)
OBJECT_AGE_SECONDS = Histogram("blueflow_object_delivery_age_seconds",
                               "From the object's last-modified time to Kentik accepting its last flow.",
                               buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
                               registry=REGISTRY)
IS_LEADER = Gauge("blueflow_is_leader", "1 when this worker polls COS and the VPC API.", registry=REGISTRY)
HEALTHY = Gauge("blueflow_healthy", "1 when /healthz (liveness) would answer 200 (recomputed every few seconds).",
                registry=REGISTRY)
READY = Gauge("blueflow_ready", "1 when /readyz (readiness: every dependency answers, no stage stuck) would "
              "answer 200.", registry=REGISTRY)
DEPENDENCY_UP = Gauge("blueflow_dependency_up", "0 while a dependency (kentik, cos, vpc, ipfix) is failing or "
                      "rejecting the keys, else 1.", ["dependency"], registry=REGISTRY)
CONSUMER_LAG = Gauge("blueflow_consumer_lag",
                     "Messages of this worker's assigned objects/flows/kflow partitions not yet committed.",
                     registry=REGISTRY)
METADATA_ENDPOINTS = Gauge("blueflow_metadata_endpoints", "IP endpoints in this worker's VPC index.",
                           registry=REGISTRY)


def count_cos_request(operation: str) -> None:
    COS_REQUESTS.labels(operation=operation).inc()


def update_health(health, unhealthy_after: float) -> list[str]:
    """The worker's current readiness problems (none = ready), also set on `blueflow_ready`; liveness on
    `blueflow_healthy`, each dependency's state on `blueflow_dependency_up`."""
    problems = health.problems(unhealthy_after)
    READY.set(0 if problems else 1)
    HEALTHY.set(0 if health.live_problems(unhealthy_after) else 1)
    for dependency, problem in health.dependencies().items():
        DEPENDENCY_UP.labels(dependency=dependency).set(0 if problem else 1)
    return problems


def render() -> bytes:
    """The Prometheus text exposition of this worker's metrics."""
    return generate_latest(REGISTRY)


def counter_value(counter, **labels) -> float:
    """Current value of a counter (summed over label sets when no labels are given)."""
    if labels:
        return counter.labels(**labels)._value.get()
    total = 0.0
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                total += sample.value
    return total
