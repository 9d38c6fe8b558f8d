"""What the stages of one worker process share: settings, clients, topics, the outcome and progress stores,
VPC metadata, and the three I/O helpers every stage uses — send, quarantine, sync outcomes.

Rules that keep delivery safe under Faust (docs/architecture.md): agent concurrency 1; every exception is caught
inside the agent (Faust acks an event when its agent raises); every send is awaited until the broker acked
it; values are raw bytes decoded by the stages, so a poison message is dead-lettered, not skipped.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

from connectors.kafka_batch import aiokafka_producer, send_batched
from streams.observe import metrics
from streams.state.metadata import MetadataFollower
from streams.state.outcomes import QUARANTINED, OutcomeFollower, OutcomeStore, ProgressStore
from streams.formats.avro import Codec
from streams.formats.records import DeadLetter, Record, now_ms
from streams.stages.failures import Failures
from streams.stages.retry import Pauser, Transient
from streams.config.sources import DEFAULT, Source

log = logging.getLogger("blueflow")

OUTCOMES_WAIT_S = 120.0
SMALL_RECORD_BYTES = 4096  # send_all batches records up to this size (aiokafka's batches hold 16 KB)


class UnknownSource(LookupError):
    """A record names a source this deployment does not (or no longer) serve."""


class Sources:
    """The sources of one worker process (the flags' one, or the configuration file's), by name."""

    def __init__(self, settings):
        self.all = tuple(settings.sources)
        self._by_name = {s.name: s for s in self.all}

    def get(self, record_source: str) -> Source:
        """The source a record names ("": `default`); UnknownSource when none is configured so."""
        found = self._by_name.get(record_source or DEFAULT)
        if found is None:
            raise UnknownSource(f"source {record_source or DEFAULT!r} is not configured in this deployment")
        return found


@dataclass
class StageContext:
    """Per-process state of the pipeline (one per worker; the stages get it as their first argument)."""

    app: object
    topics: object
    rt: object  # streams.stages.runtime.Runtime: settings, clients, thread pool, health, scrub
    outcomes: OutcomeStore
    shared_progress: ProgressStore
    outcome_follower: OutcomeFollower
    metadata: MetadataFollower
    in_flight: dict = field(default_factory=dict)  # parse: key -> (etag, parsed at) of objects not yet finished
    sync_needed: dict = field(default_factory=lambda: {"parse": True, "sink": True})
    metadata_waited: bool = False
    sink_progress: dict = field(default_factory=dict)  # sink: key -> ObjectProgress of objects being delivered
    devices: object = None  # streams.stages.sink.devices.Devices
    ipfix: dict = field(default_factory=dict)  # collectors -> connectors.ipfix_export.Exporter, made on first use
    ipfix_sessions: dict = field(default_factory=dict)  # (collector, transport) -> its session, shared by exporters
    pause: object = None  # async pause(seconds): stop- and rebalance-aware (streams.stages.retry.Pauser)
    sources: object = None  # Sources: each record's source
    failures: object = None  # streams.stages.failures.Failures: each source's failures, the retry loop
    deletes: object = None  # streams.stages.finalize.finalize.DeleteBatcher; None: each message finalizes its own
    regions: object = None  # streams.stages.enrich.RegionWatch: key regions without loaded metadata, reported once

    def __post_init__(self):
        if self.pause is None:
            self.pause = Pauser(self.should_stop, self.rebalancing)
        if self.sources is None:
            self.sources = Sources(self.rt.settings)
        if self.failures is None:
            self.failures = Failures(self.sources, self.rt.health, self.rt.scrub)
        if self.regions is None:
            from streams.stages.enrich import RegionWatch

            self.regions = RegionWatch(lambda record: self.sources.get(record).regions)

    @classmethod
    def create(cls, app, topics, runtime) -> "StageContext":
        settings = runtime.settings
        outcomes = OutcomeStore(window_s=settings.dedup_window)
        shared = ProgressStore()
        follower = OutcomeFollower(settings, outcomes, shared)
        from streams.stages.finalize.finalize import DeleteBatcher
        from streams.stages.sink.devices import Devices

        deletes = DeleteBatcher(settings.delete_batch_seconds) if settings.delete_batch_seconds > 0 else None
        return cls(app, topics, runtime, outcomes, shared, follower, MetadataFollower(settings, Codec("vpc_metadata")),
                   devices=Devices(), deletes=deletes)

    @property
    def settings(self):
        return self.rt.settings

    @property
    def health(self):
        return self.rt.health

    def should_stop(self) -> bool:
        return bool(self.app.should_stop)

    def rebalancing(self) -> bool:
        """Faust sets it when the consumer's partitions are revoked (before it waits for unacked messages)."""
        return bool(getattr(self.app, "rebalancing", False))

    # ------------------------------------------------------------------ I/O helpers
    async def send(self, topic, key: str, record: Record | bytes | None) -> None:
        """Send and wait until the broker has the message (Faust's send only enqueues). None = tombstone."""
        value = record.encode() if isinstance(record, Record) else record
        future = await topic.send(key=key.encode(), value=value, force=True)
        await future

    async def send_all(self, topic, messages: list[tuple[str, Record | bytes | None]]) -> None:
        """Send several messages and wait until the broker has all of them (sent together, awaited together):
        small records (ledger, progress, tombstones) as one record batch per partition on the Kafka producer
        (connectors/kafka_batch.py) when there is one; big ones (flows messages) one by one, so the producer
        queues them without waiting for each batch to be drained."""
        encoded = [(key.encode(), record.encode() if isinstance(record, Record) else record)
                   for key, record in messages]
        small = len(encoded) > 1 and all(len(value or b"") <= SMALL_RECORD_BYTES for _, value in encoded)
        producer = aiokafka_producer(self.app) if small else None
        if producer is not None:
            await send_batched(producer, topic.get_topic_name(), encoded)
            return
        futures = []
        for key, value in encoded:
            futures.append(await topic.send(key=key, value=value, force=True))
        for future in futures:
            await future

    async def quarantine(self, item, stage: str, reason: str) -> None:
        """Dead-letter an object (any record with bucket/key/etag/size) with a reason; it stays in the bucket."""
        reason = self.rt.scrub(reason)
        letter = DeadLetter(bucket=getattr(item, "bucket", "") or self.settings.bucket_name,
                            key=getattr(item, "key", ""), etag=getattr(item, "etag", ""), stage=stage,
                            reason=reason, at=now_ms(), size=int(getattr(item, "size", 0) or 0),
                            source=getattr(item, "source", ""))
        await self.send(self.topics.deadletter, letter.skey, letter)
        if letter.key and letter.etag:
            self.outcomes.record(letter.skey, letter.etag, QUARANTINED)
        self.in_flight.pop(letter.skey, None)
        metrics.DEADLETTERED.labels(stage=stage).inc()
        log.error("quarantined object %r at stage %s: %s (the object stays in the bucket)", letter.key, stage,
                  reason, extra={"key": letter.key})  # the object, not the message (a group) it came in

    def source_for(self, record):
        """The configured source a record names; None (logged, counted) for a source no longer configured:
        its objects stay in their bucket, nothing is quarantined or deleted."""
        try:
            return self.sources.get(record.source)
        except UnknownSource as exc:
            metrics.OBJECTS_SKIPPED.labels(reason="unknown_source").inc()
            log.warning("%s; %r is left alone", exc, record.key)
            return None

    @staticmethod
    def unknown(event_key) -> "_Unknown":
        """A stand-in for the object of a message that could not be decoded: only its Kafka key is known."""
        if isinstance(event_key, bytes):
            return _Unknown(event_key.decode(errors="replace"))
        return _Unknown("" if event_key is None else str(event_key))

    async def sync_outcomes(self, stage: str) -> None:
        """After a (re)assignment, read the ledger and dead letters up to now before the first decision:
        objects another worker finished moments ago must not be sent again."""
        if not self.sync_needed[stage]:
            return
        synced = await self.rt.run_sync(self.outcome_follower.follower.sync, OUTCOMES_WAIT_S)
        if not synced:
            log.warning("%s: outcomes of other workers could not be read in %ss; continuing (duplicates possible)",
                        stage, OUTCOMES_WAIT_S)
        self.sync_needed[stage] = False

    async def source_retry(self, source, operation: str, what: str, step: str, fn, *args):
        """Blocking `fn(*args)` of one source's `operation` (COS get/delete/list, kentik), retried by the one
        policy (streams/stages/retry.py `Failures.source_retry`); may raise SourceUnavailable."""
        return await self.failures.source_retry(self.rt.run_sync, self.pause, source, operation, what, step, fn,
                                                *args)


@dataclass
class _Unknown:
    """A message whose object is unknown (undecodable): only its Kafka key is."""

    key: str
    bucket: str = ""
    etag: str = ""
    size: int = 0


__all__ = ["StageContext", "Transient"]
