"""Kafka as the operator commands meet it: is it reachable (one clear line if not), and the topic plan.

`probe` asks the brokers for metadata once, bounded in time, with librdkafka's own logging off (otherwise an
unreachable broker prints a "Connection refused" line every few milliseconds) and turns a failure into
`KafkaUnreachable`: what (Kafka), where (the bootstrap servers and protocol), why (librdkafka's first cause)
and what to check. `topic_plan` is what `blueflow topics ensure` creates, per topic, for managed clusters
whose operators create topics by hand.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from connectors.kafka_admin import WORK, EnsureResult, TopicSpec, deployment_specs, topic_name
from streams.config.kafka_profile import EVENT_STREAMS, KAFKA, budget_problem, topic_problems

PROBE_TIMEOUT_S = 10.0
PROBE_SLICE_S = 0.25  # the metadata request is awaited in slices: Ctrl-C is handled between them
QUIET = {"log_level": 0}  # librdkafka logs nothing itself; failures come back as exceptions and error_cb


class KafkaUnreachable(Exception):
    """Kafka did not answer: the message is one line an operator can act on."""


_URL = re.compile(r"\b[a-z_]+://\S+", re.I)  # librdkafka names a broker "sasl_ssl://host:port/id: …"
BROKER_ADVICE = ("the broker list --kafka_bootstrap / BLUEFLOW_KAFKA_BOOTSTRAP (Event Streams: the service key's "
                 "kafka_brokers_sasl), that the brokers run and that this host can reach them")
PASSWORD_ADVICE = "BLUEFLOW_KAFKA_SASL_PASSWORD (the Event Streams API key) and --kafka_sasl_username (token)"
TLS_ADVICE = ("--kafka_ssl_ca / BLUEFLOW_KAFKA_SSL_CA (the CA that signed the brokers' certificates; empty: the "
              "system's), --kafka_security_protocol and that the port speaks TLS")


def advice(cause: str) -> str:
    """What to check for librdkafka's `cause`, read without the broker URLs in it: "sasl_ssl://…" in a refused
    connection once blamed the password for a wrong broker list."""
    words = _URL.sub("", cause).lower()
    if "authenticat" in words or "sasl" in words:
        return PASSWORD_ADVICE
    if "ssl" in words or "handshake" in words or "certificate" in words or "tls" in words:
        return TLS_ADVICE
    return BROKER_ADVICE


def unreachable_message(bootstrap: str, protocol: str, cause: str, timeout_s: float) -> str:
    """One line: what failed, where, why, and what to check."""
    return (f"Kafka at {bootstrap} ({protocol}) did not answer within {timeout_s:g}s: {cause}; "
            f"check {advice(cause)}")


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
    role: str = WORK


def topic_plan(prefix: str, partitions: int, replication: int, app_id: str = "blueflow",
               profile: str = KAFKA, specs: tuple[TopicSpec, ...] | None = None) -> list[PlannedTopic]:
    """Every topic the deployment needs, as `ensure_topics` creates it, Faust's leader topic included. Under
    the event-streams profile replication is the broker's default (3 on Event Streams)."""
    replication = -1 if profile == EVENT_STREAMS else (replication or -1)
    return [PlannedTopic(topic_name(prefix, s.name, s.role), s.partitions or partitions, replication,
                         dict(s.config), s.role) for s in (deployment_specs(app_id) if specs is None else specs)]


def total_partitions(plan: list[PlannedTopic]) -> int:
    return sum(t.partitions for t in plan)


def plan_problems(plan: list[PlannedTopic], profile: str, budget: int, partitions: int) -> list[str]:
    """Why the plan must not be created: a setting the profile does not allow, or over the partition budget."""
    problems = []
    if profile == EVENT_STREAMS:
        problems = [p for t in plan for p in topic_problems(t.name, t.configs)]
    over = budget_problem(total_partitions(plan), budget, partitions)
    return problems + ([over] if over else [])


def topic_state(name: str, result: EnsureResult | None) -> str:
    if result is None:
        return "would create if missing"
    if name in result.created:
        return "created"
    if name in result.mismatched:
        return "exists, " + result.mismatched[name]
    return "exists"


def plan_lines(plan: list[PlannedTopic], result: EnsureResult | None, profile: str = KAFKA,
               budget: int = 0) -> list[str]:
    """A table: topic, role, partitions, replication, configs (as `kafka-topics --config` takes them), state;
    then the total against the budget."""
    width = max(len(t.name) for t in plan)
    lines = [f"profile {profile}", f"{'topic':<{width}}  {'role':<8}  partitions  replication  state / configs"]
    for t in plan:
        replication = "default" if t.replication < 0 else str(t.replication)
        lines.append(f"{t.name:<{width}}  {t.role:<8}  {t.partitions:>10}  {replication:>11}  "
                     f"{topic_state(t.name, result)}")
        lines.append(f"{'':<{width}}  {'':<8}  {'':>10}  {'':>11}  " + " ".join(f"{k}={v}" for k, v in t.configs.items()))
    limit = f" of a budget of {budget}" if budget > 0 else " (no budget)"
    lines.append(f"total: {total_partitions(plan)} partitions in {len(plan)} topics{limit}")
    return lines


def plan_json(plan: list[PlannedTopic], result: EnsureResult | None, profile: str = KAFKA, budget: int = 0) -> dict:
    return {"profile": profile,
            "topics": [{"topic": t.name, "role": t.role, "partitions": t.partitions, "replication": t.replication,
                        "configs": t.configs, "state": topic_state(t.name, result)} for t in plan],
            "total_partitions": total_partitions(plan), "partition_budget": budget, "dry_run": result is None}


def settings_plan(settings) -> tuple[list[PlannedTopic], str]:
    """The deployment's topic plan and the Kafka profile in force, from its settings."""
    from streams.config.kafka_profile import resolve_profile

    profile = resolve_profile(settings.kafka_profile, settings.kafka_bootstrap)
    return topic_plan(settings.topic_prefix, settings.partitions, settings.replication, settings.app_id,
                      profile), profile


class PlanRefused(Exception):
    """The topic plan breaks the profile's rules or the partition budget: one line an operator can act on."""


def checked_plan(settings) -> tuple[list[PlannedTopic], str]:
    """`settings_plan`, or PlanRefused with its first problem (and how many more) before Kafka is asked."""
    plan, profile = settings_plan(settings)
    problems = plan_problems(plan, profile, settings.partition_budget, settings.partitions)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PlanRefused(f"{problems[0]}{more} [kafka profile {profile}]")
    return plan, profile
