"""The `sources` fault scenario's pure parts: latency per phase, the noise rule, the verdict and the table; and
the several-sources stack helpers (config file, sources)."""
from __future__ import annotations

from devstack.stack import env as stack_env
from devstack.faults.sources import latency_by_phase, latency_unaffected, percentile, table_lines, verdict_entry
from devstack.sources_stack import config_text, stack_sources
from streams.config.config_file import build_sources, load


def test_percentile_nearest_rank():
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.99) == 3.0
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.99)) == (50.0, 99.0)


def test_latency_by_phase_splits_by_write_time_and_counts_never_accepted():
    written = {"a": 1.0, "b": 2.0, "c": 11.0, "d": 12.0, "e": 21.0, "empty": 3.0}
    complete = {"a": 4.0, "b": 4.0, "c": 14.0, "d": None, "e": 22.0}  # "empty" owes nothing: not timed
    phases = latency_by_phase(written, complete, fault_start=10.0, fault_end=20.0)
    assert phases["baseline"] == {"objects": 2, "p50_s": 2.0, "p99_s": 3.0, "never_accepted": 0}
    assert phases["fault"] == {"objects": 1, "p50_s": 3.0, "p99_s": 3.0, "never_accepted": 1}
    assert phases["after"]["objects"] == 1 and phases["after"]["p50_s"] == 1.0


def test_latency_unaffected_within_noise_but_not_beyond():
    base = {"objects": 40, "p50_s": 3.0, "p99_s": 6.0}
    assert latency_unaffected(base, {"objects": 40, "p50_s": 5.0, "p99_s": 12.0}) == ""
    slower = latency_unaffected(base, {"objects": 40, "p50_s": 9.0, "p99_s": 30.0})
    assert "p50 9.0s" in slower and "p99 30.0s" in slower
    assert "not measured" in latency_unaffected(base, {"objects": 0, "p50_s": None, "p99_s": None})


def _source(lost=0, early=0, fault_p50=3.0):
    phase = {"objects": 10, "p50_s": 3.0, "p99_s": 5.0, "never_accepted": 0}
    return {"owed": 100, "accepted": 100 - lost, "pending": 0, "lost": lost, "duplicates": 0, "early_deletes": early,
            "latency": {"baseline": phase, "fault": dict(phase, p50_s=fault_p50), "after": phase}}


def test_verdict_passes_only_with_nothing_lost_drained_healthy_and_unaffected_latency():
    ok = verdict_entry({"acct-a": _source(), "acct-b": _source()}, (10.0, 40.0), 70.0, [200, 200], "r", [])
    assert ok["ok"] and ok["owed"] == 200 and ok["recovery_s"] == 30.0 and not ok["problems"]
    assert ok["details"]["healthz_during_fault"] == {"200": 2}
    bad = verdict_entry({"acct-a": _source(fault_p50=20.0), "acct-b": _source(lost=3, early=1)}, (10.0, 40.0), None,
                        [200, 503], "r", [])
    assert not bad["ok"] and (bad["lost"], bad["early_deletes"]) == (3, 1)
    text = " | ".join(bad["problems"])
    assert "lost or deleted early" in text and "not drained" in text and "unhealthy" in text
    assert "acct-a's latency affected by acct-b's fault" in text


def test_table_has_one_row_per_source_with_each_phase():
    lines = table_lines({"acct-a": _source(), "acct-b": _source(lost=2)})
    assert len(lines) == 3 and lines[1].split()[0] == "acct-a" and lines[2].split()[:4] == ["acct-b", "100", "98", "2"]
    assert "3.0/5.0" in lines[1] and "baseline" in lines[0]


def test_stack_sources_config_file_is_valid_and_names_keys_by_variable(tmp_path):
    env = stack_env.settings()
    sources = stack_sources(env, "RunX", 2)
    assert [s.bucket for s in sources] == [env["BLUEFLOW_BUCKET"], "runx-acct-b"]
    assert {s.api_key for s in sources} == {stack_env.DEV_API_KEY, stack_env.DEV_API_KEY_B}
    text = config_text(env, sources, poll_interval=2)
    assert stack_env.DEV_API_KEY not in text and stack_env.DEV_API_KEY_B not in text  # secrets by reference only
    path = tmp_path / "blueflow.yaml"
    path.write_text(text)
    loaded = build_sources(load(str(path)), {s.key_variable: s.api_key for s in sources})
    assert [(s.name, s.bucket, s.plan_id, s.export_id, s.cos_api_key) for s in loaded] == [
        (s.name, s.bucket, s.plan_id, s.export_id, s.api_key) for s in sources]


def test_demo_source_counts_add_up_the_workers_per_source_metrics():
    from devstack.demo_sources import source_counts

    page = ('blueflow_source_objects_completed_total{source="acct-a"} 3.0\n'
            'blueflow_source_objects_completed_total{source="acct-b"} 1.0\n'
            'blueflow_source_chf_delivered_total{source="acct-a"} 70.0\n')
    assert source_counts([page, page.replace("3.0", "4.0"), ""]) == {
        "acct-a": {"objects_completed": 7, "kflow_delivered": 140}, "acct-b": {"objects_completed": 2}}


def test_demo_source_summary_counts_its_own_objects_flows_and_exports():
    from types import SimpleNamespace

    from devstack.demo_sources import source_summary

    objects = [SimpleNamespace(key="k1", kind="good", flow_count=5, chf_count=9),
               SimpleNamespace(key="k2", kind="empty", flow_count=0, chf_count=0),
               SimpleNamespace(key="bad", kind="not_gzip", flow_count=3, chf_count=3)]
    accepted = [{"device_name": "ibm_x"}] * 9
    devices = {"ibm_x": {"plan_id": 5555, "cloud_export_id": "7777"}, "ibm_other": {"plan_id": 1}}
    line = source_summary(objects, {"kflow_delivered": 9, "objects_completed": 2}, accepted, devices, {"bad"})
    assert line == {"objects_written": 3, "flows_written": 5, "kflow_owed": 9, "kflow_delivered": 9,
                    "kflow_accepted_by_kentik": 9, "objects_completed": 2, "objects_deleted": 2, "left_in_bucket": 1,
                    "exports": ["plan 5555 export 7777"]}
