"""The batch records of the `flows` and `kflow` topics (FlowChunk, KflowChunk) and the per-object parts they
carry (FlowPart, KflowPart); their columns are packed by streams/formats/columns.py (schema version 4: integer columns
decode to numpy arrays). The other topic records and the Record base are in streams/formats/records.py.

Groups (schema version 2): a `flows` / `kflow` message may carry rows of several objects (`parts`, each with its
own row range and chunk number). Older messages (schemas/history/) are still read: they are one object, one part.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar

from streams.formats.kflow.kflow import INT_COLUMNS, N_CUSTOM
from streams.formats import columns as packed  # the v4 packed columns of the flows/kflow messages
from streams.formats.avro import FieldSplice
from streams.formats.records import ObjectRef, Record, _codec, _names, scoped_key

__all__ = [
    "CUSTOMS_PER_FLOW", "FlowChunk", "FlowPart", "KFLOW_COLUMNS", "KFLOW_INT_COLUMNS", "KflowChunk", "KflowPart",
    "part_object",
]

KFLOW_INT_COLUMNS = INT_COLUMNS  # the integer columns of a kflow batch, defined once in streams.formats.kflow.kflow
KFLOW_COLUMNS = KFLOW_INT_COLUMNS + ("strings", "custom_idx")
CUSTOMS_PER_FLOW = N_CUSTOM  # custom_idx holds 19 string indexes per kflow record (STR00..STR18)


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
