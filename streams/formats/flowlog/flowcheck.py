"""Validation of flow-log documents: the header, and batches of flow records turned into columns.

Pure functions, no I/O. The fast path decodes a batch of records with msgspec into typed structs (types,
integer ranges and enums are checked in C), then checks the string columns per distinct value. Only when
that finds a problem is the batch walked record by record (`find_problem`) to name the first bad flow and
field in the same words as always.
"""
from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "FlowLogError", "FLOW_FIELDS", "HEADER_FIELDS", "describe", "check_header", "find_problem",
    "batch_columns", "parse_rfc3339", "epoch_seconds", "FLOWS_DECODER",
]


class FlowLogError(Exception):
    """A flow-log object that cannot be used; `stage` says where it failed, `reason` why (human words)."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


MAX_HEADER_COUNT = (1 << 63) - 1  # number_of_flow_logs is a hint (never a size), carried as an Avro long
HEADER_FIELDS = (
    "version", "collector_crn", "attached_endpoint_type", "network_interface_id", "instance_crn", "vpc_crn",
    "capture_start_time", "capture_end_time", "state", "number_of_flow_logs",
)
_TIME_FIELDS = ("start_time", "end_time", "connection_start_time")
_STR_ENUMS = (("direction", ("I", "O")), ("action", ("accepted", "rejected")))
_IP_FIELDS = ("initiator_ip", "target_ip")
_PORT_FIELDS = ("initiator_port", "target_port")
_BOOL_FIELDS = ("was_initiated", "was_terminated")
_COUNT_FIELDS = (
    "bytes_from_initiator", "packets_from_initiator", "bytes_from_target", "packets_from_target",
    "cumulative_bytes_from_initiator", "cumulative_packets_from_initiator",
    "cumulative_bytes_from_target", "cumulative_packets_from_target",
)
FLOW_FIELDS = (
    _TIME_FIELDS + ("direction", "action") + _IP_FIELDS + _PORT_FIELDS + ("transport_protocol",)
    + _BOOL_FIELDS + _COUNT_FIELDS
)
_INT_LIMITS = {**{f: 65535 for f in _PORT_FIELDS}, "transport_protocol": 255,
               **{f: (1 << 63) - 1 for f in _COUNT_FIELDS}}
_INT_WORDS = {f: "an integer 0-65535" for f in _PORT_FIELDS}
_INT_WORDS["transport_protocol"] = "an integer 0-255 (IANA protocol number)"
_EMPTY_OK = frozenset(("start_time", "end_time"))

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_TS_RE = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-]\d\d:\d\d)")

# --------------------------------------------------------------------------------------- typed record
_Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
_Count = Annotated[int, msgspec.Meta(ge=0, le=(1 << 63) - 1)]


class _Flow(msgspec.Struct, gc=False):
    """One flow record as msgspec decodes it; unknown fields are ignored (forward compatible)."""

    start_time: str
    end_time: str
    connection_start_time: str
    direction: Literal["I", "O"]
    action: Literal["accepted", "rejected"]
    initiator_ip: str
    target_ip: str
    initiator_port: _Port
    target_port: _Port
    transport_protocol: Annotated[int, msgspec.Meta(ge=0, le=255)]
    was_initiated: bool
    was_terminated: bool
    bytes_from_initiator: _Count
    packets_from_initiator: _Count
    bytes_from_target: _Count
    packets_from_target: _Count
    cumulative_bytes_from_initiator: _Count
    cumulative_packets_from_initiator: _Count
    cumulative_bytes_from_target: _Count
    cumulative_packets_from_target: _Count


assert _Flow.__struct_fields__ == FLOW_FIELDS
FLOWS_DECODER = msgspec.json.Decoder(list[_Flow])  # a JSON array of records -> list of _Flow
_astuple = msgspec.structs.astuple


def parse_rfc3339(value: str) -> datetime | None:
    """Parse an RFC 3339 timestamp (aware datetime) or return None if it is not one."""
    if not _TS_RE.fullmatch(value):
        return None
    try:
        return datetime.fromisoformat(value.upper())
    except ValueError:
        return None


_EPOCHS: dict[str, int | None] = {}
_EPOCHS_MAX = 262144


def epoch_seconds(value: str) -> int | None:
    """Whole epoch seconds of an RFC 3339 timestamp, None if it is not one (bounded memo, shared)."""
    try:
        return _EPOCHS[value]
    except KeyError:
        pass
    dt = parse_rfc3339(value) if type(value) is str else None
    result = None if dt is None else int(dt.timestamp() // 1)
    if len(_EPOCHS) >= _EPOCHS_MAX:
        _EPOCHS.clear()
    _EPOCHS[value] = result
    return result


def describe(v: Any) -> str:
    """A JSON value in operator words ("the string '443'", "null", "an array")."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "the boolean " + ("true" if v else "false")
    if isinstance(v, int):
        return f"the integer {v}"
    if isinstance(v, float):
        return f"the number {v!r}"
    if isinstance(v, str):
        s = v if len(v) <= 60 else v[:57] + "..."
        return "an empty string" if v == "" else f"the string {s!r}"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__


def check_header(doc: dict) -> dict:
    """The header fields of a document (top-level members other than flow_logs), validated."""
    h = {}
    v = doc.get("version")
    if not isinstance(v, str):
        raise FlowLogError("validate", "header field 'version' is missing" if "version" not in doc
                           else f"header field 'version' is {describe(v)}, expected a string")
    for name in HEADER_FIELDS:
        if name == "number_of_flow_logs":
            n = doc.get(name, 0)
            if type(n) is not int or n < 0:
                raise FlowLogError("validate", f"header field 'number_of_flow_logs' is {describe(n)}, "
                                               "expected an integer >= 0")
            if n > MAX_HEADER_COUNT:
                raise FlowLogError("validate", f"header field 'number_of_flow_logs' is {describe(n)}, more than "
                                               f"the largest count carried ({MAX_HEADER_COUNT})")
            h[name] = n
            continue
        val = doc.get(name, "")
        if val is None:
            val = ""
        if not isinstance(val, str):
            raise FlowLogError("validate", f"header field '{name}' is {describe(val)}, expected a string")
        h[name] = val
    for name in ("capture_start_time", "capture_end_time"):
        if h[name] and parse_rfc3339(h[name]) is None:
            raise FlowLogError("validate", f"header field '{name}' is {describe(h[name])}, expected an "
                                           "RFC 3339 timestamp")
    return h


def _check_value(name: str, v: Any) -> str | None:
    """Why value v is not acceptable for flow field `name` (None when it is fine)."""
    if name in _INT_LIMITS:
        hi = _INT_LIMITS[name]
        if type(v) is not int or v < 0 or v > hi:
            return f"{name} is {describe(v)}, expected {_INT_WORDS.get(name, 'an integer >= 0')}"
    elif name in _BOOL_FIELDS:
        if type(v) is not bool:
            return f"{name} is {describe(v)}, expected true or false"
    elif name in _IP_FIELDS:
        if type(v) is not str or not _IPV4_RE.fullmatch(v):
            return f"{name} is {describe(v)}, expected a dotted IPv4 address"
    elif name in _TIME_FIELDS:
        if type(v) is not str or not ((v == "" and name in _EMPTY_OK) or parse_rfc3339(v) is not None):
            extra = ' (or "")' if name in _EMPTY_OK else ""
            return f"{name} is {describe(v)}, expected an RFC 3339 timestamp{extra}"
    else:
        allowed = dict(_STR_ENUMS)[name]
        if type(v) is not str or v not in allowed:
            return f"{name} is {describe(v)}, expected " + " or ".join(repr(a) for a in allowed)
    return None


def find_problem(flows: list, offset: int = 0) -> tuple[int, str] | None:
    """(index, reason) of the first bad record of `flows` (numbered from offset), None if all are fine.

    Slow path, run only after the fast path failed. An empty start_time/end_time counts as fine here: whether
    the header can fill it in is decided once the whole header is known.
    """
    for i, fl in enumerate(flows, offset):
        if not isinstance(fl, dict):
            return i, f"flow {i} is {describe(fl)}, expected a JSON object"
        for name in FLOW_FIELDS:
            if name not in fl:
                return i, f"flow {i}: required field '{name}' is missing"
            why = _check_value(name, fl[name])
            if why:
                return i, f"flow {i}: {why}"
    return None


def batch_columns(flows: list[_Flow]) -> dict[str, list] | None:
    """Columns of a typed batch after the per-distinct-value string checks; None: run find_problem.

    Empty start_time/end_time values are accepted here; the caller tracks where they are (header fallback).
    """
    if not flows:
        return {name: [] for name in FLOW_FIELDS}
    cols = dict(zip(FLOW_FIELDS, map(list, zip(*map(_astuple, flows)))))  # one pass over the records, in C
    ips = set(cols["initiator_ip"])
    ips.update(cols["target_ip"])
    match = _IPV4_RE.fullmatch
    for v in ips:
        if not match(v):
            return None
    times = set(cols["connection_start_time"])
    if "" in times:
        return None
    times.update(cols["start_time"])
    times.update(cols["end_time"])
    times.discard("")
    known = _EPOCHS.get  # memo first: a function call per distinct timestamp is the slow part
    for v in times:
        if known(v) is None and epoch_seconds(v) is None:
            return None
    return cols
