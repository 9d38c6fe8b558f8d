"""Kafka as the operator commands meet it: is it reachable (one clear line if not), and the topic plan.

`probe` asks the brokers for metadata once, bounded in time, with librdkafka's own logging off (otherwise an
unreachable broker prints a "Connection refused" line every few milliseconds) and turns a failure into
`KafkaUnreachable`: what (Kafka), where (the bootstrap servers and protocol), why (librdkafka's first cause)
and what to check. `topic_plan` is what `blueflow topics ensure` creates, per topic, for managed clusters
whose operators create topics by hand.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from connectors.kafka_admin import DEFAULT_TOPIC_SPECS, EnsureResult, TopicSpec, topic_name

PROBE_TIMEOUT_S = 10.0
PROBE_SLICE_S = 0.25  # the metadata request is awaited in slices: Ctrl-C is handled between them
QUIET = {"log_level": 0}  # librdkafka logs nothing itself; failures come back as exceptions and error_cb


class KafkaUnreachable(Exception):
    """Kafka did not answer: the message is one line an operator can act on."""


def unreachable_message(bootstrap: str, protocol: str, cause: str, timeout_s: float) -> str:
    """One line: what failed, where, why, and what to check."""
    check = "--kafka_bootstrap / BLUEFLOW_KAFKA_BOOTSTRAP, that the brokers run and that this host can reach them"
    lowered = cause.lower()
    if "authentic" in lowered or "sasl" in lowered:
        check = "BLUEFLOW_KAFKA_SASL_PASSWORD (the Event Streams API key) and --kafka_sasl_username"
    elif "ssl" in lowered or "handshake" in lowered:
        check = "--kafka_security_protocol (SASL_SSL for Event Streams) and the brokers' TLS port"
    return (f"Kafka at {bootstrap} ({protocol}) did not answer within {timeout_s:g}s: {cause}; "
            f"check {check}")


def first_cause(errors: list, fallback: str) -> str:
    """The most telling librdkafka error: a broker's own failure before the summary "all brokers down"."""
    texts = [e.str() for e in errors if e.name() != "_ALL_BROKERS_DOWN"] or [e.str() for e in errors]
    return texts[0] if texts else fallback


def probe(conf: dict, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise KafkaUnreachable unless the cluster of `conf` answers a metadata request within `timeout_s`."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    import time

    errors: list = []
    admin = AdminClient(dict(conf, error_cb=errors.append, **QUIET))
    deadline = time.monotonic() + timeout_s
    while True:  # librdkafka's wait holds Python's signal handling: short waits, so Ctrl-C acts at once
        try:
            admin.list_topics(timeout=max(0.01, min(PROBE_SLICE_S, deadline - time.monotonic())))
            return
        except KafkaException as exc:
            if time.monotonic() < deadline:
                continue
            admin.poll(0)  # deliver the error callbacks: they hold the cause ("Connection refused", auth failure)
            raise KafkaUnreachable(unreachable_message(conf.get("bootstrap.servers", "?"),
                                                       conf.get("security.protocol", "PLAINTEXT"),
                                                       first_cause(errors, exc.args[0].str()), timeout_s)) from None


@dataclass(frozen=True)
class PlannedTopic:
    name: str
    partitions: int
    replication: int  # -1 = the broker's default
    configs: dict[str, str] = field(default_factory=dict)


def topic_plan(prefix: str, partitions: int, replication: int,
               specs: tuple[TopicSpec, ...] = DEFAULT_TOPIC_SPECS) -> list[PlannedTopic]:
    """Every topic the pipeline needs, as `ensure_topics` creates it."""
    return [PlannedTopic(topic_name(prefix, s.name), s.partitions or partitions, replication or -1,
                         dict(s.config)) for s in specs]


def topic_state(name: str, result: EnsureResult | None) -> str:
    if result is None:
        return "would create if missing"
    if name in result.created:
        return "created"
    if name in result.mismatched:
        return "exists, " + result.mismatched[name]
    return "exists"


def plan_lines(plan: list[PlannedTopic], result: EnsureResult | None) -> list[str]:
    """A table: topic, partitions, replication, configs (as `kafka-topics --config` takes them), state."""
    width = max(len(t.name) for t in plan)
    lines = [f"{'topic':<{width}}  partitions  replication  state / configs"]
    for t in plan:
        replication = "default" if t.replication < 0 else str(t.replication)
        lines.append(f"{t.name:<{width}}  {t.partitions:>10}  {replication:>11}  {topic_state(t.name, result)}")
        lines.append(f"{'':<{width}}  {'':>10}  {'':>11}  " + " ".join(f"{k}={v}" for k, v in t.configs.items()))
    return lines


def plan_json(plan: list[PlannedTopic], result: EnsureResult | None) -> dict:
    return {"topics": [{"topic": t.name, "partitions": t.partitions, "replication": t.replication,
                        "configs": t.configs, "state": topic_state(t.name, result)} for t in plan],
            "dry_run": result is None}
