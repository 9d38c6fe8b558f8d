"""Read whole topics into process memory: every partition, from the beginning, then follow new messages.

Every worker needs some topics in full, whatever partitions its agents own: the VPC metadata (to label
flows) and the outcomes of objects (ledger and dead letters, to not send an object twice). A follower is a
daemon thread with its own confluent-kafka consumer (no consumer group); `caught_up` is set once it has read
up to the end offsets it saw at start.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Callable

log = logging.getLogger("blueflow.follower")


def kafka_client_config(settings) -> dict:
    """confluent-kafka settings for this deployment (Event Streams SASL_SSL when configured)."""
    from connectors.kafka_admin import kafka_config

    conf = kafka_config(bootstrap=settings.kafka_bootstrap, security_protocol=settings.kafka_security_protocol,
                        sasl_username=settings.kafka_sasl_username, sasl_password=settings.kafka_sasl_password,
                        ssl_ca=settings.kafka_ssl_ca or None)
    conf["logger"] = logging.getLogger("blueflow.kafka")  # librdkafka's lines via logging (throttled), not stderr
    return conf


class TopicFollower:
    """A thread calling `on_message(topic, key, value)` for every message of `topics`, forever."""

    def __init__(self, settings, topics: list[str], on_message: Callable[[str, bytes, bytes], None], name: str):
        self.settings = settings
        self.topics = topics
        self.on_message = on_message
        self.name = name
        self.caught_up = threading.Event()
        self._stop = threading.Event()
        self._positions: dict[tuple[str, int], int] = {}
        self._thread = threading.Thread(target=self._run, name=f"blueflow-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def sync(self, timeout_s: float) -> bool:
        """Block until everything written to the topics before this call has been read (bounded wait).

        Used after a rebalance: another worker may have finished objects moments ago."""
        from confluent_kafka import TopicPartition

        from confluent_kafka import Consumer

        deadline = time.monotonic() + timeout_s
        if not self.caught_up.wait(timeout_s):
            return False
        # a short-lived consumer of our own: the follower's consumer belongs to its thread
        conf = kafka_client_config(self.settings)
        conf.update({"group.id": f"blueflow-{self.name}-sync-{uuid.uuid4()}", "enable.auto.commit": False})
        probe = Consumer(conf)
        try:
            targets = {tp: probe.get_watermark_offsets(TopicPartition(*tp), timeout=5, cached=False)[1]
                       for tp in list(self._positions)}
        except Exception as exc:
            log.warning("%s: could not read end offsets for a sync: %s", self.name, exc)
            return False
        finally:
            probe.close()
        while time.monotonic() < deadline:
            if all(self._positions.get(tp, 0) >= end for tp, end in targets.items()):
                return True
            time.sleep(0.05)
        return False

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        while not self._stop.is_set():
            consumer = None
            try:
                conf = kafka_client_config(self.settings)
                conf.update({"group.id": f"blueflow-{self.name}-{uuid.uuid4()}", "enable.auto.commit": False,
                             "auto.offset.reset": "earliest"})
                consumer = Consumer(conf)
                assignment, ends = [], {}
                for topic in self.topics:
                    meta = consumer.list_topics(topic, timeout=10)
                    partitions = sorted(meta.topics[topic].partitions) if topic in meta.topics else []
                    if not partitions:
                        raise RuntimeError(f"topic {topic} does not exist (run `blueflow topics ensure`)")
                    for p in partitions:
                        tp = TopicPartition(topic, p, OFFSET_BEGINNING)
                        assignment.append(tp)
                        ends[(topic, p)] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                consumer.assign(assignment)
                positions = {tp: 0 for tp in ends}
                self._positions = positions

                def check_caught_up() -> None:
                    if not self.caught_up.is_set() and all(positions[tp] >= ends[tp] for tp in ends):
                        self.caught_up.set()

                check_caught_up()
                while not self._stop.is_set():
                    msg = consumer.poll(0.1)
                    if msg is None:
                        check_caught_up()
                        continue
                    if msg.error():
                        log.warning("%s: consumer error: %s", self.name, msg.error())
                        continue
                    positions[(msg.topic(), msg.partition())] = msg.offset() + 1
                    try:
                        self.on_message(msg.topic(), msg.key(), msg.value())
                    except Exception as exc:  # one bad record must not stop the follower
                        log.error("%s: skipped an unreadable record at %s[%d]@%d: %s", self.name, msg.topic(),
                                  msg.partition(), msg.offset(), exc)
                    check_caught_up()
            except Exception as exc:
                log.warning("%s: follower restarting after error: %s", self.name, exc)
                time.sleep(2)
            finally:
                if consumer is not None:
                    consumer.close()
