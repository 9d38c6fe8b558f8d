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

from streams.formats.avro import AvroDecodeError, Codec
from streams.formats.records import scoped_key
from streams.config.sources import DEFAULT
from streams.formats.textsafe import escape


@dataclass(frozen=True)
class Letter:
    """One dead-letter record with where it was read."""

    record: dict
    partition: int
    offset: int

    @property
    def key(self) -> str:
        return self.record.get("key", "")

    @property
    def source(self) -> str:
        """The configured source's name ("" in a record of an older writer schema: `default`)."""
        return self.record.get("source") or DEFAULT

    @property
    def skey(self) -> str:
        """The object's identity: the same key in two sources' buckets is two objects."""
        return scoped_key(self.source, self.key)

    def as_dict(self) -> dict:
        return dict(self.record, at_iso=iso(self.record.get("at", 0)), partition=self.partition, offset=self.offset)


def iso(ms: int) -> str:
    return datetime.fromtimestamp((ms or 0) / 1000, timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def of_source(letters: list[Letter], source: str | None) -> list[Letter]:
    """The dead letters of one source (`--source NAME`; None = every source)."""
    return letters if source is None else [letter for letter in letters if letter.source == source]


def newest_per_key(letters: list[Letter]) -> list[Letter]:
    """The latest record (by `at`, then offset) of every object (source + key), newest first."""
    best: dict[str, Letter] = {}
    for letter in letters:
        current = best.get(letter.skey)
        if current is None or (letter.record.get("at", 0), letter.offset) >= (current.record.get("at", 0),
                                                                                 current.offset):
            best[letter.skey] = letter
    return sorted(best.values(), key=lambda item: (item.record.get("at", 0), item.key), reverse=True)


def numbered(letters: list[Letter]) -> list[tuple[int, Letter]]:
    """The newest record per key, oldest first, numbered from 1: the numbers `show`/`retry --index` take.

    A number stays valid while no object is quarantined (again) after the one it names."""
    return list(enumerate(reversed(newest_per_key(letters)), start=1))


def table_lines(rows: list[tuple[int, Letter]]) -> list[str]:
    """The `list` table: number, when, stage (and source, when a dead letter names one) and the whole key; the
    reason on the line below. Keys and reasons are escaped (a key can hold any character: no escape sequence
    reaches the terminal)."""
    wide = max((len(str(n)) for n, _ in rows), default=1)
    sources = any(letter.source != DEFAULT for _, letter in rows)
    lines = [f"{'#':>{wide}}  {'quarantined at':20}  {'stage':10}  " + ("source  " if sources else "") + "key"]
    for n, letter in rows:
        r = letter.record
        source = f"{escape(letter.source)}  " if sources else ""
        lines.append(f"{n:>{wide}}  {iso(r.get('at', 0)):20}  {escape(r.get('stage', '')):10}  {source}"
                     f"{escape(letter.key)}")
        lines.append(f"{'':>{wide}}  reason: {escape(r.get('reason', ''))}")
    return lines


def resolve(rows: list[tuple[int, Letter]], keys: list[str], indexes: list[int], source: str | None = None,
            configured: tuple[str, ...] = (DEFAULT,)) -> tuple[list[tuple[str, str]], list[str]]:
    """((source, object key) targets, problems) for KEYS and --index numbers of `list`. A key may also be
    given as `list` printed it (escaped); a key that is no dead letter is taken as it is. Its source: `source`
    (--source), else the source it was quarantined in, else the only configured one."""
    by_number = dict(rows)
    by_key: dict[str, list[Letter]] = {}
    for _, letter in rows:
        by_key.setdefault(letter.key, []).append(letter)
    for _, letter in rows:
        by_key.setdefault(escape(letter.key), []).append(letter)
    targets, problems = [], []
    for n in indexes:
        if n in by_number:
            targets.append((by_number[n].source, by_number[n].key))
        else:
            problems.append(f"no dead letter #{n}: `blueflow deadletter list` numbers {len(rows)} "
                            f"object{'s' if len(rows) != 1 else ''} (1-{len(rows)})" if rows else
                            f"no dead letter #{n}: there are no dead letters")
    for key in keys:
        found = [letter for letter in by_key.get(key, []) if source is None or letter.source == source]
        names = sorted({letter.source for letter in found} or ({source} if source else set(configured)))
        if len(names) == 1:
            targets.append((names[0], found[0].key if found else key))
        else:
            problems.append(f"{escape(key)}: {'quarantined in' if found else 'no dead letter; configured'} sources "
                            f"{', '.join(map(escape, names))}: say which with --source")
    return targets, problems


def object_ref_for_retry(bucket: str, key: str, head, now_ms: int, source: str = "") -> dict:
    """The `objects` record that makes the parse stage process `key` of `source` (its name) again (current
    ETag, force)."""
    return {"bucket": bucket, "key": key, "etag": head.etag.strip('"'), "size": int(head.size),
            "last_modified": int(head.last_modified or 0), "published_at": now_ms, "republish": False,
            "force": True, "source": source}


# ------------------------------------------------------------------------------------------ I/O
def read_letters(settings) -> list[Letter]:
    """Every record of the deadletter topic (undecodable ones are reported as such, not dropped)."""
    from streams.state.follower import kafka_client_config
    from streams.ops.kafka_check import QUIET
    from streams.ops.replay import partition_ranges, read_ranges, throwaway_consumer, topic_watermarks

    topic = settings.topic("deadletter")
    codec = Codec("deadletter")
    consumer = throwaway_consumer(dict(kafka_client_config(settings), **QUIET), "deadletters")  # errors: raised
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


class SourceClients:
    """The deployment's sources by name and a COS client per source, built on first use."""

    def __init__(self, settings):
        self.settings = settings
        self.by_name = {s.name: s for s in settings.sources}
        self._clients: dict[str, object] = {}

    def source(self, name: str):
        """The configured source `name`; LookupError naming the configured ones."""
        if name not in self.by_name:
            raise LookupError(f"source {escape(name)} is not configured (configured: {', '.join(self.by_name)})")
        return self.by_name[name]

    def cos(self, name: str):
        from streams.stages.runtime import cos_client_for

        if name not in self._clients:
            self._clients[name] = cos_client_for(self.source(name), self.settings)
        return self._clients[name]


def object_state(settings, key: str, source: str = DEFAULT) -> dict:
    """The object as it is in its source's bucket now: {"exists": bool, "etag", "size", "last_modified"} or an
    error."""
    from connectors.cos import head_object

    clients = SourceClients(settings)
    try:
        head = head_object(clients.cos(source), clients.source(source).bucket, key)
    except Exception as exc:  # CosError, an unknown source: say what happened, never raise at the operator
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
    source: str = DEFAULT

    def as_dict(self) -> dict:
        return {"source": self.source, "key": self.key, "ok": self.ok, "detail": self.detail, "etag": self.etag,
                "gone": self.gone}


def _retry_ref(clients: SourceClients, name: str, key: str) -> tuple[RetryResult, dict | None]:
    """HEAD `key` in source `name`'s bucket: (the result so far, the forced object reference or None)."""
    from connectors.cos import head_object
    from streams.config.sources import Source

    if not key:
        return RetryResult(key, False, "dead letter without an object key (an undecodable message); nothing to "
                                       "retry", source=name), None
    try:
        source: Source = clients.source(name)
        head = head_object(clients.cos(name), source.bucket, key)
    except Exception as exc:
        return RetryResult(key, False, f"HEAD failed: {exc}", source=name), None
    if head is None:
        return RetryResult(key, False, f"not in bucket {source.bucket!r} any more", gone=True, source=name), None
    ref = object_ref_for_retry(source.bucket, key, head, int(time.time() * 1000), source.name)
    return RetryResult(key, True, "published (force)", ref["etag"], source=name), ref


def retry(settings, targets: list[tuple[str, str]]) -> list[RetryResult]:
    """Publish a forced object reference for each (source, key) still in its source's bucket; one result each."""
    from confluent_kafka import Producer

    from streams.state.follower import kafka_client_config

    clients = SourceClients(settings)
    codec = Codec("object_ref")
    # murmur2: the same partition as the worker's own (Java-compatible) producer picks for this key
    producer = Producer(dict(kafka_client_config(settings), **{"acks": "all", "partitioner": "murmur2_random"}))
    topic = settings.topic("objects")
    results: list[RetryResult] = []
    pending: dict[bytes, RetryResult] = {}

    def delivered(err, msg):
        result = pending[msg.key()]
        if err is not None:
            result.ok, result.detail = False, f"not published: {err}"

    for name, key in targets:
        result, ref = _retry_ref(clients, name, key)
        results.append(result)
        if ref is None:
            continue
        result.detail = f"published to {topic} (force)"
        message_key = scoped_key(ref["source"], key).encode()  # the worker's own key: same partition
        pending[message_key] = result
        producer.produce(topic, key=message_key, value=codec.encode(ref), on_delivery=delivered)
        producer.poll(0)
    left = producer.flush(60)
    if left:
        for result in pending.values():
            if result.ok:
                result.ok, result.detail = False, "broker did not acknowledge within 60s (state unknown)"
    return results
