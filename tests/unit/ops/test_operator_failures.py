"""What an operator sees when Kafka is not there, what `topics ensure` prints, how Kafka reconnect chatter is
throttled, the health/build/process metrics, and the product CLI apart from the dev tools."""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from connectors.kafka_admin import EnsureResult
from streams.ops import cli
from streams.observe import metrics
from streams.ops.kafka_check import KafkaUnreachable, plan_json, plan_lines, probe, topic_plan, unreachable_message
from streams.observe.logthrottle import ThrottleFilter
from streams.observe.health import Cause
from streams.stages.runtime import Health


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed


# ------------------------------------------------------------------------------------ Kafka unreachable
def test_probe_of_an_unreachable_broker_is_one_clear_error_within_its_time_bound(capfd):
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(KafkaUnreachable) as err:
        probe({"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "PLAINTEXT"}, timeout_s=1.5)
    assert time.monotonic() - started < 5
    text = str(err.value)
    assert f"127.0.0.1:{port}" in text and "Connection refused" in text and "BLUEFLOW_KAFKA_BOOTSTRAP" in text
    assert "\n" not in text
    out, errout = capfd.readouterr()
    assert out == "" and errout == ""  # librdkafka printed nothing of its own


@pytest.mark.parametrize("cause, names, not_named", [
    # librdkafka's own words for each failure (seen on the local stack's SASL_SSL listener)
    ("sasl_ssl://b:9093/bootstrap: SASL authentication error: Authentication failed: Invalid username or password "
     "(after 5ms in state AUTH_REQ)", "BLUEFLOW_KAFKA_SASL_PASSWORD", "BLUEFLOW_KAFKA_SSL_CA"),
    # a refused connection names the broker list, whatever "sasl" the broker URL holds
    ("sasl_ssl://b:9093/bootstrap: Connect to ipv4#127.0.0.1:9093 failed: Connection refused (after 0ms in state "
     "CONNECT)", "BLUEFLOW_KAFKA_BOOTSTRAP", "BLUEFLOW_KAFKA_SASL_PASSWORD"),
    ("sasl_ssl://b:9093/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: "
     "broker certificate could not be verified", "BLUEFLOW_KAFKA_SSL_CA", "BLUEFLOW_KAFKA_SASL_PASSWORD"),
])
def test_the_advice_follows_the_cause_not_the_broker_url(cause, names, not_named):
    text = unreachable_message("b:9093", "SASL_SSL", cause, 10)
    assert names in text and not_named not in text and "b:9093 (SASL_SSL)" in text and "\n" not in text


def test_worker_with_kafka_unreachable_exits_3_with_one_line():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLUEFLOW_", "KENTIK_", "IBM_"))}
    env.update({"BLUEFLOW_COS_HMAC_SECRET_KEY": "s", "KENTIK_API_TOKEN": "t"})
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "streams.ops.cli", "worker", "--bucket_name=b", "--service_endpoint=c",
                           "--cos_hmac_access_key=a", "--api_email=e@x", "--plan_id=1", "--regions=none",
                           f"--kafka_bootstrap=127.0.0.1:{closed_port()}"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 3, done.stderr
    assert time.monotonic() - started < 30
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blueflow worker: error: Kafka at 127.0.0.1:"), done.stderr
    assert "Connection refused" in lines[0] and done.stdout == ""


def test_sasl_without_a_password_is_a_usage_error_not_a_traceback():
    result = CliRunner().invoke(cli.main, ["topics", "ensure", "--kafka_security_protocol=SASL_SSL"], env={
        "BLUEFLOW_KAFKA_SASL_PASSWORD": ""})
    assert result.exit_code == 2 and "BLUEFLOW_KAFKA_SASL_PASSWORD" in result.output


# ---------------------------------------------------------------------------------------- topics ensure
def test_topic_plan_is_what_ensure_creates():
    plan = {t.name: t for t in topic_plan("p.", 6, 3, "app")}
    assert set(plan) == {f"p.{n}" for n in ("objects", "flows", "kflow", "vpc-metadata", "progress", "deadletter",
                                             "ledger")} | {"app-__assignor-__leader"}
    assert plan["p.objects"].partitions == 6 and plan["p.vpc-metadata"].partitions == 1
    assert {t.replication for t in plan.values()} == {3}
    assert {t.replication for t in topic_plan("p.", 6, 3, "app", "event-streams")} == {-1}  # Event Streams: 3
    assert plan["p.progress"].configs["cleanup.policy"] == "compact"


def test_topics_ensure_prints_partitions_replication_configs_and_state():
    plan = topic_plan("p.", 4, 1)
    result = EnsureResult(created=["p.flows"], existing=["p.objects"], mismatched={"p.objects": "has 2 partitions, "
                                                                                               "spec wants 4"})
    text = "\n".join(plan_lines(plan, result))
    assert "p.flows" in text and "created" in text and "exists, has 2 partitions, spec wants 4" in text
    assert "retention.ms=604800000" in text and "cleanup.policy=compact" in text
    doc = plan_json(plan, result)
    assert doc["dry_run"] is False and {t["topic"]: t["state"] for t in doc["topics"]}["p.flows"] == "created"


def test_topics_ensure_dry_run_takes_the_worker_flags_and_does_not_contact_kafka():
    started = time.monotonic()
    result = CliRunner().invoke(cli.main, ["topics", "ensure", "--dry-run", "--json", "--topic_prefix=x.",
                                           "--partitions=5", "--replication=3",
                                           f"--kafka_bootstrap=127.0.0.1:{closed_port()}"])
    assert result.exit_code == 0, result.output
    assert time.monotonic() - started < 3
    import json

    doc = json.loads(result.output)
    assert doc["dry_run"] is True and doc["profile"] == "kafka"
    assert {(t["topic"], t["partitions"], t["replication"]) for t in doc["topics"]} >= {("x.objects", 5, 3),
                                                                                       ("x.vpc-metadata", 1, 3)}
    assert doc["total_partitions"] == 3 * 5 + 4 + 1 == sum(t["partitions"] for t in doc["topics"])


# ------------------------------------------------------------------------------------ throttled logging
def make_record(name: str, msg: str, *args) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)


def test_kafka_reconnect_chatter_is_one_line_per_window_with_the_count():
    now = [0.0]
    throttle = ThrottleFilter(window_s=30, clock=lambda: now[0])
    passed = []
    for i in range(1000):
        now[0] = i * 0.05  # 20 attempts a second for 50 s
        record = make_record("aiokafka.conn", "Unable connect to node with id %s: %s", 1, "refused")
        if throttle.filter(record):
            passed.append(record.getMessage())
    assert len(passed) == 2
    assert passed[1].endswith("(repeated 599 times in the last 30s)")


def test_blueflow_own_lines_and_distinct_librdkafka_facilities_are_not_merged():
    throttle = ThrottleFilter(window_s=30, clock=lambda: 0.0)
    assert all(throttle.filter(make_record("blueflow", "object %s dead-lettered", f"k{i}")) for i in range(5))
    assert throttle.filter(make_record("blueflow.kafka", "%s [%s] %s", "FAIL", "c1", "refused"))
    assert throttle.filter(make_record("blueflow.kafka", "%s [%s] %s", "ERROR", "c1", "down"))
    assert not throttle.filter(make_record("blueflow.kafka", "%s [%s] %s", "FAIL", "c2", "refused"))


# --------------------------------------------------------------------------------------------- metrics
def test_health_gauges_follow_health_problems_without_a_healthz_call():
    """Rejected Kentik keys: not ready, Kentik down, but alive (a restart does not fix keys); a dead task:
    not alive."""
    health = Health()
    up = metrics.DEPENDENCY_UP.labels

    assert metrics.update_health(health, 300) == [] and metrics.HEALTHY._value.get() == 1
    assert metrics.READY._value.get() == 1 and up(dependency="kentik")._value.get() == 1
    health.fatal = Cause("kentik", "credentials", "Kentik rejected the credentials (HTTP 401)")
    assert metrics.update_health(health, 300) == [health.fatal.message] and metrics.READY._value.get() == 0
    assert metrics.HEALTHY._value.get() == 1
    assert up(dependency="kentik")._value.get() == 0 and up(dependency="cos")._value.get() == 1
    health.died("task poll", "ValueError('x')")
    metrics.update_health(health, 300)
    assert metrics.HEALTHY._value.get() == 0


def test_build_info_and_process_metrics_are_exported():
    text = metrics.render().decode()
    assert f'blueflow_build_info{{python="{sys.version.split()[0]}",version="{metrics.VERSION}"}} 1.0' in text
    if sys.platform.startswith("linux"):
        for name in ("process_cpu_seconds_total", "process_resident_memory_bytes", "process_open_fds",
                     "process_start_time_seconds"):
            assert f"\n{name} " in text, name


# ------------------------------------------------------------------------------ product and dev tools apart
def test_product_cli_lists_only_product_commands_and_knows_no_dev_tool():
    out = CliRunner().invoke(cli.main, ["--help"]).output
    commands = out.split("Commands:")[1].split()
    assert {"worker", "topics", "replay", "deadletter", "status"} <= set(commands)
    assert not {"demo", "faults", "generate", "devstack"} & set(commands)
    assert "blueflow-dev" in out
    with pytest.raises(SystemExit) as exit_:
        cli.main.main(["faults", "--help"])
    assert exit_.value.code == 2  # no such command in the product


def test_generate_reads_the_stack_env_of_blueflow_devstack_dir(tmp_path, monkeypatch):
    from devstack.synth.writer import load_devstack_env

    for key in list(os.environ):
        if key.startswith(("BLUEFLOW_", "IBM_")):
            monkeypatch.delenv(key)
    (tmp_path / "env").write_text("BLUEFLOW_BUCKET=elsewhere\nBLUEFLOW_COS_ENDPOINT='http://127.0.0.1:24080'\n")
    monkeypatch.setenv("BLUEFLOW_DEVSTACK_DIR", str(tmp_path))
    env = load_devstack_env()
    assert env["BLUEFLOW_BUCKET"] == "elsewhere" and env["BLUEFLOW_COS_ENDPOINT"] == "http://127.0.0.1:24080"
