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

DAY_MS = 24 * 60 * 60 * 1000
DEFAULT_PARTITIONS = 8


@dataclass(frozen=True)
class TopicSpec:
    name: str  # without the prefix
    partitions: int | None  # None = the `partitions` argument of ensure_topics (default 8)
    config: dict[str, str] = field(default_factory=dict)


DEFAULT_TOPIC_SPECS: tuple[TopicSpec, ...] = (
    TopicSpec("objects", None, {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS),
                                "compression.type": "producer"}),
    TopicSpec("flows", None, {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS),
                              "compression.type": "producer"}),
    TopicSpec("kflow", None, {"cleanup.policy": "delete", "retention.ms": str(7 * DAY_MS),
                              "compression.type": "producer"}),
    # one record per region (key = region), read whole by every enrich worker
    TopicSpec("vpc-metadata", 1, {"cleanup.policy": "compact", "min.compaction.lag.ms": "0",
                                  "segment.ms": str(DAY_MS), "compression.type": "producer"}),
    # sink state: chunks of in-flight objects already accepted (key = object key), read whole by every worker
    TopicSpec("progress", None, {"cleanup.policy": "compact", "min.compaction.lag.ms": "0",
                                 "segment.ms": str(DAY_MS), "delete.retention.ms": str(DAY_MS),
                                 "compression.type": "producer"}),
    TopicSpec("deadletter", None, {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS),
                                   "compression.type": "producer"}),
    TopicSpec("ledger", None, {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS),
                               "compression.type": "producer"}),
)


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


def topic_name(prefix: str, name: str) -> str:
    return f"{prefix}{name}"


def ensure_topics(admin_conf: dict[str, Any], prefix: str = "blueflow.", partitions: int | None = DEFAULT_PARTITIONS,
                  specs: tuple[TopicSpec, ...] = DEFAULT_TOPIC_SPECS, replication_factor: int | None = -1,
                  timeout: float = 30.0) -> EnsureResult:
    """Create the missing topics; report existing ones whose partition count differs from the spec.

    replication_factor -1 = the broker's default (3 on Event Streams, 1 on the local stack).
    """
    partitions = partitions or DEFAULT_PARTITIONS
    replication_factor = replication_factor or -1
    admin = AdminClient(dict(admin_conf))
    wanted = {topic_name(prefix, s.name): s for s in specs}
    meta = admin.list_topics(timeout=timeout)
    result = EnsureResult()
    new: list[NewTopic] = []
    for name, spec in wanted.items():
        want_parts = spec.partitions or partitions
        if name in meta.topics and meta.topics[name].error is None:
            result.existing.append(name)
            have = len(meta.topics[name].partitions)
            if have != want_parts:
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
