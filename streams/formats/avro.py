"""Avro encoding of blueflow's Kafka messages (schemas in schemas/*.avsc), with self-describing framing.

Two framings, both understood by `Codec.decode`:
- Avro single-object encoding (no registry): ``C3 01`` + 8-byte little-endian CRC-64-AVRO fingerprint of the
  writer schema's Parsing Canonical Form + the Avro binary body.
- Confluent wire format (with a schema registry): ``00`` + 4-byte big-endian registry schema id + body.
The writer schema is found by fingerprint (every schemas/*.avsc is known; another writer schema, e.g. an
older one, is made known by a Codec of it) or by registry id, and resolved to the codec's (reader)
schema, so readers keep working while schemas evolve compatibly (fields added with a default). Schemas are
parsed once; encode/decode are a BytesIO plus fastavro.
"""
from __future__ import annotations

import json
import struct
from functools import lru_cache
from io import BytesIO
from typing import Any, Callable, Mapping

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.read import SchemaResolutionError
from fastavro.schema import fingerprint as schema_fingerprint, to_parsing_canonical_form

from schemas import SCHEMA_DIR

__all__ = [
    "AvroDecodeError", "Codec", "SINGLE_OBJECT_MAGIC", "fingerprint", "load_schema", "SCHEMA_NAMES",
]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = 0
SCHEMA_NAMES = ("object_ref", "flow_batch", "kflow_batch", "deadletter", "ledger", "vpc_metadata")


class AvroDecodeError(ValueError):
    """A message that cannot be decoded; `reason` says why in words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# ------------------------------------------------------------------------------------ fingerprints
def fingerprint(schema: Any) -> bytes:
    """8-byte little-endian CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form (fastavro's)."""
    return bytes.fromhex(schema_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


# --------------------------------------------------------------------------------------- registry
class _Known:
    __slots__ = ("raw", "parsed", "fp", "fullname")

    def __init__(self, raw: Any):
        self.raw = raw
        self.parsed = parse_schema(raw)
        self.fp = fingerprint(raw)
        self.fullname = self.parsed.get("name", "") if isinstance(self.parsed, dict) else str(self.parsed)


_BY_FP: dict[bytes, _Known] = {}
_BY_REGISTRY_ID: dict[int, _Known] = {}


@lru_cache(maxsize=None)
def _load_known(name: str) -> _Known:
    path = SCHEMA_DIR / f"{name}.avsc"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"unknown Avro schema {name!r} (no {path.name} in {SCHEMA_DIR})") from None
    known = _Known(raw)
    _BY_FP.setdefault(known.fp, known)
    return known


def load_schema(name: str) -> dict:
    """The raw (JSON) schema of schemas/<name>.avsc."""
    return _load_known(name).raw


def _ensure_all_loaded() -> None:
    for name in SCHEMA_NAMES:
        _load_known(name)
    for path in sorted(SCHEMA_DIR.glob("*.avsc")):
        _load_known(path.stem)


# ------------------------------------------------------------------------------------------ codec
class Codec:
    """Encode/decode records of one schema (by name in schemas/, or a schema dict).

    `registry_id` switches encoding to the Confluent wire format with that id. `schema_lookup(id)` (optional)
    resolves registry ids no Codec was made with (e.g. via a registry client).
    """

    def __init__(self, schema: str | Mapping, registry_id: int | None = None,
                 schema_lookup: Callable[[int], Any] | None = None):
        _ensure_all_loaded()
        if isinstance(schema, str):
            self.name = schema
            known = _load_known(schema)
        else:
            known = _Known(dict(schema))
            _BY_FP.setdefault(known.fp, known)
            self.name = known.fullname
        self.schema = known.raw
        self.parsed = known.parsed
        self.fingerprint = known.fp
        self.registry_id = registry_id
        self._lookup = schema_lookup
        if registry_id is not None:
            if not 0 <= registry_id < 2 ** 31:
                raise ValueError("registry_id must fit in 4 bytes")
            _BY_REGISTRY_ID.setdefault(registry_id, known)
            self._prefix = struct.pack(">bI", CONFLUENT_MAGIC, registry_id)
        else:
            self._prefix = SINGLE_OBJECT_MAGIC + known.fp

    def __repr__(self) -> str:
        return f"Codec({self.name!r}, fingerprint={self.fingerprint.hex()}, registry_id={self.registry_id})"

    def encode(self, record: Mapping) -> bytes:
        bio = BytesIO()
        bio.write(self._prefix)
        schemaless_writer(bio, self.parsed, record)
        return bio.getvalue()

    def _writer_for_registry_id(self, schema_id: int) -> _Known:
        known = _BY_REGISTRY_ID.get(schema_id)
        if known is None and self._lookup is not None:
            try:
                raw = self._lookup(schema_id)
            except Exception as exc:  # noqa: BLE001 - the lookup's own failure, reported in words
                raise AvroDecodeError(f"could not look up schema registry id {schema_id}: {exc}") from None
            if raw is not None:
                if isinstance(raw, str):
                    raw = json.loads(raw)
                known = _Known(raw)
                _BY_REGISTRY_ID[schema_id] = known
        if known is None:
            raise AvroDecodeError(f"unknown schema registry id {schema_id} (Confluent framing); "
                                  f"this reader expects {self.name}")
        return known

    def decode(self, data: bytes) -> dict:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise AvroDecodeError(f"message value is {type(data).__name__}, expected bytes")
        n = len(data)
        if n == 0:
            raise AvroDecodeError("message is empty")
        head = bytes(data[:2])
        if head == SINGLE_OBJECT_MAGIC:
            if n < 10:
                raise AvroDecodeError("message is truncated: single-object header needs 10 bytes")
            fp = bytes(data[2:10])
            writer = _BY_FP.get(fp)
            if writer is None:
                raise AvroDecodeError(f"unknown schema fingerprint {fp.hex()} (single-object encoding); "
                                      f"this reader expects {self.name} ({self.fingerprint.hex()})")
            offset = 10
        elif data[0] == CONFLUENT_MAGIC:
            if n < 5:
                raise AvroDecodeError("message is truncated: Confluent header needs 5 bytes")
            writer = self._writer_for_registry_id(struct.unpack_from(">I", data, 1)[0])
            offset = 5
        else:
            raise AvroDecodeError(f"bad magic {head.hex(' ')}: neither Avro single-object encoding (c3 01) "
                                  "nor Confluent framing (00)")
        bio = BytesIO(data)
        bio.seek(offset)
        try:
            record = schemaless_reader(bio, writer.parsed, None if writer.fp == self.fingerprint else self.parsed)
        except EOFError:
            raise AvroDecodeError(f"message body is truncated ({n - offset} bytes after the header)") from None
        except Exception as exc:  # noqa: BLE001 - fastavro raises many kinds; say what happened
            if isinstance(exc, SchemaResolutionError):
                raise AvroDecodeError(f"written with schema {writer.fullname} ({writer.fp.hex()}), which "
                                      f"cannot be read as {self.name}: {exc}") from None
            raise AvroDecodeError(f"message body is corrupt or truncated: {type(exc).__name__}: {exc}") from None
        if bio.tell() != n:
            raise AvroDecodeError(f"{n - bio.tell()} unexpected bytes after the record")
        return record


class FieldSplice:
    """Encode one field of a record ahead of the others, then the record around it: `encode(record, field)`
    gives the bytes `codec.encode` gives for the record with that field's value. For a large field known
    before the rest (a flow chunk's columns are decoded before the object's header and chunk total are
    known): only the compact encoded bytes are kept meanwhile. Avro's binary record is its fields' encodings
    one after the other, so the record is cut into the fields before, the field, and the fields after."""

    def __init__(self, codec: Codec, field: str):
        fields = codec.schema["fields"]
        at = next(i for i, f in enumerate(fields) if f["name"] == field)
        space = codec.schema.get("namespace")
        named: dict = {}
        self._prefix = codec._prefix
        self.field = field
        self._parts = [parse_schema({"type": "record", "name": f"{codec.schema['name']}_{part}", "namespace": space,
                                     "fields": selected}, named_schemas=named)
                       for part, selected in (("head", fields[:at]), ("field", [fields[at]]),
                                              ("tail", fields[at + 1:]))]

    def _encode(self, part: int, record: Mapping) -> bytes:
        bio = BytesIO()
        schemaless_writer(bio, self._parts[part], record)
        return bio.getvalue()

    def encode_field(self, value: Any) -> bytes:
        return self._encode(1, {self.field: value})

    def encode(self, record: Mapping, field_bytes: bytes) -> bytes:
        """The record's message with the field's value already encoded (`record[field]` is not read)."""
        return b"".join((self._prefix, self._encode(0, record), field_bytes, self._encode(2, record)))
