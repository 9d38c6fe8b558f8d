"""The batch records of the `flows` and `kflow` topics (FlowChunk, KflowChunk) and the per-object parts they
carry (FlowPart, KflowPart); their columns are packed by streams/formats/columns.py (integer columns decode to
numpy arrays). The other topic records and the Record base are in streams/formats/records.py.

A `flows` / `kflow` message carries rows of one or more objects: an object's identity is held once, in its part
(`parts`, each with its own row range and chunk number); `key`, `etag`, ... of a message are its first part's.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, ClassVar

from streams.formats.kflow.kflow import INT_COLUMNS, N_CUSTOM
from streams.formats import columns as packed  # the v4 packed columns of the flows/kflow messages
from streams.formats.avro import FieldSplice
from streams.formats.records import ObjectRef, Record, Scoped, _codec, _names

__all__ = [
    "CUSTOMS_PER_FLOW", "FlowChunk", "FlowPart", "KFLOW_COLUMNS", "KFLOW_INT_COLUMNS", "KflowChunk", "KflowPart",
    "part_object",
]

KFLOW_INT_COLUMNS = INT_COLUMNS  # the integer columns of a kflow batch, defined once in streams.formats.kflow.kflow
KFLOW_COLUMNS = KFLOW_INT_COLUMNS + ("strings", "custom_idx")
CUSTOMS_PER_FLOW = N_CUSTOM  # custom_idx holds 19 string indexes per kflow record (STR00..STR18)


@dataclass(slots=True)
class FlowPart(Scoped):
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


@dataclass(slots=True)
class FlowChunk(Record):
    """Up to `chunk_flows` IBM flow records of one or more objects (`parts`), as columns (topic `flows`)."""

    SCHEMA: ClassVar[str] = "flow_batch"
    bucket: str
    flow_count: int
    columns: dict
    parts: list  # FlowPart, at least one
    replay: bool = False
    source: str = ""

    key = property(lambda self: self.parts[0].key)
    etag = property(lambda self: self.parts[0].etag)
    header = property(lambda self: self.parts[0].header)
    chunk = property(lambda self: self.parts[0].chunk)
    chunks = property(lambda self: self.parts[0].chunks)
    skey = property(lambda self: self.parts[0].skey)

    def to_avro(self) -> dict:
        return {"bucket": self.bucket, "flow_count": self.flow_count, "columns": packed.pack_flow_columns(self.columns),
                "parts": [_as_dict(p, skip=("source",)) for p in self.parts], "replay": self.replay,
                "source": self.source}

    @staticmethod
    def encode_columns(columns: dict) -> bytes:
        """The Avro form of a chunk's columns alone, for `encode_around` once the rest of the record is known."""
        return _columns_splice().encode_field(packed.pack_flow_columns(columns))

    def encode_around(self, columns: bytes) -> bytes:
        """`encode()` of this record with its columns as `encode_columns` gave them (`self.columns` unread)."""
        return _columns_splice().encode(self.to_avro(), columns)

    @classmethod
    def from_avro(cls, record: dict) -> "FlowChunk":
        source = record["source"]
        return cls(record["bucket"], record["flow_count"],
                   packed.unpack_flow_columns(record["columns"], record["flow_count"]),
                   [FlowPart(**p, source=source) for p in record["parts"]], record["replay"], source)

    def rows(self, part: FlowPart) -> dict:
        """The columns of one part's rows."""
        if part.start == 0 and part.flow_count == self.flow_count:
            return self.columns
        stop = part.start + part.flow_count
        return {name: column[part.start:stop] for name, column in self.columns.items()}

    @classmethod
    def of(cls, ref: ObjectRef, header: dict, chunk: int, chunks: int, columns: dict | None) -> "FlowChunk":
        count = len(columns["direction"]) if columns else 0
        part = FlowPart(ref.key, ref.etag, ref.size, ref.last_modified, header, chunk, chunks, 0, count, ref.source)
        return cls(ref.bucket, count, columns or {}, [part], source=ref.source)


@cache
def _columns_splice() -> FieldSplice:
    return FieldSplice(_codec(FlowChunk.SCHEMA), "columns")


@dataclass(slots=True)
class KflowPart(Scoped):
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


@dataclass(slots=True)
class KflowChunk(Record):
    """The kflow records translated from one FlowChunk (topic `kflow`): integer columns, dictionary-encoded
    custom strings (`strings` + 19 indexes per record in `custom_idx`), and the object chunks they are of
    (`parts`, each with its Kentik device)."""

    SCHEMA: ClassVar[str] = "kflow_batch"
    bucket: str
    flow_count: int  # kflow records
    columns: dict  # KFLOW_COLUMNS -> numpy array (strings: list)
    parts: list  # KflowPart, at least one
    replay: bool = False
    source: str = ""

    key = property(lambda self: self.parts[0].key)
    etag = property(lambda self: self.parts[0].etag)
    chunk = property(lambda self: self.parts[0].chunk)
    chunks = property(lambda self: self.parts[0].chunks)
    device_name = property(lambda self: self.parts[0].device_name)
    subnet_id = property(lambda self: self.parts[0].subnet_id)
    region = property(lambda self: self.parts[0].region)
    zone = property(lambda self: self.parts[0].zone)
    source_flows = property(lambda self: sum(p.source_flows for p in self.parts))
    skey = property(lambda self: self.parts[0].skey)

    def to_avro(self) -> dict:
        return {"bucket": self.bucket, "flow_count": self.flow_count, **packed.pack_kflow_columns(self.columns),
                "parts": [_as_dict(p, skip=("replay", "source")) for p in self.parts], "replay": self.replay,
                "source": self.source}

    @classmethod
    def from_avro(cls, record: dict) -> "KflowChunk":
        replay, source = record["replay"], record["source"]
        return cls(record["bucket"], record["flow_count"],
                   packed.unpack_kflow_columns(record, record["flow_count"], CUSTOMS_PER_FLOW),
                   [KflowPart(**p, replay=replay, source=source) for p in record["parts"]], replay, source)

    def slice(self, start: int, stop: int) -> dict:
        """Columns of records [start, stop) (for a 413 split): views of the decoded numpy columns, no copy."""
        part: dict[str, Any] = {c: self.columns[c][start:stop] for c in KFLOW_INT_COLUMNS}
        part.update(strings=self.columns["strings"], flow_count=stop - start,
                    custom_idx=self.columns["custom_idx"][start * CUSTOMS_PER_FLOW:stop * CUSTOMS_PER_FLOW])
        return part


def part_object(chunk: "FlowChunk | KflowChunk", part: "FlowPart | KflowPart") -> ObjectRef:
    """The object one part of a message stands for (bucket and source are the message's): e.g. to quarantine
    that object alone."""
    return ObjectRef(chunk.bucket, part.key, part.etag, part.size, part.last_modified, source=chunk.source)


def _as_dict(part, skip: tuple[str, ...] = ()) -> dict:
    return {name: getattr(part, name) for name in _names(type(part)) if name not in skip}
