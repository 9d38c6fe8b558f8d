"""The benchmark's pure helpers: percentiles, /proc parsing, Prometheus text, Kafka dirs, report rows, profiles."""
from __future__ import annotations

import json

import pytest

from benchmarks import measure
from benchmarks.profile_top import frame_name, parse_collapsed, top_frames

STAT = ("4934 (python -m streams) S 4916 4934 4934 0 -1 4194560 51234 0 12 0 731 129 0 0 20 0 23 0 "
        "1234567 987654321 40000 18446744073709551615 1 1 0 0 0 0 0 16781312 17642 0 0 0 17 1 0 0 0 0 0")


def test_percentile_interpolates_between_ranks():
    xs = [10, 1, 3, 2, 4, 5, 6, 7, 8, 9]
    assert measure.percentile(xs, 50) == pytest.approx(5.5)
    assert measure.percentile(xs, 0) == 1.0
    assert measure.percentile(xs, 100) == 10.0
    assert measure.percentile(xs, 99) == pytest.approx(9.91)
    assert measure.percentile([7.5], 99) == 7.5
    assert measure.percentile([], 50) is None
    with pytest.raises(ValueError):
        measure.percentile(xs, 101)


def test_proc_stat_cpu_is_utime_plus_stime_even_with_odd_command_names():
    assert measure.proc_stat_cpu_ticks(STAT) == 731 + 129
    odd = STAT.replace("(python -m streams)", "(a) b (c))")
    assert measure.proc_stat_cpu_ticks(odd) == 860
    with pytest.raises(ValueError):
        measure.proc_stat_cpu_ticks("no parenthesis here")
    with pytest.raises(ValueError):
        measure.proc_stat_cpu_ticks("1 (x) S 2 3")


def test_proc_status_reads_peak_rss():
    status = "Name:\tpython\nVmPeak:\t  900000 kB\nVmHWM:\t  163840 kB\nVmRSS:\t  150000 kB\n"
    assert measure.proc_status_kb(status) == 163840
    assert measure.proc_status_kb(status, "VmRSS") == 150000
    assert measure.proc_status_kb("Name:\tx\n") is None


PROM = """# HELP blueflow_cos_operations_total COS calls by operation and result.
# TYPE blueflow_cos_operations_total counter
blueflow_cos_operations_total{operation="list",result="ok"} 12.0
blueflow_cos_operations_total{operation="get",result="ok"} 200.0
blueflow_cos_operations_total{operation="delete",result="ok"} 200.0
blueflow_cos_operations_total{operation="get",result="error"} 1.0
blueflow_kentik_request_bytes_total 4.6e+06
blueflow_stage_seconds_bucket{le="0.001",stage="parse"} 3.0
blueflow_stage_seconds_count{stage="parse"} 200.0
blueflow_stage_seconds_sum{stage="parse"} 11.5
blueflow_stage_seconds_count{stage="sink"} 178.0
blueflow_stage_seconds_sum{stage="sink"} 26.25
"""


def test_prometheus_text_is_parsed_and_summed_per_label():
    samples = measure.parse_prometheus(PROM)
    assert len(samples) == 10
    assert measure.metric_sum(samples, "blueflow_kentik_request_bytes_total") == 4.6e6
    assert measure.metric_sum(samples, "blueflow_cos_operations_total") == 413.0
    assert measure.metric_sum(samples, "blueflow_cos_operations_total", operation="get") == 201.0
    assert measure.cos_operations(samples) == {"list/ok": 12.0, "get/ok": 200.0, "delete/ok": 200.0,
                                               "get/error": 1.0}
    assert measure.stage_seconds(samples) == {"parse": {"sum": 11.5, "count": 200.0},
                                              "sink": {"sum": 26.25, "count": 178.0}}
    two = measure.merge_samples([samples, samples])
    assert measure.metric_sum(two, "blueflow_cos_operations_total", operation="list") == 24.0


def test_kafka_dirs_of_the_run_only():
    names = ["benchw1a.flows-0", "benchw1a.flows-1", "benchw1a.kflow-0", "benchw1a-__assignor-__leader-0",
             "benchw1ab.flows-0", "__consumer_offsets-3", "meta.properties", "benchw1a.flows-x",
             "other.benchw1a.flows-0"]
    assert measure.kafka_topic_dirs(names, "benchw1a") == {
        "benchw1a.flows": ["benchw1a.flows-0", "benchw1a.flows-1"], "benchw1a.kflow": ["benchw1a.kflow-0"],
        "benchw1a-__assignor-__leader": ["benchw1a-__assignor-__leader-0"]}


def _row(workers: int, wall: float) -> dict:
    return measure.build_run_row(workload="W1", workers=workers, objects=200, flows=20_000, chf=38_000, wall_s=wall,
                                 cpu_s=6.0, cpu_startup_s=1.0, floor_us_per_flow=2.5, peak_rss_kb=[150 * 1024, 160 * 1024],
                                 kafka_bytes=1_200_000, kentik_bytes=4_000_000, cos_requests=410,
                                 latencies_s=[1.0, 2.0, 3.0, 4.0], git_commit="abc1234")


def test_run_row_has_the_report_shape_and_units():
    row = _row(1, 10.0)
    assert measure.missing_keys(row) == []
    assert row["flows_per_s"] == 2000.0
    assert row["objects_per_s"] == 20.0
    assert row["worker_cpu_us_per_flow"] == 300.0
    assert row["worker_cpu_us_per_flow_excl_startup"] == 250.0
    assert row["cpu_over_floor"] == 120.0
    assert row["peak_rss_mb"] == 160.0
    assert row["kafka_bytes_per_flow"] == 60.0
    assert row["kentik_bytes_per_flow"] == 200.0
    assert row["cos_requests_per_object"] == 2.05
    assert (row["latency_p50_s"], row["latency_p99_s"]) == (2.5, 3.97)
    assert row["git_commit"] == "abc1234"
    json.dumps(row)  # the report is plain JSON
    assert measure.missing_keys({"workload": "W1"})[:2] == ["workers", "flows_per_s"]


def test_run_row_without_flows_or_latencies_gives_none_not_errors():
    row = measure.build_run_row(workload="W2", workers=1, objects=0, flows=0, chf=0, wall_s=0.0, cpu_s=0.0,
                                cpu_startup_s=0.0, floor_us_per_flow=None, peak_rss_kb=[], kafka_bytes=0,
                                kentik_bytes=0, cos_requests=0, latencies_s=[])
    assert row["flows_per_s"] is None and row["worker_cpu_us_per_flow"] is None
    assert row["peak_rss_mb"] is None and row["latency_p99_s"] is None


def test_scaling_and_table():
    runs = [_row(1, 10.0), _row(2, 6.25)]
    assert measure.scaling(runs) == {"W1": 1.6}
    assert measure.scaling(runs[:1]) == {"W1": None}
    table = measure.format_table(runs).splitlines()
    assert len(table) == 3
    assert table[0].split()[:4] == ["wl", "sink", "w", "flows/s"]
    assert table[1].split()[:4] == ["W1", "-", "1", "2,000"]
    assert table[2].split()[:4] == ["W1", "-", "2", "3,200"]


def test_scaling_is_per_workload_and_sink_and_the_table_names_the_sink():
    runs = [dict(_row(1, 10.0), sink="kentik"), dict(_row(2, 6.25), sink="kentik"),
            dict(_row(1, 10.0), sink="ipfix"), dict(_row(2, 8.0), sink="ipfix")]
    assert measure.scaling(runs) == {"W1": 1.6, "W1/ipfix": 1.25}
    assert measure.scaling(runs[2:3]) == {"W1/ipfix": None}
    assert [line.split()[:3] for line in measure.format_table(runs).splitlines()[1:]] == [
        ["W1", "kentik", "1"], ["W1", "kentik", "2"], ["W1", "ipfix", "1"], ["W1", "ipfix", "2"]]


def test_profile_top_counts_self_and_inclusive_for_the_worker_only():
    raw = ('process 1:"bench";process 2:"python -m streams.ops.cli worker";main (a.py:1);f (b.py:10) 6\n'
           'process 1:"bench";process 2:"python -m streams.ops.cli worker";main (a.py:2);g (b.py:20);f (b.py:11) 3\n'
           'process 1:"bench";main (bench.py:1) 50\n'
           'garbage line\n')
    stacks = parse_collapsed(raw)
    assert len(stacks) == 3
    total, self_top, incl_top = top_frames(stacks)
    assert total == 9
    assert self_top == [("f (b.py)", 9)]
    assert dict(incl_top) == {"main (a.py)": 9, "f (b.py)": 9, "g (b.py)": 3}
    assert frame_name("Codec.decode (streams/formats/avro.py:196)") == "Codec.decode (streams/formats/avro.py)"


def test_the_benchmark_fails_its_sanity_check_when_stand_ins_use_over_a_tenth_of_the_workers_cpu():
    from benchmarks.probes import standin_check

    stack = {"kafka": 50.0, "s3proxy": 20.0, "kentik": 3.0, "iam": 0.5, "vpc": 0.2, "cos-iam-proxy": 1.0}
    ok = standin_check(stack, worker_cpu_s=100.0)
    assert ok["ok"] and ok["standin_cpu_s"] == 4.7 and ok["share_of_worker_cpu"] == 0.047  # Kafka/S3Proxy are real
    assert not standin_check(dict(stack, kentik=12.0), worker_cpu_s=100.0)["ok"]


def test_cos_requests_count_the_pollers_listings_at_the_production_interval():
    from benchmarks.measure import cos_requests

    samples = [("blueflow_cos_requests_total", {"operation": "GetObject"}, 600.0),
               ("blueflow_cos_requests_total", {"operation": "ListObjectsV2"}, 27.0),
               ("blueflow_cos_requests_total", {"operation": "DeleteObjects"}, 12.0),
               ("blueflow_cos_poll_list_requests_total", {}, 15.0)]
    out = cos_requests(samples, poll_interval_s=2.0)
    assert out["by_operation"] == {"GetObject": 600.0, "ListObjectsV2": 27.0, "DeleteObjects": 12.0}
    assert out["total"] == 639.0 and out["poll_list"] == 15.0
    assert out["at_production_poll"] == 639.0 - 15.0 + 1.0  # 15 listings every 2 s are 1 every 30 s


def test_w3_latency_summary_against_its_target():
    from benchmarks.steady import latency_summary

    values = [float(i) for i in range(1, 101)]
    out = latency_summary(values, 15.0)
    assert out["objects"] == 100 and out["p50_s"] == 50.5 and out["p99_s"] == 99.01 and out["ok"] is False
    assert latency_summary([1.0, 2.0], 15.0)["ok"] is True and latency_summary([])["p99_s"] is None
