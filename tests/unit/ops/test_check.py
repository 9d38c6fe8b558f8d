"""`blueflow check`'s decisions without servers: result lines, failures as values, plan and topic findings,
the settings check, and a command that never turns a failure into a traceback."""
from __future__ import annotations

import json
import socket

import pytest
from click.testing import CliRunner

from streams.ops import check, cli
from streams.ops.kafka_check import topic_plan
from streams.config.settings import Settings


def test_a_result_line_says_state_check_detail_and_the_fix_only_when_failed():
    assert check.Result("cos list", "ok", "listed").line() == "ok      cos list: listed"
    assert check.Result("kafka", "failed", "refused", "check X").line() == "FAILED  kafka: refused — fix: check X"
    assert check.Result("plan", "skipped", "no plan", "unused").line() == "skipped plan: no plan"


def test_run_one_turns_exceptions_into_failed_results_and_skips_into_skipped():
    def boom() -> str:
        raise RuntimeError("no\nroute   to host")

    def skip() -> str:
        raise check.Skipped("cannot check read-only")

    assert check.run_one("a", lambda: "fine", str) == check.Result("a", "ok", "fine")
    assert check.run_one("b", boom, lambda exc: "fix it") == check.Result("b", "failed", "no route to host", "fix it")
    assert check.run_one("c", skip, str).state == "skipped"


def test_plan_ids_of_a_plans_answer():
    assert check.plan_ids({"plans": [{"id": 11467, "name": "p"}, {"id": "20001"}, {"name": "no id"}]}) == {11467, 20001}
    with pytest.raises(ValueError):
        check.plan_ids({"plan": []})


def test_topic_findings_name_missing_topics_and_partition_mismatches():
    plan = topic_plan("p.", 8, 3)
    cluster = {t.name: t.partitions for t in plan}
    assert check.topic_findings(plan, cluster) == ([], [])
    del cluster["p.ledger"]
    cluster["p.flows"] = 4
    missing, mismatched = check.topic_findings(plan, cluster)
    assert missing == ["p.ledger"] and mismatched == ["p.flows has 4 partitions, the plan wants 8"]


def test_settings_problems_are_failed_results_each_with_a_fix():
    results = check.settings_results(Settings.resolve(environ={}))
    assert [r.state for r in results] == ["failed"] * len(results) and len(results) >= 3
    assert any("--bucket_name" in r.detail for r in results) and all(r.fix for r in results)


def test_summary_line_counts_each_state():
    results = [check.Result("a", "ok", ""), check.Result("b", "skipped", ""), check.Result("c", "failed", "")]
    assert check.summary_line(results) == "1 of 3 checks passed, 1 skipped, 1 failed"
    assert check.summary_line(results[:1]) == "1 of 1 checks passed"


def test_a_tcp_collector_is_connected_and_closed_without_a_byte(tmp_path):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert "accepted" in check._collector("127.0.0.1", port, "tcp")
        conn, _ = server.accept()
        conn.settimeout(2)
        assert conn.recv(10) == b""  # closed, nothing sent
        conn.close()
    assert "nothing is sent" in check._collector("127.0.0.1", port, "udp")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_check_command_reports_every_failure_as_a_line_and_exits_1(monkeypatch):
    for name in ("BLUEFLOW_CONFIG", "BLUEFLOW_BUCKET", "KENTIK_API_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    from streams.ops import kafka_check

    monkeypatch.setattr(kafka_check.probe, "__defaults__", (1.0,))
    port = closed_port()
    args = ["check", "--json", "--bucket_name=b", f"--service_endpoint=http://127.0.0.1:{port}",
            "--cos_hmac_access_key=a", f"--kafka_bootstrap=127.0.0.1:{port}", "--sink=ipfix",
            "--ipfix_collectors=127.0.0.1:4739", "--regions=none"]
    monkeypatch.setenv("BLUEFLOW_COS_HMAC_SECRET_KEY", "s3cr3t-value")
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 1, result.output
    doc = json.loads(result.output)
    states = {c["check"]: c["state"] for c in doc["checks"]}
    assert doc["ok"] is False
    assert states["settings"] == "ok"
    assert states["cos list (source default, bucket b)"] == "failed"
    assert states["ipfix collector 127.0.0.1:4739 (source default, udp)"] == "ok"
    assert states[f"kafka 127.0.0.1:{port} (PLAINTEXT)"] == "failed"
    assert "s3cr3t-value" not in result.output


def test_kentik_is_not_asked_without_a_user_and_token():
    from streams.config.sources import implicit_source

    settings = Settings.resolve(environ={"KENTIK_API_EMAIL": "me@example.com",
                                         "BLUEFLOW_KENTIK_API_ROOT": "http://127.0.0.1:9/api"})
    (result,) = check.kentik_results(implicit_source(settings), settings)
    assert result.state == "skipped" and "API token" in result.detail
