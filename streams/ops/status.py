"""`blueflow status`: one look at the whole pipeline, as one JSON document or live (streams/ops/statusview.py).

Sources: each worker's /service/info (health, leader, counters) and /metrics (Kentik HTTP results, COS operations,
dead letters by stage); Kafka (the consumer group's committed offsets vs the end offsets of objects / flows / kflow
= lag per stage; the dead-letter topic); each source's bucket listing (objects waiting and the age of the oldest one
that is not quarantined), and all of them together. Rates (flows/s) come from two samples `interval` seconds apart.
Collection returns errors as values inside the document: a worker or Kafka being down is something to show, not a
crash.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from streams.formats.stage_topics import CONSUMES

RATE_COUNTERS = ("flows_parsed", "chf_translated", "chf_delivered", "ipfix_exported", "objects_completed")


# ------------------------------------------------------------------------------------------ pure
def parse_metrics(text: str) -> dict[str, dict[tuple, float]]:
    """Prometheus text → {sample name: {sorted label items: value}}."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def by_label(samples: dict[str, dict[tuple, float]], name: str, label: str, **match: str) -> dict[str, int]:
    """Sum of `name` per value of `label`, over samples whose labels include `match`."""
    out: dict[str, int] = {}
    for labels, value in samples.get(name, {}).items():
        d = dict(labels)
        if any(d.get(k) != v for k, v in match.items()):
            continue
        out[d.get(label, "")] = out.get(d.get(label, ""), 0) + int(value)
    return out


def add_up(dicts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for d in dicts:
        for k, v in d.items():
            total[k] = total.get(k, 0) + int(v)
    return dict(sorted(total.items()))


def stage_lag(ends: dict[int, int], committed: dict[int, int]) -> dict:
    """Lag of one topic: end offset minus committed offset per partition (no commit yet = from 0)."""
    per = {p: max(0, end - max(0, committed.get(p, 0))) for p, end in ends.items()}
    return {"lag": sum(per.values()), "end": sum(ends.values()), "committed": sum(max(0, committed.get(p, 0))
                                                                                  for p in ends),
            "partitions": {str(p): v for p, v in sorted(per.items())}}


def rates(before: dict[str, int], after: dict[str, int], seconds: float) -> dict:
    out = {"interval_s": round(seconds, 2)}
    for name in RATE_COUNTERS:
        out[f"{name}_per_s"] = (round(max(0, after.get(name, 0) - before.get(name, 0)) / seconds, 1)
                                if seconds > 0 else None)
    return out


# ------------------------------------------------------------------------------------------ I/O
def pod_urls(host_port: str, resolve=None) -> list[str]:
    """One worker URL per address `host` resolves to (a headless Service's name resolves to every pod), in
    address order. ValueError in operator words when it is not host:port or resolves to nothing."""
    import socket

    host, sep, port = host_port.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"--worker-dns {host_port!r} is not host:port (e.g. blueflow-pods:8083)")
    try:
        infos = (resolve or socket.getaddrinfo)(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ValueError(f"--worker-dns {host_port}: {host} does not resolve ({exc})") from None
    addresses = sorted({info[4][0] for info in infos})
    return [f"http://[{a}]:{port}" if ":" in a else f"http://{a}:{port}" for a in addresses]


def worker_sample(url: str, timeout: float = 3.0) -> dict:
    import requests

    base = url.rstrip("/")
    out: dict = {"url": base, "ok": False}
    try:
        info = requests.get(base + "/service/info", timeout=timeout).json()
        text = requests.get(base + "/metrics", timeout=timeout).text
    except Exception as exc:  # a worker that is down is reported, not fatal
        out["error"] = f"{type(exc).__name__}: {exc}"  # whole: the cause is at the end
        return out
    samples = parse_metrics(text)
    out.update(ok=True, leader=bool(info.get("leader")), healthy=bool(info.get("healthy")),
               problems=list(info.get("problems") or []), uptime_s=info.get("uptime_s"), lag=info.get("lag"),
               counts=dict(info.get("counts") or {}),
               kentik=by_label(samples, "blueflow_kentik_requests_total", "result"),
               cos_errors=by_label(samples, "blueflow_cos_operations_total", "operation", result="error"),
               cos_ok=by_label(samples, "blueflow_cos_operations_total", "operation", result="ok"),
               deadlettered=by_label(samples, "blueflow_deadlettered_total", "stage"),
               sources=list(info.get("sources") or []),
               app_id=(info.get("settings") or {}).get("app_id"))
    return out


def kafka_lag(settings) -> dict:
    """Lag per stage of the consumer group `settings.app_id`, read with the admin API (never joins it)."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    from streams.state.follower import kafka_client_config
    from streams.ops.kafka_check import QUIET
    from streams.ops.replay import throwaway_consumer, topic_watermarks

    conf = dict(kafka_client_config(settings), **QUIET)  # a failure is reported in the document, not logged
    consumer = throwaway_consumer(conf, "status")
    try:
        ends = {stage: {p: hw for p, (_, hw) in topic_watermarks(consumer, settings.topic(t)).items()}
                for stage, t in CONSUMES.items()}
    finally:
        consumer.close()
    admin = AdminClient(conf)
    request = [TopicPartition(settings.topic(t), p) for stage, t in CONSUMES.items() for p in ends[stage]]
    futures = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(settings.app_id, request)])
    answer = futures[settings.app_id].result(timeout=15)
    committed: dict[str, dict[int, int]] = {}
    for tp in answer.topic_partitions:
        committed.setdefault(tp.topic, {})[tp.partition] = tp.offset
    return {stage: dict(topic=settings.topic(t), **stage_lag(ends[stage], committed.get(settings.topic(t), {})))
            for stage, t in CONSUMES.items()}


def deadletter_summary(settings) -> tuple[dict, set[tuple[str, str]]]:
    from streams.ops.deadletters import newest_per_key, read_letters

    newest = newest_per_key(read_letters(settings))
    stages: dict[str, int] = {}
    for letter in newest:
        stages[letter.record.get("stage", "")] = stages.get(letter.record.get("stage", ""), 0) + 1
    quarantined = {(item.key, item.record.get("etag", "")) for item in newest}
    return {"objects": len(newest), "by_stage": dict(sorted(stages.items())),
            "newest": [item.as_dict() for item in newest[:5]]}, quarantined


def guarded(what: str, fn, *args):
    try:
        return fn(*args), None
    except Exception as exc:  # errors as values: the document says what could not be read
        return None, f"{what}: {type(exc).__name__}: {exc}"


def collect(settings, worker_urls: list[str], *, interval: float = 2.0, with_bucket: bool = True,
            previous: dict | None = None) -> dict:
    """One status document. Rates: against `previous` (live view) or two samples `interval` apart."""
    started = time.monotonic()
    workers = [worker_sample(u) for u in worker_urls]
    if previous is None and interval > 0:
        time.sleep(interval)
        first = add_up([w.get("counts", {}) for w in workers if w["ok"]])
        first_by_url = {w["url"]: w.get("counts") or {} for w in workers if w["ok"]}
        workers = [worker_sample(u) for u in worker_urls]
        elapsed = time.monotonic() - started
    elif previous is not None:
        first = previous.get("counts", {})
        first_by_url = {w["url"]: w.get("counts") or {} for w in previous.get("workers", []) if w.get("ok")}
        elapsed = time.monotonic() - previous.get("_mono", started)
    else:
        first, first_by_url, elapsed = None, {}, 0.0
    for w in workers:
        if w["ok"] and w["url"] in first_by_url and elapsed > 0:
            w["rates"] = rates(first_by_url[w["url"]], w["counts"], elapsed)
    live = [w for w in workers if w["ok"]]
    counts = add_up([w.get("counts", {}) for w in live])
    errors = [f"worker {w['url']}: {w['error']}" for w in workers if not w["ok"]]
    lag, problem = guarded("kafka lag", kafka_lag, settings)
    errors += [problem] if problem else []
    dead, problem = guarded("dead letters", deadletter_summary, settings)
    errors += [problem] if problem else []
    sources = bucket = None
    if with_bucket:  # each source's backlog and all of them together (streams/ops/source_status.py)
        from streams.ops.source_status import listing_errors, source_backlogs, waiting_totals, with_worker_problems

        sources = with_worker_problems(source_backlogs(settings, dead[1] if dead else set()), live)
        bucket = waiting_totals(sources)
        errors += listing_errors(settings, sources)
    return {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "app_id": settings.app_id, "topic_prefix": settings.topic_prefix, "bucket_name": settings.bucket_name,
        "healthy": bool(live) and all(w["healthy"] for w in live) and len(live) == len(workers),
        "workers": [{k: w.get(k) for k in ("url", "ok", "leader", "healthy", "problems", "uptime_s", "lag", "error",
                                           "counts", "rates", "sources")}
                    for w in workers],
        "lag": lag,
        "in_flight": None if bucket is None else bucket["pending"],
        "bucket": bucket,
        "sources": sources,
        "counts": counts,
        "rates": rates(first, counts, elapsed) if first is not None else None,
        "kentik": add_up([w["kentik"] for w in live]),
        "cos_errors": add_up([w["cos_errors"] for w in live]),
        "cos_ok": add_up([w["cos_ok"] for w in live]),
        "deadletters": None if dead is None else dict(dead[0], written=add_up([w["deadlettered"] for w in live])),
        "errors": errors,
    }
