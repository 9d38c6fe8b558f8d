"""`blueflow replay`: send a time range of a stage's input topic through that stage again.

enrich reads `flows`, sink reads `kflow`. Replay finds, per partition, the first offset at or after
`--from` and the first at or after `--to` (Kafka's offsets_for_times; `--to` absent = the end offsets at
the start of the replay), reads exactly that range with a throwaway consumer (assign(), no group commits:
the live consumer group is untouched), marks every record `replay: true`, and produces it again to the
same topic and partition, waiting for the broker's acknowledgement. Live workers then process the
re-sent records on purpose: enrich re-translates with the current VPC metadata and keeps the mark, sink
delivers without dedup, delete or ledger (streams/stages/sink/sink.py).

Records that already carry the mark (an earlier replay inside the window) are skipped unless
`include_replays` is set, so replaying the same window twice sends each original record twice, not four
times. Pure helpers (time parsing, range arithmetic, re-marking) are separate from the Kafka I/O.
"""
from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterator

from streams.formats.avro import AvroDecodeError, Codec
from streams.formats.stage_topics import REPLAYABLE
from streams.formats.stage_topics import STAGES as STAGE_TABLE

STAGES = {stage: (STAGE_TABLE[stage].reads, STAGE_TABLE[stage].schema) for stage in REPLAYABLE}

_RELATIVE = re.compile(r"^-?(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now_ms: int) -> int:
    """Epoch milliseconds for `text`: ISO 8601 (no zone = UTC), epoch seconds or milliseconds, `now`, or a
    duration ago (`15m`, `-2h`, `1d`). Raises ValueError saying what is accepted."""
    raw = text.strip()
    if raw.lower() == "now":
        return now_ms
    m = _RELATIVE.match(raw.lower())
    if m:
        return now_ms - int(float(m.group(1)) * _UNIT_S[m.group(2)] * 1000)
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        value = float(raw)
        return int(value if value >= 1e12 else value * 1000)  # 13 digits: already milliseconds
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"cannot read time {text!r}: use ISO 8601 (2026-11-27T08:00:00Z), epoch seconds, "
                         "'now' or a duration ago such as 15m, 2h, 1d") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return int(parsed.timestamp() * 1000)


@dataclass(frozen=True)
class PartitionRange:
    """Offsets [start, end) of one partition."""

    partition: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return max(0, self.end - self.start)


def partition_ranges(from_offsets: dict[int, int], to_offsets: dict[int, int] | None,
                     watermarks: dict[int, tuple[int, int]]) -> list[PartitionRange]:
    """The ranges to read. `from_offsets`/`to_offsets` are offsets_for_times answers (negative: no message
    at or after that time, i.e. the end); `to_offsets` None means "up to the end"; `watermarks` (low, high)."""
    out = []
    for p in sorted(watermarks):
        low, high = watermarks[p]
        start = from_offsets.get(p, -1)
        start = high if start < 0 else max(start, low)
        end = high if to_offsets is None or to_offsets.get(p, -1) < 0 else min(to_offsets[p], high)
        out.append(PartitionRange(p, start, max(start, end)))
    return out


def of_source(record: dict, source: str | None) -> bool:
    """Whether `record` belongs to source `source` (None: every source; "" in a record of an older writer
    schema is `default`)."""
    return source is None or (record.get("source") or "default") == source


def mark_replay(codec: Codec, raw: bytes, include_replays: bool = False,
                source: str | None = None) -> tuple[bytes | None, dict | None]:
    """(re-encoded record with replay=True, the record) — or (None, record) for an earlier replay or a record of
    another source than `source`, which are skipped. Raises AvroDecodeError for an undecodable record."""
    record = codec.decode(raw)
    if (record.get("replay") and not include_replays) or not of_source(record, source):
        return None, record
    record["replay"] = True
    return codec.encode(record), record


@dataclass
class ReplaySummary:
    stage: str
    topic: str
    from_ms: int
    to_ms: int | None
    source: str | None = None
    partitions: int = 0
    in_range: int = 0
    sent: int = 0
    flows: int = 0
    skipped_replays: int = 0
    other_sources: int = 0
    undecodable: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def line(self) -> str:
        def when(ms):
            return "the end" if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(
                timespec="seconds").replace("+00:00", "Z")

        if self.failed and not self.in_range:
            return f"replay {self.stage}: nothing re-sent: {self.failed[0]}"
        unit = "flows" if self.stage == "enrich" else "kflow records"
        text = (f"replay {self.stage}: {self.sent} of {self.in_range} messages of {self.topic} ({self.flows} {unit}) "
                f"from {when(self.from_ms)} to {when(self.to_ms)} re-sent over {self.partitions} partitions in "
                f"{self.seconds:.1f}s")
        if self.source is not None:
            text += f"; source {self.source} only ({self.other_sources} messages of other sources skipped)"
        if self.skipped_replays:
            text += f"; {self.skipped_replays} earlier replays skipped"
        if self.undecodable:
            text += f"; {self.undecodable} undecodable skipped"
        if self.failed:
            text += f"; {len(self.failed)} NOT re-sent (first: {self.failed[0]})"
        return text

    def as_dict(self) -> dict:
        return {"stage": self.stage, "topic": self.topic, "from_ms": self.from_ms, "to_ms": self.to_ms,
                "partitions": self.partitions, "in_range": self.in_range, "sent": self.sent, "flows": self.flows,
                "source": self.source, "other_sources": self.other_sources,
                "skipped_replays": self.skipped_replays, "undecodable": self.undecodable,
                "failed": len(self.failed), "seconds": round(self.seconds, 2), "ok": self.ok}


# ------------------------------------------------------------------------------------------ Kafka I/O
def throwaway_consumer(kafka_conf: dict, purpose: str):
    """A consumer that never joins or commits to a group (assign() only, unique group id)."""
    from confluent_kafka import Consumer

    conf = dict(kafka_conf)
    conf.update({"group.id": f"blueflow-{purpose}-{uuid.uuid4()}", "enable.auto.commit": False,
                 "enable.auto.offset.store": False, "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    return Consumer(conf)


def topic_watermarks(consumer, topic: str, timeout: float = 10.0) -> dict[int, tuple[int, int]]:
    from confluent_kafka import TopicPartition

    meta = consumer.list_topics(topic, timeout=timeout)
    info = meta.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise LookupError(f"topic {topic!r} does not exist (check --topic_prefix / BLUEFLOW_TOPIC_PREFIX)")
    return {p: tuple(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False))
            for p in sorted(info.partitions)}


def offsets_at(consumer, topic: str, partitions: list[int], ts_ms: int, timeout: float = 10.0) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    answer = consumer.offsets_for_times([TopicPartition(topic, p, ts_ms) for p in partitions], timeout=timeout)
    return {tp.partition: tp.offset for tp in answer}


def read_ranges(consumer, topic: str, ranges: list[PartitionRange], idle_timeout_s: float = 30.0) -> Iterator:
    """Every message of `ranges` (confluent Message objects), partition by partition interleaved."""
    from confluent_kafka import KafkaError, TopicPartition

    todo = {r.partition: r for r in ranges if r.size}
    if not todo:
        return
    consumer.assign([TopicPartition(topic, r.partition, r.start) for r in todo.values()])
    last_message = time.monotonic()
    while todo:
        msg = consumer.poll(0.5)
        if msg is None:
            if time.monotonic() - last_message > idle_timeout_s:
                raise TimeoutError(f"no message from {topic} for {idle_timeout_s:.0f}s; partitions still open: "
                                   f"{sorted(todo)}")
            continue
        last_message = time.monotonic()
        p = msg.partition()
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                todo.pop(p, None)
                continue
            raise RuntimeError(f"reading {topic}[{p}] failed: {msg.error()}")
        r = todo.get(p)
        if r is None:
            continue
        if msg.offset() >= r.end:
            todo.pop(p)
            continue
        yield msg
        if msg.offset() >= r.end - 1:
            todo.pop(p)


def run_replay(settings, stage: str, from_ms: int, to_ms: int | None, *, include_replays: bool = False,
               source: str | None = None, on_total: Callable[[int], None] | None = None,
               on_progress: Callable[[int], None] | None = None) -> ReplaySummary:
    """Replay [from_ms, to_ms) of the stage's input topic (see module doc), only source `source`'s records if
    given. Errors end up in the summary."""
    from confluent_kafka import Producer

    from streams.state.follower import kafka_client_config

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; replayable stages: {', '.join(STAGES)}")
    if to_ms is not None and to_ms <= from_ms:
        raise ValueError("--to must be after --from")
    short, schema = STAGES[stage]
    topic = settings.topic(short)
    summary = ReplaySummary(stage, topic, from_ms, to_ms, source)
    started = time.monotonic()
    kafka_conf = kafka_client_config(settings)
    consumer = throwaway_consumer(kafka_conf, "replay")
    producer = Producer(dict(kafka_conf, **{"acks": "all", "enable.idempotence": True, "linger.ms": 20}))
    try:
        marks = topic_watermarks(consumer, topic)
        partitions = list(marks)
        starts = offsets_at(consumer, topic, partitions, from_ms)
        ends = offsets_at(consumer, topic, partitions, to_ms) if to_ms is not None else None
        ranges = partition_ranges(starts, ends, marks)
        summary.partitions = sum(1 for r in ranges if r.size)
        summary.in_range = sum(r.size for r in ranges)
        if on_total:
            on_total(summary.in_range)
        _resend(read_ranges(consumer, topic, ranges), producer, Codec(schema), summary, include_replays, on_progress)
    except (LookupError, TimeoutError, RuntimeError) as exc:
        summary.failed.append(str(exc))
    finally:
        consumer.close()
        summary.seconds = time.monotonic() - started
    return summary


def _resend(messages: Iterator, producer, codec: Codec, summary: ReplaySummary, include_replays: bool,
            on_progress: Callable[[int], None] | None) -> None:
    """Produce every message again, marked, to its own partition (skips counted in `summary`); waits for the
    broker's acknowledgements."""
    topic = summary.topic

    def delivered(err, msg):
        if err is not None:
            summary.failed.append(f"{topic}[{msg.partition()}] key {msg.key()!r}: {err}")
        else:
            summary.sent += 1

    for msg in messages:
        try:
            value, record = mark_replay(codec, msg.value(), include_replays, summary.source)
        except AvroDecodeError:
            value, record = None, None
            summary.undecodable += 1
        if value is None and record is not None:
            if not of_source(record, summary.source):
                summary.other_sources += 1
            else:
                summary.skipped_replays += 1
        elif value is not None:
            summary.flows += int(record.get("flow_count") or 0)
            while True:
                try:
                    producer.produce(topic, value=value, key=msg.key(), partition=msg.partition(),
                                     on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.5)
            producer.poll(0)
        if on_progress:
            on_progress(1)
    remaining = producer.flush(120)
    if remaining:
        summary.failed.append(f"{remaining} messages not acknowledged by the broker within 120s")
