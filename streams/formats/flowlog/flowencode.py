"""One object's flows as `flows` messages, made while the object streams in (streams/formats/flowlog/flowdecode.py), in
bounded memory whatever its size.

An object's chunks are provisional until its last byte is read: its header (JSON allows it after
`flow_logs`), its chunk total and its verdict are known only then, and nothing of a bad object may be
delivered. So every chunk is encoded as soon as it is decoded (Avro columns, about 125 bytes a flow against
about 600 of JSON and several times that as Python objects) and only those bytes are held; the messages are
made around them at the end (`FlowChunk.encode_around`), when the object is known to be good. The first chunk
stays as columns until a second one comes: an object of one chunk is packed with the other small objects of
its group (`pack`), an object of several chunks has a message per chunk (`object_messages`).

Pure: `read_object` (byte chunks → ObjectFlows), `object_messages`, `pack`, `encode_packed` (pack and encode,
an object whose record cannot be encoded set apart with the reason: it alone is dead-lettered).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Iterable, Iterator

from streams.formats.flowlog.flowdecode import FlowStream, Limits
from streams.formats.batches import FlowChunk, FlowPart
from streams.formats.records import ObjectRef

try:
    from isal import isal_zlib as _zlib  # ISA-L: level 1 about 4x faster than zlib's, as small
except ImportError:  # pragma: no cover - isal is a dependency; zlib keeps working without it
    import zlib as _zlib

HELD_LEVEL = 1  # the held chunks, compressed: Avro columns shrink about 4x for ~15 % of the decode's CPU


@dataclass
class ObjectFlows:
    """A good object read to its end: header, flows, and either the columns of its one chunk or the encoded
    columns of each of its chunks (neither in a dry run: nothing is kept)."""

    ref: ObjectRef
    header: dict
    flow_count: int
    columns: dict | None = None  # one chunk (None: no flows, or several chunks, or not kept)
    encoded: list = field(default_factory=list)  # several chunks: (flows, encode_columns bytes compressed)


def read_object(ref: ObjectRef, byte_chunks: Iterable[bytes], chunk_flows: int, limits: Limits,
                keep: bool = True) -> ObjectFlows:
    """Decode and check one object as it downloads (raises FlowLogError for a bad one); `keep`: hold its
    flows for publishing (a dry run only counts them)."""
    stream = FlowStream(byte_chunks, chunk_flows=chunk_flows, limits=limits)
    first, encoded = None, []
    for columns in stream:
        if not keep:
            continue
        if first is None and not encoded:
            first = columns
            continue
        if first is not None:
            encoded.append(_encoded(first))
            first = None
        encoded.append(_encoded(columns))
    return ObjectFlows(ref, stream.header, stream.flow_count, first if stream.flow_count else None, encoded)


def _encoded(columns: dict) -> tuple[int, bytes]:
    return len(columns["direction"]), _zlib.compress(FlowChunk.encode_columns(columns), HELD_LEVEL)


def object_messages(obj: ObjectFlows) -> Iterator[bytes]:
    """The messages of an object of several chunks, one per chunk, made one at a time as they are taken;
    each chunk's held bytes are let go as its message is made."""
    ref, header, total = obj.ref, obj.header, len(obj.encoded)
    for number in range(total):
        count, held = obj.encoded[number]
        obj.encoded[number] = None
        chunk = FlowChunk.of(ref, header, number, total, None)
        chunk.flow_count = count
        chunk.parts = [FlowPart(ref.key, ref.etag, ref.size, ref.last_modified, header, number, total, 0, count)]
        yield chunk.encode_around(_zlib.decompress(held))
    obj.encoded = []


def pack(objects: list[ObjectFlows], chunk_flows: int) -> list[FlowChunk]:
    """The FlowChunk records of a group's objects of one chunk each (an empty object: one empty chunk):
    consecutive objects share a message while it holds at most `chunk_flows` flows."""
    messages: list[FlowChunk] = []
    pending: list = []
    flows = 0
    for obj in objects:
        count = obj.flow_count if obj.columns else 0
        if pending and flows + count > chunk_flows:
            messages.append(packed(pending))
            pending, flows = [], 0
        pending.append(obj)
        flows += count
    if pending:
        messages.append(packed(pending))
    return messages


def encode_packed(objects: list[ObjectFlows], chunk_flows: int) -> tuple[list[bytes], list]:
    """The encoded messages of `pack(objects)`, and (object, reason) of each object whose record cannot be
    encoded (e.g. a header value outside its Avro type): a message that fails is encoded again object by
    object, so only the object that caused the failure is set apart and the others of its message go on."""
    messages, bad = [], []
    for chunk in pack(objects, chunk_flows):
        try:
            messages.append(chunk.encode())
            continue
        except Exception:  # noqa: BLE001 - attributed below, object by object
            pass
        members = [obj for obj in objects if any(p.key == obj.ref.key and p.etag == obj.ref.etag
                                                 for p in chunk.parts)]
        good = []
        for obj in members:
            why = encode_failure(packed([obj]))
            if why:
                bad.append((obj, why))
            else:
                good.append(obj)
        for chunk_of_good in pack(good, chunk_flows):
            messages.append(chunk_of_good.encode())
    return messages, bad


def envelope_failure(obj: ObjectFlows) -> str:
    """Why the messages of an object of several chunks could not be encoded ("" when they can): its record
    without columns is encoded once before any of its chunks is sent, so nothing of it goes out half."""
    probe = FlowChunk.of(obj.ref, obj.header, 0, max(1, len(obj.encoded)), None)
    probe.parts = [FlowPart(obj.ref.key, obj.ref.etag, obj.ref.size, obj.ref.last_modified, obj.header, 0,
                            max(1, len(obj.encoded)), 0, 0)]
    return encode_failure(probe)


def encode_failure(chunk: FlowChunk) -> str:
    try:
        chunk.encode()
    except Exception as exc:  # noqa: BLE001 - the reason is the value
        return f"its flows message could not be encoded: {exc!r}"
    return ""


def packed(objects: list[ObjectFlows]) -> FlowChunk:
    """One message carrying the one chunk of each of `objects`, in order; its top-level identity is the
    first object's."""
    parts, blocks, start = [], [], 0
    for obj in objects:
        ref, count = obj.ref, obj.flow_count if obj.columns else 0
        parts.append(FlowPart(ref.key, ref.etag, ref.size, ref.last_modified, obj.header, 0, 1, start, count))
        if count:
            blocks.append(obj.columns)
        start += count
    message = FlowChunk.of(objects[0].ref, objects[0].header, 0, 1, None)
    message.columns, message.flow_count, message.parts = concat_columns(blocks), start, parts
    return message


def concat_columns(blocks: list[dict]) -> dict:
    """Columns of several row blocks with the same column names, one after the other."""
    if len(blocks) <= 1:
        return blocks[0] if blocks else {}
    return {name: list(chain.from_iterable(block[name] for block in blocks)) for name in blocks[0]}
