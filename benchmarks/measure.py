"""Pure helpers of the benchmark: percentiles, /proc parsing, Prometheus text parsing, report rows and table.

No I/O here (callers read the files and HTTP pages and pass the text in), so everything is unit-tested
without a stack (tests/unit/devstack/test_benchmarks.py).
"""
from __future__ import annotations

import math
import re
from typing import Iterable, Mapping, Sequence

# keys every run of results/latest.json carries (the brief's list); extra keys are allowed
REQUIRED_KEYS = ("workload", "workers", "flows_per_s", "objects_per_s", "worker_cpu_us_per_flow",
                 "floor_us_per_flow", "peak_rss_mb", "kafka_bytes_per_flow", "kentik_bytes_per_flow",
                 "cos_requests_per_object", "latency_p50_s", "latency_p99_s")

# issue #11's targets (one worker unless named); W3's p99 bound is the poll interval (5 s) + 10 s
TARGETS = {"W1_worker_cpu_us_per_flow": 40.0, "W2_worker_cpu_us_per_flow": 15.0,
           "cpu_per_flow_2_workers_over_1": 1.15, "W2_peak_rss_mb_per_worker": 200.0,
           "W1_cos_requests_per_object": 1.1, "W1_kentik_posts_per_object": 0.3, "W3_p99_write_to_accepted_s": 15.0,
           "standin_cpu_share_of_workers": 0.10}


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100) with linear interpolation between closest ranks; None for no values."""
    if not values:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    xs = sorted(values)
    if len(xs) == 1:
        return float(xs[0])
    pos = (len(xs) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


def proc_stat_cpu_ticks(stat_text: str) -> int:
    """utime + stime (clock ticks) from the text of /proc/<pid>/stat.

    The command name (field 2) is in parentheses and may contain spaces or ')' itself, so fields are
    counted after the last ')': utime and stime are fields 14 and 15 of the whole line.
    """
    end = stat_text.rfind(")")
    if end < 0:
        raise ValueError("not a /proc/<pid>/stat line: no ')' after the command name")
    rest = stat_text[end + 1:].split()
    # rest[0] is field 3 (state): field k is rest[k - 3]
    if len(rest) < 13:
        raise ValueError(f"/proc/<pid>/stat line too short ({len(rest)} fields after the command)")
    return int(rest[11]) + int(rest[12])


def proc_status_kb(status_text: str, field: str = "VmHWM") -> int | None:
    """A 'kB' field of /proc/<pid>/status (VmHWM = peak RSS), in kB; None when absent."""
    m = re.search(rf"^{re.escape(field)}:\s+(\d+)\s*kB", status_text, re.MULTILINE)
    return int(m.group(1)) if m else None


_SAMPLE_RE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+([^\s]+)')
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of every sample in a Prometheus text exposition (comments skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE_RE.match(line)
        if not m:
            continue
        labels = dict(_LABEL_RE.findall(m.group(3) or ""))
        try:
            value = float(m.group(4))
        except ValueError:
            continue
        out.append((m.group(1), labels, value))
    return out


def metric_sum(samples: Iterable[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """Sum of the samples called `name` whose labels include `labels`."""
    return sum(v for n, ls, v in samples if n == name and all(ls.get(k) == want for k, want in labels.items()))


def cos_operations(samples: Iterable[tuple[str, dict[str, str], float]]) -> dict[str, float]:
    """'operation/result' -> count from blueflow_cos_operations_total."""
    out: dict[str, float] = {}
    for n, ls, v in samples:
        if n == "blueflow_cos_operations_total":
            k = f"{ls.get('operation', '?')}/{ls.get('result', '?')}"
            out[k] = out.get(k, 0.0) + v
    return out


PRODUCTION_POLL_S = 30.0  # the default poll interval (settings.poll_interval): listings are counted at this rate


def cos_requests(samples: Iterable[tuple[str, dict[str, str], float]], poll_interval_s: float,
                 production_poll_s: float = PRODUCTION_POLL_S) -> dict:
    """COS HTTP requests (blueflow_cos_requests_total, retries included) by S3 operation, and their total
    with the poller's listings counted at the production poll interval: a benchmark polls every
    `poll_interval_s`, production every `production_poll_s`, so the poller's ListObjectsV2 requests
    (blueflow_cos_poll_list_requests_total) are scaled by their ratio. Version-check listings of the
    deletes stay as they are (they do not depend on the poll interval)."""
    by_op: dict[str, float] = {}
    for n, ls, v in samples:
        if n == "blueflow_cos_requests_total":
            by_op[ls.get("operation", "?")] = by_op.get(ls.get("operation", "?"), 0.0) + v
    poll = metric_sum(samples, "blueflow_cos_poll_list_requests_total")
    total = sum(by_op.values())
    scaled = total - poll + poll * poll_interval_s / production_poll_s
    return {"by_operation": by_op, "poll_list": poll, "total": total, "at_production_poll": round(scaled, 1)}


def stage_seconds(samples: Iterable[tuple[str, dict[str, str], float]]) -> dict[str, dict[str, float]]:
    """stage -> {"sum": seconds, "count": messages} from the blueflow_stage_seconds histogram."""
    out: dict[str, dict[str, float]] = {}
    for n, ls, v in samples:
        if n in ("blueflow_stage_seconds_sum", "blueflow_stage_seconds_count"):
            d = out.setdefault(ls.get("stage", "?"), {"sum": 0.0, "count": 0.0})
            d["sum" if n.endswith("_sum") else "count"] += v
    return out


def merge_samples(per_worker: Iterable[list[tuple[str, dict[str, str], float]]]) -> list:
    """The samples of several workers as one list (sums over workers then work with metric_sum)."""
    out: list = []
    for samples in per_worker:
        out.extend(samples)
    return out


def kafka_topic_dirs(names: Iterable[str], run_id: str) -> dict[str, list[str]]:
    """Topic -> its partition directories, for the Kafka log-dir entries that belong to run `run_id`.

    Partition directories are '<topic>-<partition>'; the run's topics start with '<run_id>.' (topic prefix)
    or '<run_id>-' (Faust's internal topics named after the app id).
    """
    out: dict[str, list[str]] = {}
    for name in names:
        topic, sep, part = name.rpartition("-")
        if not sep or not part.isdigit():
            continue
        if topic.startswith(run_id + ".") or topic.startswith(run_id + "-"):
            out.setdefault(topic, []).append(name)
    return out


def safe_div(a: float | None, b: float | None) -> float | None:
    if a is None or b in (None, 0):
        return None
    return a / b


def rnd(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(float(x), digits)


def build_run_row(*, workload: str, workers: int, objects: int, flows: int, chf: int, wall_s: float,
                  cpu_s: float, cpu_startup_s: float, floor_us_per_flow: float | None, peak_rss_kb: Sequence[int],
                  kafka_bytes: int, kentik_bytes: float, cos_requests: float, latencies_s: Sequence[float],
                  **extra) -> dict:
    """One run of the report from raw measurements (the units the brief asks for)."""
    cpu_us = safe_div(cpu_s * 1e6, flows)
    row = {
        "workload": workload,
        "workers": workers,
        "objects": objects,
        "flows": flows,
        "chf": chf,
        "wall_s": rnd(wall_s, 2),
        "flows_per_s": rnd(safe_div(flows, wall_s), 1),
        "objects_per_s": rnd(safe_div(objects, wall_s), 2),
        "worker_cpu_s": rnd(cpu_s, 2),
        "worker_cpu_us_per_flow": rnd(cpu_us, 2),
        "worker_cpu_us_per_flow_excl_startup": rnd(safe_div((cpu_s - cpu_startup_s) * 1e6, flows), 2),
        "floor_us_per_flow": rnd(floor_us_per_flow, 3),
        "cpu_over_floor": rnd(safe_div(cpu_us, floor_us_per_flow), 1),
        "peak_rss_mb": rnd(max(peak_rss_kb) / 1024.0, 1) if peak_rss_kb else None,
        "peak_rss_mb_per_worker": [rnd(k / 1024.0, 1) for k in peak_rss_kb],
        "kafka_bytes": int(kafka_bytes),
        "kafka_bytes_per_flow": rnd(safe_div(kafka_bytes, flows), 1),
        "kentik_bytes": int(kentik_bytes),
        "kentik_bytes_per_flow": rnd(safe_div(kentik_bytes, flows), 1),
        "cos_requests": int(cos_requests),
        "cos_requests_per_object": rnd(safe_div(cos_requests, objects), 3),
        "latency_p50_s": rnd(percentile(latencies_s, 50), 2),
        "latency_p99_s": rnd(percentile(latencies_s, 99), 2),
        "latency_objects": len(latencies_s),
    }
    row.update(extra)
    return row


def missing_keys(run: Mapping) -> list[str]:
    """Required report keys a run lacks (empty list = the run has the report's shape)."""
    return [k for k in REQUIRED_KEYS if k not in run]


def scaling_key(run: Mapping) -> str:
    """A run's key in `scaling`: the workload, plus "/<sink>" for a sink other than Kentik's."""
    sink = run.get("sink", "kentik")
    return run["workload"] if sink == "kentik" else f"{run['workload']}/{sink}"


def scaling(runs: Sequence[Mapping]) -> dict[str, float | None]:
    """workload (/sink) -> flows/s with 2 workers over flows/s with 1 worker (None when either run is missing)."""
    by = {(scaling_key(r), r["workers"]): r for r in runs}
    out: dict[str, float | None] = {}
    for key in dict.fromkeys(map(scaling_key, runs)):
        one, two = by.get((key, 1)), by.get((key, 2))
        out[key] = rnd(safe_div(two["flows_per_s"], one["flows_per_s"]), 2) if one and two else None
    return out


TABLE_COLUMNS = (("workload", "wl"), ("sink", "sink"), ("workers", "w"), ("flows_per_s", "flows/s"),
                 ("objects_per_s", "obj/s"),
                 ("worker_cpu_us_per_flow", "cpu µs/fl"), ("floor_us_per_flow", "floor µs"),
                 ("cpu_over_floor", "×floor"), ("peak_rss_mb", "rss MB"), ("kafka_bytes_per_flow", "kafka B/fl"),
                 ("kentik_bytes_per_flow", "kentik B/fl"), ("cos_requests_per_object", "cos/obj"),
                 ("latency_p50_s", "p50 s"), ("latency_p99_s", "p99 s"))


def format_table(runs: Sequence[Mapping]) -> str:
    """A short fixed-width table of the runs (one line each)."""
    def cell(v) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 10 else f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}"
        return str(v)

    rows = [[h for _, h in TABLE_COLUMNS]] + [[cell(r.get(k)) for k, _ in TABLE_COLUMNS] for r in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in rows)
