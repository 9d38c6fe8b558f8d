"""The Event Streams profile and the partition budget (streams/config/kafka_profile.py, streams/ops/kafka_check.py).

IBM's table (Event Streams FAQ, "How do I use Kafka APIs to create and delete topics?"): only cleanup.policy,
retention.ms (Standard: 1 h–30 days, whole hours), retention.bytes (100 KiB–1 GiB), segment.bytes (100 KiB–512
MiB), segment.index.bytes (100 KiB–100 MiB) and segment.ms (5 min–30 days) may be given at creation.
"""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from connectors.kafka_admin import DEFAULT_TOPIC_SPECS, deployment_specs, leader_topic_name
from streams.ops import cli
from streams.ops.kafka_check import plan_problems, topic_plan, total_partitions
from streams.config.kafka_profile import (EVENT_STREAMS_SETTINGS, is_event_streams_host, resolve_profile,
                                   setting_problem, topic_problems)

HOUR = 3600 * 1000


@pytest.mark.parametrize("partitions", [1, 6, 8, 32])
@pytest.mark.parametrize("profile", ["event-streams", "kafka"])
def test_every_planned_topic_is_one_event_streams_accepts(partitions, profile):
    for topic in topic_plan("blueflow.", partitions, 1, "blueflow", profile):
        assert set(topic.configs) <= set(EVENT_STREAMS_SETTINGS), topic
        assert topic_problems(topic.name, topic.configs) == [], topic


def test_ibm_table_is_the_documented_one():
    assert list(EVENT_STREAMS_SETTINGS) == ["cleanup.policy", "retention.ms", "retention.bytes", "segment.bytes",
                                            "segment.index.bytes", "segment.ms"]


@pytest.mark.parametrize("name, value, refused", [
    ("compression.type", "producer", "not allowed"),  # what topics ensure sent before
    ("min.compaction.lag.ms", "0", "not allowed"),
    ("delete.retention.ms", str(24 * HOUR), "not allowed"),
    ("retention.ms", str(HOUR - 1), "1 hour to 30 days"),
    ("retention.ms", str(30 * 24 * HOUR + HOUR), "1 hour to 30 days"),
    ("retention.ms", str(HOUR + 1), "whole hours"),
    ("retention.bytes", str(1024 ** 3 + 1), "1 GiB"),
    ("segment.bytes", str(512 * 1024 ** 2 + 1), "512 MiB"),
    ("segment.index.bytes", str(100 * 1024), None),
    ("segment.ms", str(5 * 60 * 1000 - 1), "5 minutes"),
    ("cleanup.policy", "delete,compact", None),
    ("cleanup.policy", "forever", "delete, compact"),
    ("retention.ms", str(30 * 24 * HOUR), None),
])
def test_setting_checks_follow_ibm_table(name, value, refused):
    problem = setting_problem(name, value)
    assert (problem is None) if refused is None else (refused in problem), problem


def test_default_deployment_fits_24_partitions_with_the_leader_topic():
    plan = topic_plan("blueflow.", 6, 1, "myapp")
    names = [t.name for t in plan]
    assert leader_topic_name("myapp") == "myapp-__assignor-__leader" and names[-1] == "myapp-__assignor-__leader"
    assert total_partitions(plan) == 23 <= 24
    assert {t.role for t in plan if t.partitions > 1} == {"work"}
    assert sum(1 for t in plan if t.role == "work") == 3 and len(plan) == len(DEFAULT_TOPIC_SPECS) + 1
    assert len(deployment_specs("x")) == 8
    assert plan_problems(plan, "event-streams", 24, 6) == []
    over = plan_problems(topic_plan("blueflow.", 7, 1), "kafka", 24, 7)
    assert len(over) == 1 and "26 partitions, over --partition_budget 24" in over[0]
    assert plan_problems(topic_plan("blueflow.", 100, 1), "kafka", 0, 100) == []  # 0: no budget


@pytest.mark.parametrize("bootstrap, profile", [
    ("broker-0-abc.kafka.svc01.us-south.eventstreams.cloud.ibm.com:9093", "event-streams"),
    ("127.0.0.1:9092,broker-1-x.kafka.svc02.eu-de.eventstreams.cloud.ibm.com:9093", "event-streams"),
    ("broker-0-x.private.us-east.eventstreams.cloud.ibm.com:9093", "event-streams"),
    ("127.0.0.1:9092", "kafka"), ("eventstreams.cloud.ibm.com.evil.example:9093", "kafka"), ("", "kafka"),
])
def test_auto_profile_from_the_bootstrap_host(bootstrap, profile):
    assert resolve_profile("auto", bootstrap) == profile
    assert is_event_streams_host(bootstrap) is (profile == "event-streams")
    assert resolve_profile("kafka", bootstrap) == "kafka"


def test_topics_ensure_refuses_a_plan_over_the_budget_with_one_line():
    result = CliRunner().invoke(cli.main, ["topics", "ensure", "--dry-run", "--partitions=12"], env={
        "BLUEFLOW_PARTITION_BUDGET": ""})
    assert result.exit_code == 2
    assert "41 partitions, over --partition_budget 24" in result.output and "--partitions" in result.output


def test_topics_ensure_dry_run_event_streams_lists_every_topic_and_the_total():
    result = CliRunner().invoke(cli.main, ["topics", "ensure", "--dry-run", "--json", "--app_id=flows1",
                                           "--kafka_bootstrap=broker-0-x.kafka.svc01.us-south.eventstreams.cloud.ibm"
                                           ".com:9093"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["profile"] == "event-streams" and doc["partition_budget"] == 24 and doc["total_partitions"] == 23
    assert doc["topics"][-1]["topic"] == "flows1-__assignor-__leader"
    assert all(set(t["configs"]) <= set(EVENT_STREAMS_SETTINGS) for t in doc["topics"])


def test_the_stack_adds_a_sasl_ssl_listener_beside_the_plain_one():
    from pathlib import Path

    from devstack.stack.kafka_secure import sasl_ssl_properties

    text = ("listeners=PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2\nadvertised.listeners=PLAINTEXT://127.0.0.1:1\n"
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\nnum.partitions=4\n")
    out = sasl_ssl_properties(text, 1, 3, Path("/s/server.pem")).splitlines()
    assert "listeners=PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2,SASL_SSL://127.0.0.1:3" in out
    assert "advertised.listeners=PLAINTEXT://127.0.0.1:1,SASL_SSL://127.0.0.1:3" in out
    assert "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL" in out
    assert "listener.name.sasl_ssl.ssl.keystore.type=PEM" in out and "num.partitions=4" in out
    assert any(line.startswith("listener.name.sasl_ssl.plain.sasl.jaas.config=") and 'user_token="' in line
               for line in out)


def test_the_java_policy_holds_the_same_table():
    """devstack/conf/EventStreamsTopicPolicy.java and EVENT_STREAMS_SETTINGS name the same settings and bounds."""
    from devstack.stack.kafka_secure import CONF_DIR

    java = (CONF_DIR / "EventStreamsTopicPolicy.java").read_text()
    for name in EVENT_STREAMS_SETTINGS:
        assert f'case "{name}":' in java
    for rule in ("1 hour to 30 days, in whole hours", "100 KiB to 1 GiB", "100 KiB to 512 MiB", "100 KiB to 100 MiB",
                 "5 minutes to 30 days"):
        assert rule in java and any(rule in a.rule for a in EVENT_STREAMS_SETTINGS.values())


def test_event_streams_over_plaintext_is_one_line_before_any_connection():
    result = CliRunner().invoke(cli.main, ["topics", "ensure", "--kafka_security_protocol=PLAINTEXT",
                                           "--kafka_bootstrap=broker-0-x.kafka.svc01.us-south.eventstreams.cloud.ibm"
                                           ".com:9093"])
    assert result.exit_code == 2 and "speaks only SASL_SSL" in result.output
