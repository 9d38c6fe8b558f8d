"""`blueflow deadletter list|show|retry`: the quarantined objects, why, and sending them through again.

The `deadletter` topic is read in full with a throwaway consumer (no group). `list` shows the newest record
per object key; `show` every record of one key plus the object's current state in the bucket; `retry`
HEADs the object (it must still be in the bucket; its current ETag is used) and publishes an object
reference with `force: true` to `objects`, so the parse stage processes it even though this key + ETag was
quarantined. Retrying an unchanged bad object quarantines it again with the same reason; an object fixed in
place (overwritten, new ETag) is picked up by the poller on its own, without a retry.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

from streams.avro import AvroDecodeError, Codec
from streams.textsafe import escape


@dataclass(frozen=True)
class Letter:
    """One dead-letter record with where it was read."""

    record: dict
    partition: int
    offset: int

    @property
    def key(self) -> str:
        return self.record.get("key", "")

    def as_dict(self) -> dict:
        return dict(self.record, at_iso=iso(self.record.get("at", 0)), partition=self.partition, offset=self.offset)


def iso(ms: int) -> str:
    return datetime.fromtimestamp((ms or 0) / 1000, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def newest_per_key(letters: list[Letter]) -> list[Letter]:
    """The latest record (by `at`, then offset) of every key, newest first."""
    best: dict[str, Letter] = {}
    for letter in letters:
        current = best.get(letter.key)
        if current is None or (letter.record.get("at", 0), letter.offset) >= (current.record.get("at", 0),
                                                                                 current.offset):
            best[letter.key] = letter
    return sorted(best.values(), key=lambda item: (item.record.get("at", 0), item.key), reverse=True)


def numbered(letters: list[Letter]) -> list[tuple[int, Letter]]:
    """The newest record per key, oldest first, numbered from 1: the numbers `show`/`retry --index` take.

    A number stays valid while no object is quarantined (again) after the one it names."""
    return list(enumerate(reversed(newest_per_key(letters)), start=1))


def table_lines(rows: list[tuple[int, Letter]]) -> list[str]:
    """The `list` table: number, when, stage and the whole key; the reason on the line below. Keys and
    reasons are escaped (a key can hold any character: no escape sequence reaches the terminal)."""
    wide = max((len(str(n)) for n, _ in rows), default=1)
    lines = [f"{'#':>{wide}}  {'quarantined at':20}  {'stage':10}  key"]
    for n, letter in rows:
        r = letter.record
        lines.append(f"{n:>{wide}}  {iso(r.get('at', 0)):20}  {escape(r.get('stage', '')):10}  {escape(letter.key)}")
        lines.append(f"{'':>{wide}}  reason: {escape(r.get('reason', ''))}")
    return lines


def resolve(rows: list[tuple[int, Letter]], keys: list[str], indexes: list[int]) -> tuple[list[str], list[str]]:
    """(object keys, problems) for KEYS and --index numbers of `list`. A key may also be given as `list`
    printed it (escaped); other keys are taken as they are."""
    by_shown = {escape(letter.key): letter.key for _, letter in rows}
    by_number = {n: letter.key for n, letter in rows}
    targets, problems = [], []
    for n in indexes:
        if n in by_number:
            targets.append(by_number[n])
        else:
            problems.append(f"no dead letter #{n}: `blueflow deadletter list` numbers {len(rows)} "
                            f"object{'s' if len(rows) != 1 else ''} (1-{len(rows)})" if rows else
                            f"no dead letter #{n}: there are no dead letters")
    for key in keys:
        targets.append(key if key in by_number.values() else by_shown.get(key, key))
    return targets, problems


def object_ref_for_retry(bucket: str, key: str, head, now_ms: int) -> dict:
    """The `objects` record that makes the parse stage process `key` again (current ETag, force)."""
    return {"bucket": bucket, "key": key, "etag": head.etag.strip('"'), "size": int(head.size),
            "last_modified": int(head.last_modified or 0), "published_at": now_ms, "republish": False,
            "force": True}


# ------------------------------------------------------------------------------------------ I/O
def read_letters(settings) -> list[Letter]:
    """Every record of the deadletter topic (undecodable ones are reported as such, not dropped)."""
    from streams.follower import kafka_client_config
    from streams.replay import partition_ranges, read_ranges, throwaway_consumer, topic_watermarks

    topic = settings.topic("deadletter")
    codec = Codec("deadletter")
    consumer = throwaway_consumer(kafka_client_config(settings), "deadletters")
    out = []
    try:
        marks = topic_watermarks(consumer, topic)
        ranges = partition_ranges({p: low for p, (low, _) in marks.items()}, None, marks)
        for msg in read_ranges(consumer, topic, ranges):
            try:
                record = codec.decode(msg.value())
            except AvroDecodeError as exc:
                record = {"bucket": "", "key": (msg.key() or b"").decode(errors="replace"), "etag": "",
                          "stage": "?", "reason": f"(dead-letter record unreadable: {exc})",
                          "at": msg.timestamp()[1], "size": 0}
            out.append(Letter(record, msg.partition(), msg.offset()))
    finally:
        consumer.close()
    return out


def cos_client(settings):
    from streams.runtime import Runtime

    return Runtime(settings).cos


def object_state(settings, key: str, client=None) -> dict:
    """The object as it is in the bucket now: {"exists": bool, "etag", "size", "last_modified"} or an error."""
    from connectors.cos import head_object

    client = client or cos_client(settings)
    try:
        head = head_object(client, settings.bucket_name, key)
    except Exception as exc:  # CosError: say what happened, never raise at the operator
        return {"exists": None, "error": str(exc)}
    if head is None:
        return {"exists": False}
    return {"exists": True, "etag": head.etag, "size": head.size, "last_modified": iso(head.last_modified)}


@dataclass
class RetryResult:
    key: str
    ok: bool
    detail: str
    etag: str = ""
    gone: bool = False  # no longer in the bucket (delivered after a fix, or removed)

    def as_dict(self) -> dict:
        return {"key": self.key, "ok": self.ok, "detail": self.detail, "etag": self.etag, "gone": self.gone}


def retry(settings, keys: list[str]) -> list[RetryResult]:
    """Publish a forced object reference for each key that is still in the bucket; one result per key."""
    from confluent_kafka import Producer

    from connectors.cos import head_object
    from streams.follower import kafka_client_config

    client = cos_client(settings)
    codec = Codec("object_ref")
    # murmur2: the same partition as the worker's own (Java-compatible) producer picks for this key
    producer = Producer(dict(kafka_client_config(settings), **{"acks": "all", "partitioner": "murmur2_random"}))
    topic = settings.topic("objects")
    results: list[RetryResult] = []
    pending: dict[str, RetryResult] = {}

    def delivered(err, msg):
        result = pending[msg.key().decode()]
        if err is not None:
            result.ok, result.detail = False, f"not published: {err}"

    for key in keys:
        if not key:
            results.append(RetryResult(key, False, "dead letter without an object key (an undecodable message); "
                                                   "nothing to retry"))
            continue
        try:
            head = head_object(client, settings.bucket_name, key)
        except Exception as exc:
            results.append(RetryResult(key, False, f"HEAD failed: {exc}"))
            continue
        if head is None:
            results.append(RetryResult(key, False, f"not in bucket {settings.bucket_name!r} any more", gone=True))
            continue
        ref = object_ref_for_retry(settings.bucket_name, key, head, int(time.time() * 1000))
        result = RetryResult(key, True, f"published to {topic} (force)", ref["etag"])
        pending[key] = result
        results.append(result)
        producer.produce(topic, key=key.encode(), value=codec.encode(ref), on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(60)
    if left:
        for result in pending.values():
            if result.ok:
                result.ok, result.detail = False, "broker did not acknowledge within 60s (state unknown)"
    return results
