"""Integration: the local Kafka 4.x broker with confluent-kafka and aiokafka, and topic administration."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from connectors.kafka_admin import DEFAULT_TOPIC_SPECS, ensure_topics, kafka_config

pytestmark = pytest.mark.stack


def describe_topic_configs(admin_conf: dict, names: list[str], timeout: float = 30.0) -> dict[str, dict[str, str]]:
    """topic -> {config name: value} as the broker reports them."""
    admin = AdminClient(dict(admin_conf))
    futures = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, n) for n in names],
                                     request_timeout=timeout)
    out: dict[str, dict[str, str]] = {}
    for res, fut in futures.items():
        out[res.name] = {k: v.value for k, v in fut.result(timeout).items()}
    return out


def _new_topic(bootstrap: str, partitions: int = 3) -> str:
    name = f"test-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def test_confluent_kafka_round_trip(stack):
    bootstrap = stack["BLUEFLOW_KAFKA_BOOTSTRAP"]
    topic = _new_topic(bootstrap)
    prod = Producer({**kafka_config(bootstrap), "acks": "all", "enable.idempotence": True,
                     "compression.type": "zstd"})
    sent = {f"key-{i}".encode(): f"value-{i}".encode() * 10 for i in range(200)}
    errors = []
    for k, v in sent.items():
        prod.produce(topic, v, key=k, on_delivery=lambda err, _m: err and errors.append(err))
    assert prod.flush(30) == 0 and not errors

    cons = Consumer({**kafka_config(bootstrap), "group.id": f"g-{topic}", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
    cons.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    got: dict[bytes, bytes] = {}
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        msg = cons.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        got[msg.key()] = msg.value()
    cons.close()
    assert got == sent


def test_aiokafka_round_trip(stack):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    bootstrap = stack["BLUEFLOW_KAFKA_BOOTSTRAP"]
    topic = _new_topic(bootstrap)
    sent = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(100)]

    async def run() -> list[tuple[bytes, bytes]]:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for k, v in sent:
                await producer.send_and_wait(topic, v, key=k)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"g-{topic}",
                                    auto_offset_reset="earliest", enable_auto_commit=False)
        await consumer.start()
        got: list[tuple[bytes, bytes]] = []
        try:
            async with asyncio.timeout(30):
                while len(got) < len(sent):
                    batch = await consumer.getmany(timeout_ms=500)
                    for records in batch.values():
                        got += [(r.key, r.value) for r in records]
            await consumer.commit()
        finally:
            await consumer.stop()
        return got

    got = asyncio.run(run())
    assert sorted(got) == sorted(sent)


def test_ensure_topics_creates_configures_and_is_idempotent(stack):
    conf = kafka_config(stack["BLUEFLOW_KAFKA_BOOTSTRAP"])
    prefix = f"t{uuid.uuid4().hex[:8]}."
    first = ensure_topics(conf, prefix=prefix, partitions=4)
    names = [prefix + s.name for s in DEFAULT_TOPIC_SPECS]
    assert sorted(first.created) == sorted(names)
    assert {n.removeprefix(prefix) for n in names} == {"objects", "flows", "kflow", "vpc-metadata", "deadletter",
                                                      "ledger", "progress"}
    assert first.existing == [] and first.mismatched == {}

    configs = describe_topic_configs(conf, names)
    day = 24 * 3600 * 1000
    assert configs[prefix + "vpc-metadata"]["cleanup.policy"] == "compact"
    assert configs[prefix + "progress"]["cleanup.policy"] == "compact"
    for short, days in (("objects", 7), ("flows", 7), ("kflow", 7), ("deadletter", 30), ("ledger", 30)):
        assert configs[prefix + short]["cleanup.policy"] == "delete"
        assert configs[prefix + short]["retention.ms"] == str(days * day)
    meta = AdminClient(conf).list_topics(timeout=10)
    assert len(meta.topics[prefix + "flows"].partitions) == 4
    assert len(meta.topics[prefix + "vpc-metadata"].partitions) == 1
    assert {len(meta.topics[prefix + s].partitions) for s in ("progress", "deadletter", "ledger")} == {1}

    again = ensure_topics(conf, prefix=prefix, partitions=4)
    assert again.created == [] and sorted(again.existing) == sorted(names) and again.mismatched == {}

    other = ensure_topics(conf, prefix=prefix, partitions=6)
    assert other.created == []
    # only the work topics: a control topic is read whole, any partition count works
    assert set(other.mismatched) == {prefix + s for s in ("objects", "flows", "kflow")}
    assert "has 4 partitions" in other.mismatched[prefix + "flows"]


def test_kafka_config_event_streams_shape():
    conf = kafka_config("broker-0.example:9093", sasl_password="apikey", ssl_ca="/etc/ca.pem")
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanisms"] == "PLAIN" and conf["sasl.username"] == "token"
    assert conf["ssl.ca.location"] == "/etc/ca.pem"
    assert kafka_config("127.0.0.1:19092")["security.protocol"] == "PLAINTEXT"
    with pytest.raises(ValueError):
        kafka_config("x:9093", security_protocol="SASL_SSL")
