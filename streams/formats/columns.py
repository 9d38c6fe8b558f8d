"""Packed columns of the `flows` and `kflow` batch messages (schemas flow_batch / kflow_batch).

Each integer column is one Avro `bytes` value holding a little-endian fixed-width array (the widths are in
FLOW_INT_TYPES / KFLOW_INT_TYPES and in the schema docs). Each string column of the IBM record is one Avro
`string`: its values joined by NUL (the parser admits only RFC 3339 times, IPv4 addresses and enum words, so no
value holds one; the encoder checks). One value per column instead of an Avro array of strings: fastavro's
per-item cost was most of the old encode and decode. Encoding takes lists or numpy arrays; decoding gives numpy
arrays for the integer columns (read-only, zero-copy views of the message) and lists of str for the strings.
"""
from __future__ import annotations

import sys
from array import array
from itertools import chain
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = [
    "FLOW_INT_TYPES", "FLOW_STRING_COLUMNS", "KFLOW_INT_TYPES", "SEPARATOR", "ColumnError", "as_list",
    "concat", "custom_idx_type", "pack", "pack_flow_columns", "pack_kflow_columns", "unpack",
    "unpack_flow_columns", "unpack_kflow_columns",
]

FLOW_STRING_COLUMNS = ("start_time", "end_time", "connection_start_time", "direction", "action",
                       "initiator_ip", "target_ip")
_COUNTS = ("bytes_from_initiator", "packets_from_initiator", "bytes_from_target", "packets_from_target",
           "cumulative_bytes_from_initiator", "cumulative_packets_from_initiator",
           "cumulative_bytes_from_target", "cumulative_packets_from_target")
FLOW_INT_TYPES = {"initiator_port": "<u2", "target_port": "<u2", "transport_protocol": "<u1",
                  "was_initiated": "?", "was_terminated": "?", **{name: "<i8" for name in _COUNTS}}
# the CHF fields (streams/formats/kflow/kflow.py) are Int64 timestamp, UInt32 addresses/ports/protocol, UInt64 counts;
# ports and protocol come from IBM records (0-65535, 0-255), so they are packed narrower (a kflow message stays small)
KFLOW_INT_TYPES = {"timestamp": "<i8", "src_addr": "<u4", "dst_addr": "<u4", "src_port": "<u2", "dst_port": "<u2",
                   "protocol": "<u1", "in_bytes": "<u8", "in_pkts": "<u8", "out_bytes": "<u8", "out_pkts": "<u8"}
# array("I", list) is about twice as fast as np.fromiter for uint32; not for other widths
_ARRAY_CODES = {"<u4": "I"} if sys.byteorder == "little" and array("I").itemsize == 4 else {}
SEPARATOR = "\0"  # between the values of a string column: the parser admits no value that holds it


class ColumnError(ValueError):
    """A packed column that does not fit its message (wrong length, index out of range); says which."""


def pack(values: Any, dtype: str, name: str = "", count: int = -1) -> bytes:
    """Little-endian bytes of `values` (a sequence, an iterator of `count` ints, or a numpy array) as `dtype`."""
    if isinstance(values, np.ndarray):
        if values.size and dtype != "?" and not np.can_cast(values.dtype, dtype):
            limits = np.iinfo(dtype)
            if values.min() < limits.min or values.max() > limits.max:
                raise ColumnError(f"column {name!r} has a value out of range for {dtype}")
        return values.astype(dtype, copy=False).tobytes()
    code = _ARRAY_CODES.get(dtype)
    try:
        if code and isinstance(values, list):
            return array(code, values).tobytes()
        return np.fromiter(values, dtype, len(values) if count < 0 else count).tobytes()
    except OverflowError:
        raise ColumnError(f"column {name!r} has a value out of range for {dtype}") from None


def unpack(raw: bytes, dtype: str, count: int, name: str) -> np.ndarray:
    """The `count` values of column `name` packed in `raw` (a read-only view of it, no copy)."""
    size = np.dtype(dtype).itemsize
    if len(raw) != count * size:
        raise ColumnError(f"column {name!r} has {len(raw)} bytes, expected {count} values of {size} bytes")
    return np.frombuffer(raw, dtype)


def as_list(column: Any) -> Any:
    """A numpy column as a list (converted in C), for code that reads Python sequences; other columns as they are."""
    return column.tolist() if isinstance(column, np.ndarray) else column


def concat(pieces: Sequence) -> Any:
    """Pieces of one column (lists or numpy arrays) one after the other: a numpy array if any piece is one."""
    if len(pieces) == 1:
        return pieces[0]
    if any(isinstance(p, np.ndarray) for p in pieces):
        return np.concatenate(pieces)
    return list(chain.from_iterable(pieces))


# ------------------------------------------------------------------------------------------------ flows
def pack_flow_columns(columns: Mapping[str, Any]) -> dict:
    """The Avro `columns` value (FlowColumns) of IBM flow columns (lists or numpy arrays; {} = no flows)."""
    if not columns:
        return {**{name: "" for name in FLOW_STRING_COLUMNS}, **{name: b"" for name in FLOW_INT_TYPES}}
    out: dict[str, Any] = {}
    for name in FLOW_STRING_COLUMNS:
        values = columns[name]
        out[name] = joined = SEPARATOR.join(values)
        if joined.count(SEPARATOR) != max(len(values) - 1, 0):
            raise ColumnError(f"column {name!r} has a value with a NUL character, which separates its values")
    for name, dtype in FLOW_INT_TYPES.items():
        out[name] = pack(columns[name], dtype, name)
    return out


def unpack_flow_columns(packed: Mapping[str, Any], count: int) -> dict:
    """IBM flow columns of `count` flows from the Avro `columns` value: lists of str, numpy integer arrays."""
    out: dict[str, Any] = {}
    for name in FLOW_STRING_COLUMNS:
        out[name] = values = packed[name].split(SEPARATOR) if count else []
        if len(values) != count:
            raise ColumnError(f"column {name!r} has {len(values)} values, expected {count}")
    for name, dtype in FLOW_INT_TYPES.items():
        out[name] = unpack(packed[name], dtype, count, name)
    return out


# ------------------------------------------------------------------------------------------------ kflow
def custom_idx_type(strings: int) -> str:
    """The width of custom_idx: uint16 while it indexes at most 65,536 strings, else uint32."""
    return "<u2" if strings <= 1 << 16 else "<u4"


def pack_kflow_columns(columns: Mapping[str, Any]) -> dict:
    """The Avro fields (KflowBatch) of kflow columns: the KFLOW_INT_TYPES and custom_idx packed, strings as is."""
    out: dict[str, Any] = {name: pack(columns.get(name, ()), dtype, name) for name, dtype in KFLOW_INT_TYPES.items()}
    out["strings"] = strings = list(columns.get("strings", ()))
    out["custom_idx"] = pack(columns.get("custom_idx", ()), custom_idx_type(len(strings)), "custom_idx")
    return out


def unpack_kflow_columns(record: Mapping[str, Any], count: int, customs: int) -> dict:
    """kflow columns of `count` records (`customs` string indexes each) from the Avro fields."""
    out: dict[str, Any] = {name: unpack(record[name], dtype, count, name) for name, dtype in KFLOW_INT_TYPES.items()}
    strings = record["strings"]
    idx = unpack(record["custom_idx"], custom_idx_type(len(strings)), count * customs, "custom_idx")
    if idx.size and int(idx.max()) >= len(strings):
        raise ColumnError(f"column 'custom_idx' has an index past the {len(strings)} strings")
    out["strings"], out["custom_idx"] = strings, idx
    return out
