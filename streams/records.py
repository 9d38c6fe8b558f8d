"""The typed records of blueflow's topics and their Avro form (schemas/*.avsc) — the one place that maps
between them.

objects → ObjectRef · flows → FlowChunk · kflow → KflowChunk · ledger → LedgerEntry · deadletter → DeadLetter ·
progress → Progress (compacted; None value = tombstone) · vpc-metadata → MetadataRecord.
Every stage builds and reads these classes; nothing else builds Avro dicts by hand. The columns of flows/kflow
(version 4) are packed by streams/columns.py: integer columns decode to numpy arrays.

Groups (schema version 2): an `objects` message may stand for a group of objects (`ObjectRef.group`), and a
`flows` / `kflow` message may carry rows of several objects (`parts`, each with its own row range and chunk
number). Older messages (schemas/history/) are still read: they are one object, one part. A group is of one source.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any, ClassVar, TypeVar

from connectors.kflow import INT_COLUMNS, N_CUSTOM
from streams import columns as packed  # the v4 packed columns of the flows/kflow messages
from streams.avro import AvroDecodeError, Codec, FieldSplice

__all__ = [
    "AvroDecodeError", "DeadLetter", "FlowChunk", "FlowPart", "KFLOW_INT_COLUMNS", "KflowChunk", "KflowPart",
    "LedgerEntry", "MetadataRecord", "ObjectRef", "Progress", "Record", "now_ms", "part_object", "scoped_key",
]

KFLOW_INT_COLUMNS = INT_COLUMNS  # the integer columns of a kflow batch, defined once in connectors.kflow
KFLOW_COLUMNS = KFLOW_INT_COLUMNS + ("strings", "custom_idx")
CUSTOMS_PER_FLOW = N_CUSTOM  # custom_idx holds 19 string indexes per kflow record (STR00..STR18)

R = TypeVar("R", bound="Record")


def now_ms() -> int:
    return int(time.time() * 1000)


SOURCE_SEPARATOR = "\x1f"  # ASCII unit separator: cannot be confused with a key of the implicit source


def scoped_key(source: str, key: str) -> str:
    """The Kafka message key and the dedup/ledger/progress identity of object `key` of source `source`: the
    plain key for the implicit source ("" or "default": v1 state stays valid), else source + US + key, so the
    same key in two buckets never collides."""
    return key if source in ("", "default") else f"{source}{SOURCE_SEPARATOR}{key}"


@cache
def _codec(schema: str) -> Codec:
    return Codec(schema)


@cache
def _names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


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
class ObjectRef(Record):
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
    source: str = ""  # configured source name; "" = the implicit source (streams/sources.py)
    group: list = field(default_factory=list)  # GroupMember dicts (all of this source); empty = this one object

    @property
    def skey(self) -> str:
        return scoped_key(self.source, self.key)

    def members(self) -> list["ObjectRef"]:
        """The objects this message stands for: itself, or each member of its group."""
        if not self.group:
            return [self]
        return [ObjectRef(self.bucket, m["key"], m["etag"], m["size"], m["last_modified"], self.published_at,
                          m["republish"], self.force, self.source) for m in self.group]

    @classmethod
    def of_group(cls, refs: list["ObjectRef"]) -> "ObjectRef":
        """One message for `refs`, all of one source (a single ref stays a plain ungrouped reference)."""
        if len(refs) == 1:
            return refs[0]
        first = refs[0]
        assert all(r.source == first.source for r in refs), "a group holds objects of one source"
        members = [{"key": r.key, "etag": r.etag, "size": r.size, "last_modified": r.last_modified,
                    "republish": r.republish} for r in refs]
        return cls(first.bucket, first.key, first.etag, first.size, first.last_modified, first.published_at,
                   first.republish, first.force, first.source, members)


@dataclass(slots=True)
class FlowPart:
    """The rows [start, start + flow_count) of a flows message that belong to one object's chunk."""

    key: str
    etag: str
    size: int
    last_modified: int
    header: dict
    chunk: int
    chunks: int
    start: int
    flow_count: int
    source: str = ""  # the message's source (not part of the Avro part: a group is of one source)

    @property
    def skey(self) -> str:
        return scoped_key(self.source, self.key)


@dataclass(slots=True)
class FlowChunk(Record):
    """Up to `chunk_flows` IBM flow records of one object or of several objects (`parts`), as columns
    (topic `flows`). The top-level identity fields are the first part's."""

    SCHEMA: ClassVar[str] = "flow_batch"
    bucket: str
    key: str
    etag: str
    size: int
    last_modified: int
    header: dict
    chunk: int
    chunks: int
    flow_count: int
    columns: dict
    replay: bool = False
    source: str = ""
    parts: list = field(default_factory=list)  # FlowPart; empty = one object (ungrouped)

    @property
    def skey(self) -> str:
        return scoped_key(self.source, self.key)

    def to_avro(self) -> dict:
        record = {name: getattr(self, name) for name in _names(type(self)) if name != "parts"}
        record["columns"] = packed.pack_flow_columns(self.columns)
        record["parts"] = [_as_dict(p, skip=("source",)) for p in self.parts]
        return record

    @staticmethod
    def encode_columns(columns: dict) -> bytes:
        """The Avro form of a chunk's columns alone, for `encode_around` once the rest of the record is known."""
        return _columns_splice().encode_field(packed.pack_flow_columns(columns))

    def encode_around(self, columns: bytes) -> bytes:
        """`encode()` of this record with its columns as `encode_columns` gave them (`self.columns` unread)."""
        return _columns_splice().encode(self.to_avro(), columns)

    @classmethod
    def from_avro(cls, record: dict) -> "FlowChunk":
        parts = record.pop("parts", None) or ()
        record["columns"] = packed.unpack_flow_columns(record["columns"], record["flow_count"])
        chunk = super(FlowChunk, cls).from_avro(record)
        chunk.parts = [FlowPart(**p, source=chunk.source) for p in parts]
        return chunk

    def pieces(self) -> list[FlowPart]:
        """The object chunks this message carries (a version-1 message: its one object)."""
        if self.parts:
            for part in self.parts:
                part.source = self.source
            return self.parts
        return [FlowPart(self.key, self.etag, self.size, self.last_modified, self.header, self.chunk, self.chunks,
                         0, self.flow_count, self.source)]

    def rows(self, part: FlowPart) -> dict:
        """The columns of one part's rows."""
        if part.start == 0 and part.flow_count == self.flow_count:
            return self.columns
        stop = part.start + part.flow_count
        return {name: column[part.start:stop] for name, column in self.columns.items()}

    @classmethod
    def of(cls, ref: ObjectRef, header: dict, chunk: int, chunks: int, columns: dict | None) -> "FlowChunk":
        count = len(columns["direction"]) if columns else 0
        return cls(ref.bucket, ref.key, ref.etag, ref.size, ref.last_modified, header, chunk, chunks, count,
                   columns or {}, source=ref.source)


@cache
def _columns_splice() -> FieldSplice:
    return FieldSplice(_codec(FlowChunk.SCHEMA), "columns")


@dataclass(slots=True)
class KflowPart:
    """The rows [start, start + flow_count) of a kflow message that belong to one object's chunk, with the
    Kentik device of its subnet."""

    key: str
    etag: str
    size: int
    last_modified: int
    device_name: str
    subnet_id: str
    region: str
    zone: str
    chunk: int
    chunks: int
    source_flows: int
    start: int
    flow_count: int
    replay: bool = False  # the message's flag (not part of the Avro part)
    source: str = ""  # the message's source (not part of the Avro part: a group is of one source)

    @property
    def skey(self) -> str:
        return scoped_key(self.source, self.key)


@dataclass(slots=True)
class KflowChunk(Record):
    """The kflow records translated from one FlowChunk (topic `kflow`): integer columns, dictionary-encoded
    custom strings (`strings` + 19 indexes per record in `custom_idx`), and the identity of the object(s)
    (`parts`; the top-level identity fields are the first part's)."""

    SCHEMA: ClassVar[str] = "kflow_batch"
    bucket: str
    key: str
    etag: str
    size: int
    last_modified: int
    device_name: str
    subnet_id: str
    region: str
    zone: str
    chunk: int
    chunks: int
    source_flows: int  # IBM flow records of the FlowChunk this came from
    flow_count: int = 0  # kflow records
    columns: dict = field(default_factory=dict)  # KFLOW_COLUMNS -> numpy array (strings: list)
    replay: bool = False
    source: str = ""
    parts: list = field(default_factory=list)  # KflowPart; empty = one object (ungrouped)

    @property
    def skey(self) -> str:
        return scoped_key(self.source, self.key)

    def to_avro(self) -> dict:
        record = {name: getattr(self, name) for name in _names(type(self)) if name not in ("columns", "parts")}
        record.update(packed.pack_kflow_columns(self.columns))
        record["parts"] = [_as_dict(p, skip=("replay", "source")) for p in self.parts]
        return record

    @classmethod
    def from_avro(cls, record: dict) -> "KflowChunk":
        columns = packed.unpack_kflow_columns(record, record["flow_count"], CUSTOMS_PER_FLOW)
        parts = record.pop("parts", None) or ()
        chunk = super(KflowChunk, cls).from_avro(record)
        chunk.columns = columns
        chunk.parts = [KflowPart(**p, replay=chunk.replay, source=chunk.source) for p in parts]
        return chunk

    def pieces(self) -> list[KflowPart]:
        """The object chunks this message carries (a version-1 message: its one object)."""
        if self.parts:
            for part in self.parts:
                part.replay, part.source = self.replay, self.source
            return self.parts
        return [KflowPart(self.key, self.etag, self.size, self.last_modified, self.device_name, self.subnet_id,
                          self.region, self.zone, self.chunk, self.chunks, self.source_flows, 0, self.flow_count,
                          self.replay, self.source)]

    def slice(self, start: int, stop: int) -> dict:
        """Columns of records [start, stop) (for a 413 split) as lists: what connectors/kflow.py's encoder reads."""
        part: dict[str, Any] = {c: packed.as_list(self.columns[c][start:stop]) for c in KFLOW_INT_COLUMNS}
        idx = self.columns["custom_idx"][start * CUSTOMS_PER_FLOW:stop * CUSTOMS_PER_FLOW]
        part.update(strings=self.columns["strings"], flow_count=stop - start, custom_idx=packed.as_list(idx))
        return part


def part_object(chunk: "FlowChunk | KflowChunk", part: "FlowPart | KflowPart") -> ObjectRef:
    """The object one part of a message stands for (bucket and source are the message's): e.g. to quarantine
    that object alone."""
    return ObjectRef(chunk.bucket, part.key, part.etag, part.size, part.last_modified, source=chunk.source)


def _as_dict(part, skip: tuple[str, ...] = ()) -> dict:
    return {name: getattr(part, name) for name in _names(type(part)) if name not in skip}


@dataclass(slots=True)
class LedgerEntry(Record):
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

    @property
    def skey(self) -> str:
        return scoped_key(self.source, self.key)


@dataclass(slots=True)
class DeadLetter(Record):
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

    @property
    def skey(self) -> str:
        return scoped_key(self.source, self.key)


@dataclass(slots=True)
class Progress(Record):
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

    @property
    def skey(self) -> str:
        return scoped_key(self.source, self.key)


@dataclass(slots=True)
class MetadataRecord(Record):
    """One region's VPC metadata snapshot as JSON (topic `vpc-metadata`, compacted by region)."""

    SCHEMA: ClassVar[str] = "vpc_metadata"
    region: str
    fetched_at: float
    json: str
