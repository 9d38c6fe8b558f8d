"""VPC metadata: the leader fetches it, every worker follows the compacted topic and keeps an IP index.

The follower reads every partition of `vpc-metadata` from the beginning with its own consumer (no group),
so each worker holds the whole estate, whatever partitions its agents own. A snapshot that cannot be
decoded is logged and skipped: enrichment then uses the spec's fallbacks, it never waits for metadata.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid

import orjson

from streams import metrics

log = logging.getLogger("blueflow.metadata")


def kafka_client_config(settings) -> dict:
    """confluent-kafka settings for this deployment (Event Streams SASL_SSL when configured)."""
    from connectors.kafka_admin import kafka_config

    return kafka_config(bootstrap=settings.kafka_bootstrap, security_protocol=settings.kafka_security_protocol,
                        sasl_username=settings.kafka_sasl_username, sasl_password=settings.kafka_sasl_password)


class MetadataFollower:
    """A daemon thread that keeps `self.index` equal to the newest snapshot of every region."""

    def __init__(self, settings, codec):
        self.settings = settings
        self.codec = codec
        self.snapshots: dict[str, dict] = {}
        self.index = None
        self.caught_up = threading.Event()
        self.first_snapshot = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="blueflow-metadata", daemon=True)

    def start(self) -> None:
        self._rebuild()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the topic was read to its end and (if any region is configured) a snapshot exists."""
        deadline = time.monotonic() + timeout_s
        if not self.caught_up.wait(max(0.0, deadline - time.monotonic())):
            return False
        return self.first_snapshot.wait(max(0.0, deadline - time.monotonic()))

    def _rebuild(self) -> None:
        from streams.ipindex import IpIndex

        self.index = IpIndex.from_snapshots(list(self.snapshots.values()))
        metrics.METADATA_ENDPOINTS.set(sum(len(s.get("endpoints", ())) for s in self.snapshots.values()))

    def apply(self, raw: bytes) -> None:
        record = self.codec.decode(raw)
        snapshot = orjson.loads(record["json"])
        self.snapshots[record["region"]] = snapshot
        self._rebuild()
        self.first_snapshot.set()
        log.info("metadata: index now holds %d regions (%s updated, %d endpoints)", len(self.snapshots),
                 record["region"], len(snapshot.get("endpoints", ())))

    def _run(self) -> None:
        from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

        topic = self.settings.topic("vpc-metadata")
        while not self._stop.is_set():
            consumer = None
            try:
                conf = kafka_client_config(self.settings)
                conf.update({"group.id": f"blueflow-metadata-{uuid.uuid4()}", "enable.auto.commit": False,
                             "auto.offset.reset": "earliest"})
                consumer = Consumer(conf)
                meta = consumer.list_topics(topic, timeout=10)
                partitions = sorted(meta.topics[topic].partitions) if topic in meta.topics else []
                if not partitions:
                    raise RuntimeError(f"topic {topic} has no partitions (run `blueflow topics ensure`)")
                consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
                ends = {}
                for p in partitions:
                    low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                    ends[p] = high
                positions = {p: 0 for p in partitions}
                if all(h == 0 for h in ends.values()):
                    self.caught_up.set()
                while not self._stop.is_set():
                    msg = consumer.poll(0.5)
                    if msg is None:
                        if not self.caught_up.is_set() and all(positions[p] >= ends[p] for p in partitions):
                            self.caught_up.set()
                        continue
                    if msg.error():
                        log.warning("metadata: consumer error: %s", msg.error())
                        continue
                    positions[msg.partition()] = msg.offset() + 1
                    try:
                        self.apply(msg.value())
                    except Exception as exc:  # a bad snapshot must not stop enrichment
                        log.error("metadata: skipped an undecodable snapshot at %s[%d]@%d: %s", topic,
                                  msg.partition(), msg.offset(), exc)
                    if not self.caught_up.is_set() and all(positions[p] >= ends[p] for p in partitions):
                        self.caught_up.set()
            except Exception as exc:
                log.warning("metadata: follower restarting after error: %s", exc)
                time.sleep(2)
            finally:
                if consumer is not None:
                    consumer.close()


def fetch_snapshots(settings) -> tuple[list[dict], list[str]]:
    """Fetch every configured region (blocking). Returns (snapshots, problems in words)."""
    from connectors.vpc import fetch_region_metadata

    snapshots, problems = [], []
    for region in settings.region_list:
        try:
            snapshots.append(fetch_region_metadata(region, settings.ibm_vpc_api_key, iam_url=settings.iam_url,
                                                   service_url=settings.vpc_url_template.format(region=region)))
            metrics.METADATA_REFRESHES.labels(result="ok").inc()
        except Exception as exc:
            metrics.METADATA_REFRESHES.labels(result="error").inc()
            problems.append(f"VPC metadata of {region} could not be fetched: {exc}")
    return snapshots, problems
