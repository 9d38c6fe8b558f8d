"""The typed records of blueflow's topics and their Avro form (schemas/*.avsc) — the one place that maps
between them.

objects → ObjectRef · flows → FlowChunk · kflow → KflowChunk (both in streams/formats/batches.py) · ledger →
LedgerEntry · deadletter → DeadLetter · progress → Progress (compacted; None value = tombstone) · vpc-metadata →
MetadataRecord.
Every stage builds and reads these classes; nothing else builds Avro dicts by hand.

An `objects` message may stand for a group of objects of one source: the first is the record's own identity,
the others are in `ObjectRef.group` (each object's identity is held once).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from functools import cache
from typing import ClassVar, TypeVar

from streams.formats import columns as packed  # ColumnError: a flows/kflow message whose columns do not fit
from streams.formats.avro import AvroDecodeError, Codec

__all__ = [
    "AvroDecodeError", "DeadLetter", "LedgerEntry", "MetadataRecord", "ObjectRef", "Progress", "Record", "now_ms",
    "scoped_key",
]

R = TypeVar("R", bound="Record")


def now_ms() -> int:
    return int(time.time() * 1000)


SOURCE_SEPARATOR = "\x1f"  # ASCII unit separator: cannot be confused with a key of the source `default`


def scoped_key(source: str, key: str) -> str:
    """The Kafka message key and the dedup/ledger/progress identity of object `key` of source `source`: the
    plain key for the source `default` (the flags' one source; "" in a record of an older writer schema),
    else source + US + key, so the same key in two buckets never collides."""
    return key if source in ("", "default") else f"{source}{SOURCE_SEPARATOR}{key}"


@cache
def _codec(schema: str) -> Codec:
    return Codec(schema)


@cache
def _names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


class Scoped:
    """What has a `key` and a `source`: `skey`, its identity scoped by the source (`scoped_key`)."""

    __slots__ = ()

    @property
    def skey(self) -> str:
        return scoped_key(self.source, self.key)


class Record:
    """Base of the topic records: `encode()` to Avro bytes, `decode(raw)` back (raises AvroDecodeError)."""

    SCHEMA: ClassVar[str]

    def to_avro(self) -> dict:
        return {name: getattr(self, name) for name in _names(type(self))}

    @classmethod
    def from_avro(cls: type[R], record: dict) -> R:
        return cls(**{name: record[name] for name in _names(cls) if name in record})

    def encode(self) -> bytes:
        return _codec(self.SCHEMA).encode(self.to_avro())

    @classmethod
    def decode(cls: type[R], raw: bytes) -> R:
        try:
            return cls.from_avro(_codec(cls.SCHEMA).decode(raw))
        except packed.ColumnError as exc:
            raise AvroDecodeError(f"message columns are inconsistent: {exc}") from None


@dataclass(slots=True)
class ObjectRef(Scoped, Record):
    """One object of the bucket as listed, or a group of them (topic `objects`): see `members()`."""

    SCHEMA: ClassVar[str] = "object_ref"
    bucket: str
    key: str
    etag: str = ""
    size: int = 0
    last_modified: int = 0
    published_at: int = 0
    republish: bool = False
    force: bool = False
    source: str = ""  # configured source name (streams/config/sources.py); "" = `default`
    group: list = field(default_factory=list)  # GroupMember dicts: the group's other objects (of this source)

    def members(self) -> list["ObjectRef"]:
        """The objects this message stands for: itself, then the other members of its group."""
        if not self.group:
            return [self]
        return [replace(self, group=[])] + [
            ObjectRef(self.bucket, m["key"], m["etag"], m["size"], m["last_modified"], self.published_at,
                      m["republish"], self.force, self.source) for m in self.group]

    @classmethod
    def of_group(cls, refs: list["ObjectRef"]) -> "ObjectRef":
        """One message for `refs`, all of one source (a single ref stays a plain ungrouped reference)."""
        if len(refs) == 1:
            return refs[0]
        first = refs[0]
        assert all(r.source == first.source for r in refs), "a group holds objects of one source"
        others = [{"key": r.key, "etag": r.etag, "size": r.size, "last_modified": r.last_modified,
                   "republish": r.republish} for r in refs[1:]]
        return cls(first.bucket, first.key, first.etag, first.size, first.last_modified, first.published_at,
                   first.republish, first.force, first.source, others)


@dataclass(slots=True)
class LedgerEntry(Scoped, Record):
    """An object whose every flow Kentik accepted (topic `ledger`)."""

    SCHEMA: ClassVar[str] = "ledger"
    bucket: str
    key: str
    etag: str
    flows: int
    chf: int
    device_name: str
    delivered_at: int
    deleted: bool
    source: str = ""


@dataclass(slots=True)
class DeadLetter(Scoped, Record):
    """An object (or message) quarantined with a reason; the object stays in the bucket (topic `deadletter`)."""

    SCHEMA: ClassVar[str] = "deadletter"
    bucket: str
    key: str
    etag: str
    stage: str
    reason: str
    at: int
    size: int = 0
    source: str = ""


@dataclass(slots=True)
class Progress(Scoped, Record):
    """Chunks of one object Kentik already accepted (topic `progress`, compacted by key)."""

    SCHEMA: ClassVar[str] = "progress"
    bucket: str
    key: str
    etag: str
    chunks: int
    done: list
    flows: int = 0
    chf: int = 0
    at: int = 0
    source: str = ""


@dataclass(slots=True)
class MetadataRecord(Record):
    """One region's VPC metadata snapshot as JSON (topic `vpc-metadata`, compacted by region)."""

    SCHEMA: ClassVar[str] = "vpc_metadata"
    region: str
    fetched_at: float
    json: str
