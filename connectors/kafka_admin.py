"""Kafka client configuration and topic administration (confluent-kafka AdminClient).

`kafka_config()` builds the librdkafka settings for a plain local broker or IBM Event Streams
(SASL_SSL, mechanism PLAIN, username "token", password = API key). `ensure_topics()` pre-creates the
blueflow topics with their partitions, retention and compaction — managed clusters disallow auto-create —
and is idempotent: existing topics are left alone and partition-count mismatches are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

HOUR_MS = 60 * 60 * 1000
DAY_MS = 24 * HOUR_MS
DEFAULT_PARTITIONS = 6
WORK, CONTROL, INTERNAL = "work", "control", "internal"


@dataclass(frozen=True)
class TopicSpec:
    name: str  # without the prefix (an INTERNAL topic's name is whole: Faust names it)
    partitions: int | None  # None = the `partitions` argument of ensure_topics (a work topic)
    config: dict[str, str] = field(default_factory=dict)
    role: str = WORK  # WORK: spreads the stages over workers; CONTROL: read whole; INTERNAL: Faust's own


# Only settings IBM Event Streams lets a client give at creation, within the Standard plan's ranges
# (streams/config/kafka_profile.py holds IBM's table; docs/ibm-apis.md "Event Streams"): compression is the
# producer's (zstd), and min.compaction.lag.ms 0 and delete.retention.ms 1 day were Kafka's defaults anyway.
DEFAULT_TOPIC_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec("objects", None, {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}),
    TopicSpec("flows", None, {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}),
    TopicSpec("kflow", None, {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS)}),
    # one record per region (key = region), read whole by every enrich worker
    TopicSpec("vpc-metadata", 1, {"cleanup.policy": "compact", "segment.ms": str(DAY_MS)}, CONTROL),
    # sink state: chunks of in-flight objects already accepted (key = object key), read whole by every worker
    TopicSpec("progress", 1, {"cleanup.policy": "compact", "segment.ms": str(DAY_MS)}, CONTROL),
    # read whole by every worker (outcomes) and by `blueflow deadletter` / `replay`: one partition carries them
    TopicSpec("deadletter", 1, {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}, CONTROL),
    TopicSpec("ledger", 1, {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)}, CONTROL),
)


def leader_topic_name(app_id: str) -> str:
    """Faust's leader-election topic (faust/assignor/leader_assignor.py): one partition, no messages."""
    return f"{app_id}-__assignor-__leader"


def deployment_specs(app_id: str) -> tuple[TopicSpec, ...]:
    """Every topic a deployment needs, Faust's leader topic included (Writer-only credentials cannot let
    Faust create it)."""
    return DEFAULT_TOPIC_SPECS + (TopicSpec(leader_topic_name(app_id), 1, {"cleanup.policy": "delete"}, INTERNAL),)


@dataclass
class EnsureResult:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    mismatched: dict[str, str] = field(default_factory=dict)  # topic -> human description


def kafka_config(bootstrap: str, security_protocol: str | None = None, sasl_mechanism: str = "PLAIN",
                 sasl_username: str = "token", sasl_password: str | None = None, ssl_ca: str | None = None,
                 client_id: str = "blueflow") -> dict[str, Any]:
    """librdkafka settings. With a password and no protocol given, SASL_SSL (Event Streams) is assumed."""
    protocol = (security_protocol or ("SASL_SSL" if sasl_password else "PLAINTEXT")).upper()
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "client.id": client_id, "security.protocol": protocol}
    if protocol.startswith("SASL"):
        if not sasl_password:
            raise ValueError(f"security protocol {protocol} needs a SASL password (the Event Streams API key)")
        conf.update({"sasl.mechanisms": sasl_mechanism, "sasl.username": sasl_username,
                     "sasl.password": sasl_password})
    if protocol.endswith("SSL") and ssl_ca:
        conf["ssl.ca.location"] = ssl_ca
    return conf


def topic_name(prefix: str, name: str, role: str = WORK) -> str:
    return name if role == INTERNAL else f"{prefix}{name}"


def ensure_topics(admin_conf: dict[str, Any], prefix: str = "blueflow.", partitions: int | None = DEFAULT_PARTITIONS,
                  specs: tuple[TopicSpec, ...] = DEFAULT_TOPIC_SPECS, replication_factor: int | None = -1,
                  timeout: float = 30.0) -> EnsureResult:
    """Create the missing topics; report existing work topics whose partition count differs from the spec
    (a control topic is read whole, so any count works).

    replication_factor -1 = the broker's default (3 on Event Streams, 1 on the local stack).
    """
    partitions = partitions or DEFAULT_PARTITIONS
    replication_factor = replication_factor or -1
    admin = AdminClient(dict(admin_conf))
    wanted = {topic_name(prefix, s.name, s.role): s for s in specs}
    meta = admin.list_topics(timeout=timeout)
    result = EnsureResult()
    new: list[NewTopic] = []
    for name, spec in wanted.items():
        want_parts = spec.partitions or partitions
        if name in meta.topics and meta.topics[name].error is None:
            result.existing.append(name)
            have = len(meta.topics[name].partitions)
            if have != want_parts and spec.role == WORK:
                result.mismatched[name] = f"has {have} partitions, spec wants {want_parts}"
        else:
            new.append(NewTopic(name, num_partitions=want_parts, replication_factor=replication_factor,
                                config=dict(spec.config)))
    if new:
        futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
        for name, fut in futures.items():
            try:
                fut.result(timeout)
                result.created.append(name)
            except KafkaException as exc:
                err = exc.args[0]
                if getattr(err, "name", lambda: "")() == "TOPIC_ALREADY_EXISTS":  # lost a race: fine
                    result.existing.append(name)
                else:
                    raise RuntimeError(f"creating topic {name} failed: {err}") from None
    return result


def describe_topic_configs(admin_conf: dict[str, Any], names: list[str], timeout: float = 30.0) -> dict[str, dict[str, str]]:
    """topic -> {config name: value} as the broker reports them."""
    admin = AdminClient(dict(admin_conf))
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in names],
                                     request_timeout=timeout)
    out: dict[str, dict[str, str]] = {}
    for res, fut in futures.items():
        out[res.name] = {k: v.value for k, v in fut.result(timeout).items()}
    return out
