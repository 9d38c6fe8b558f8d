"""FROZEN reference: streams/formats/flowlog/flowlog.py as it was before streaming decode (commit 8b021f9), kept only
as the oracle of tests/unit/formats/flowlog/test_flowlog_equivalence.py and benchmarks/parse_bench.py (old vs new). Do not use it in
the product and do not change it: the new decoder must give the same columns and the same stage for every object.
"""
from __future__ import annotations

import re
import zlib
from datetime import datetime
from operator import itemgetter
from typing import Any, Iterable, Iterator, NamedTuple
from urllib.parse import unquote

import orjson

__all__ = [
    "FlowLogError", "ObjectKeyInfo", "FlowDocument", "parse_object_key", "parse_object_bytes",
    "iter_chunks", "chunk_count", "FLOW_FIELDS", "HEADER_FIELDS", "KEY_PREFIX", "DEFAULT_MAX_BYTES",
    "parse_rfc3339", "epoch_seconds",
]

KEY_PREFIX = "ibm_vpc_flowlogs_v1"
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
STAGES = ("key", "download", "decompress", "json", "validate")


class FlowLogError(Exception):
    """A flow-log object that cannot be used; `stage` says where it failed, `reason` why (human words)."""

    def __init__(self, stage: str, reason: str):
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason


# ------------------------------------------------------------------------------------------------ key
class ObjectKeyInfo(NamedTuple):
    """The fields of a v1 flow-log object key (values unquoted) plus ids derived from the CRNs."""

    account: str
    region: str
    vpc_crn: str
    subnet_crn: str
    endpoint_type: str
    instance_crn: str
    vnic_id: str
    record_type: str
    year: int
    month: int
    day: int
    hour: int
    stream_id: str
    sequence: int
    vpc_id: str
    subnet_id: str
    instance_id: str
    subnet_zone: str
    key: str


_KEY_SEGMENTS = (
    ("account", "account"), ("region", "region"), ("vpc-id", "vpc_crn"), ("subnet-id", "subnet_crn"),
    ("endpoint-type", "endpoint_type"), ("instance-id", "instance_crn"), ("vnic-id", "vnic_id"),
    ("record-type", "record_type"), ("year", "year"), ("month", "month"), ("day", "day"), ("hour", "hour"),
    ("stream-id", "stream_id"),
)
_RECORD_TYPES = frozenset(("ingress", "egress", "all"))
_FILE_RE = re.compile(r"(\d+)\.gz")


def _crn_id(value: str) -> str:
    return value.rsplit(":", 1)[-1]


def _crn_location(value: str) -> str:
    parts = value.split(":")
    return parts[5] if len(parts) >= 10 and parts[0] == "crn" else ""


def parse_object_key(key: str) -> ObjectKeyInfo:
    """Parse a v1 flow-log object key; anything else raises FlowLogError(stage="key")."""
    if not isinstance(key, str) or not key:
        raise FlowLogError("key", "object key is empty")
    segments = key.split("/")
    prefix = segments[0]
    if prefix != KEY_PREFIX:
        if prefix.startswith("ibm_vpc_flowlogs_v"):
            raise FlowLogError("key", f"unsupported flow-log key layout '{prefix}/' (only '{KEY_PREFIX}/' "
                                      "is supported)")
        raise FlowLogError("key", f"not a flow-log object: key does not start with '{KEY_PREFIX}/'")
    if len(segments) < 3:
        raise FlowLogError("key", "flow-log key has no name=value segments")
    filename = segments[-1]
    values: dict[str, str] = {}
    last = None
    for seg in segments[1:-1]:
        name, eq, value = seg.partition("=")
        if not eq:
            # A raw '/' inside a CRN ("a/<account>") when the key was not percent-encoded: glue it back.
            if last is None:
                raise FlowLogError("key", f"flow-log key segment '{seg}' is not of the form name=value")
            values[last] += "/" + unquote(seg)
            continue
        if name in values:
            raise FlowLogError("key", f"flow-log key repeats the segment '{name}='")
        values[name] = unquote(value)
        last = name
    missing = [n for n, _ in _KEY_SEGMENTS if n not in values]
    if missing:
        raise FlowLogError("key", "flow-log key lacks the segment(s) " + ", ".join(f"'{m}='" for m in missing))
    fields = {attr: values[name] for name, attr in _KEY_SEGMENTS}
    for name, attr in _KEY_SEGMENTS:
        if not fields[attr]:
            raise FlowLogError("key", f"flow-log key has an empty '{name}=' segment")
    if fields["record_type"] not in _RECORD_TYPES:
        raise FlowLogError("key", f"flow-log key has record-type '{fields['record_type']}', expected "
                                  "ingress, egress or all")
    nums = {}
    for attr, lo, hi in (("year", 1970, 9999), ("month", 1, 12), ("day", 1, 31), ("hour", 0, 23)):
        v = fields[attr]
        if not v.isdigit() or not lo <= int(v) <= hi:
            raise FlowLogError("key", f"flow-log key has {attr}={v!r}, expected a number {lo}-{hi}")
        nums[attr] = int(v)
    m = _FILE_RE.fullmatch(filename)
    if not m:
        raise FlowLogError("key", f"flow-log key ends in '{filename}', expected a sequence number like "
                                  "'00000001.gz'")
    return ObjectKeyInfo(
        account=fields["account"], region=fields["region"], vpc_crn=fields["vpc_crn"],
        subnet_crn=fields["subnet_crn"], endpoint_type=fields["endpoint_type"],
        instance_crn=fields["instance_crn"], vnic_id=fields["vnic_id"], record_type=fields["record_type"],
        year=nums["year"], month=nums["month"], day=nums["day"], hour=nums["hour"],
        stream_id=fields["stream_id"], sequence=int(m.group(1)),
        vpc_id=_crn_id(fields["vpc_crn"]), subnet_id=_crn_id(fields["subnet_crn"]),
        instance_id=_crn_id(fields["instance_crn"]), subnet_zone=_crn_location(fields["subnet_crn"]),
        key=key,
    )


# ------------------------------------------------------------------------------------------- document
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
_GET_ALL = itemgetter(*FLOW_FIELDS)

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")
_TS_RE = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-]\d\d:\d\d)")


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


class FlowDocument:
    """A parsed flow-log document: header attributes plus `columns` (one list per flow field)."""

    __slots__ = HEADER_FIELDS + ("columns", "flow_count", "decompressed_size")

    def __init__(self, header: dict, columns: dict[str, list], flow_count: int, decompressed_size: int = 0):
        for name in HEADER_FIELDS:
            setattr(self, name, header[name])
        self.columns = columns
        self.flow_count = flow_count
        self.decompressed_size = decompressed_size

    @property
    def header(self) -> dict:
        """Header fields as a plain dict (the shape of the flow_batch record's `header`)."""
        return {name: getattr(self, name) for name in HEADER_FIELDS}

    @property
    def skipped_data(self) -> bool:
        """True when IBM says flows were lost in this capture interval (state 'skip data')."""
        return self.state.strip().lower() == "skip data"

    def __repr__(self) -> str:
        return f"FlowDocument(flows={self.flow_count}, state={self.state!r}, capture={self.capture_start_time!r})"


def _describe(v: Any) -> str:
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


def _read(chunks: Iterable[bytes], max_bytes: int) -> tuple[bytearray, bool]:
    """Collect (and gunzip if the body starts with 1f 8b) the object's bytes, enforcing max_bytes."""
    out = bytearray()
    it = iter(chunks)
    head = b""
    for chunk in it:  # gather at least two bytes to look at the magic
        if chunk:
            head += bytes(chunk)
            if len(head) >= 2:
                break
    if not head:
        raise FlowLogError("decompress", "object is empty (0 bytes), expected gzip-compressed JSON")
    if head[:2] != b"\x1f\x8b":
        out += head
        for chunk in it:
            out += chunk
            if len(out) > max_bytes:
                raise FlowLogError("decompress", f"object body is larger than the limit of {max_bytes} bytes")
        if len(out) > max_bytes:
            raise FlowLogError("decompress", f"object body is larger than the limit of {max_bytes} bytes")
        return out, False

    def limit_error() -> FlowLogError:
        return FlowLogError("decompress", f"decompressed size exceeds the limit of {max_bytes} bytes "
                                          "(gzip bomb or far larger object than normal)")

    d = zlib.decompressobj(31)
    tail = b""  # bytes after the end of a gzip member, not yet classified
    padded = False  # saw zero padding after the last member

    def garbage(rest: bytes) -> FlowLogError:
        return FlowLogError("decompress", "unexpected data after the end of the gzip stream "
                                          f"(starts with {rest[:8].hex(' ')})")

    def feed(data: bytes) -> None:
        nonlocal d, tail, padded
        while data:
            if d.eof:
                tail += data
                data = b""
                if padded:
                    if tail.strip(b"\x00"):
                        raise garbage(tail)
                    tail = b""
                    return
                if len(tail) < 2:
                    return
                if tail[:2] == b"\x1f\x8b":  # another gzip member (concatenated gzip is valid gzip)
                    d = zlib.decompressobj(31)
                    data, tail = tail, b""
                    continue
                if tail.strip(b"\x00"):
                    raise garbage(tail)
                padded, tail = True, b""  # zero padding is tolerated, as gzip(1) does
                return
            try:
                piece = d.decompress(data, max_bytes - len(out) + 1)
            except zlib.error as exc:
                raise FlowLogError("decompress", f"corrupt gzip data: {exc}") from None
            out.extend(piece)
            if len(out) > max_bytes:
                raise limit_error()
            data = d.unused_data if d.eof else d.unconsumed_tail

    feed(head)
    for chunk in it:
        feed(chunk)
    if tail.strip(b"\x00"):
        raise garbage(tail)
    if not d.eof:
        try:
            out.extend(d.flush())
        except zlib.error as exc:
            raise FlowLogError("decompress", f"corrupt gzip data: {exc}") from None
        if len(out) > max_bytes:
            raise limit_error()
        if not d.eof:
            raise FlowLogError("decompress", f"truncated gzip: the stream ended early after {len(out)} "
                                             "decompressed bytes (incomplete upload or download?)")
    return out, True


def _header(doc: dict) -> dict:
    h = {}
    v = doc.get("version")
    if not isinstance(v, str):
        raise FlowLogError("validate", "header field 'version' is missing" if "version" not in doc
                           else f"header field 'version' is {_describe(v)}, expected a string")
    for name in HEADER_FIELDS:
        if name == "number_of_flow_logs":
            n = doc.get(name, 0)
            if type(n) is not int or n < 0:
                raise FlowLogError("validate", f"header field 'number_of_flow_logs' is {_describe(n)}, "
                                               "expected an integer >= 0")
            h[name] = n
            continue
        val = doc.get(name, "")
        if val is None:
            val = ""
        if not isinstance(val, str):
            raise FlowLogError("validate", f"header field '{name}' is {_describe(val)}, expected a string")
        h[name] = val
    for name in ("capture_start_time", "capture_end_time"):
        if h[name] and parse_rfc3339(h[name]) is None:
            raise FlowLogError("validate", f"header field '{name}' is {_describe(h[name])}, expected an "
                                           "RFC 3339 timestamp")
    return h


def _check_value(name: str, v: Any) -> str | None:
    """Why value v is not acceptable for flow field `name` (None when it is fine)."""
    if name in _INT_LIMITS:
        hi = _INT_LIMITS[name]
        if type(v) is not int or v < 0 or v > hi:
            return f"{name} is {_describe(v)}, expected {_INT_WORDS.get(name, 'an integer >= 0')}"
    elif name in _BOOL_FIELDS:
        if type(v) is not bool:
            return f"{name} is {_describe(v)}, expected true or false"
    elif name in _IP_FIELDS:
        if type(v) is not str or not _IPV4_RE.fullmatch(v):
            return f"{name} is {_describe(v)}, expected a dotted IPv4 address"
    elif name in _TIME_FIELDS:
        if type(v) is not str or not ((v == "" and name in _EMPTY_OK) or parse_rfc3339(v) is not None):
            extra = ' (or "")' if name in _EMPTY_OK else ""
            return f"{name} is {_describe(v)}, expected an RFC 3339 timestamp{extra}"
    else:
        allowed = dict(_STR_ENUMS)[name]
        if type(v) is not str or v not in allowed:
            return f"{name} is {_describe(v)}, expected " + " or ".join(repr(a) for a in allowed)
    return None


def _find_problem(flows: list, header: dict) -> str:
    """Walk flows one by one to name the first problem (slow path, only after the fast path failed)."""
    for i, fl in enumerate(flows):
        if not isinstance(fl, dict):
            return f"flow {i} is {_describe(fl)}, expected a JSON object"
        for name in FLOW_FIELDS:
            if name not in fl:
                return f"flow {i}: required field '{name}' is missing"
            why = _check_value(name, fl[name])
            if why:
                return f"flow {i}: {why}"
        for name, hname in (("start_time", "capture_start_time"), ("end_time", "capture_end_time")):
            if fl[name] == "" and not header[hname]:
                return f"flow {i}: {name} is empty and the header has no {hname} to fall back to"
    return "a flow record failed validation"  # pragma: no cover - fast and slow checks agree


def _columns(flows: list, header: dict) -> dict[str, list] | None:
    """Fast columnar extraction + validation; None means "something is wrong, run the slow path"."""
    n = len(flows)
    if n == 0:
        return {name: [] for name in FLOW_FIELDS}
    try:
        rows = list(map(_GET_ALL, flows))
    except (KeyError, TypeError, IndexError):
        return None
    cols = dict(zip(FLOW_FIELDS, map(list, zip(*rows))))
    int_type = {int}
    for name, hi in _INT_LIMITS.items():
        c = cols[name]
        if set(map(type, c)) != int_type or min(c) < 0 or max(c) > hi:
            return None
    bool_ok = {bool}
    for name in _BOOL_FIELDS:
        if not set(map(type, cols[name])) <= bool_ok:
            return None
    try:
        for name, allowed in _STR_ENUMS:
            for v in set(cols[name]):
                if type(v) is not str or v not in allowed:
                    return None
        ips = set(cols["initiator_ip"])
        ips.update(cols["target_ip"])
        match = _IPV4_RE.fullmatch
        for v in ips:
            if type(v) is not str or not match(v):
                return None
        for name in _TIME_FIELDS:
            for v in set(cols[name]):
                if type(v) is not str:
                    return None
                if v == "":
                    if name not in _EMPTY_OK:
                        return None
                    if not header["capture_start_time" if name == "start_time" else "capture_end_time"]:
                        return None
                elif epoch_seconds(v) is None:
                    return None
    except TypeError:  # unhashable value (array/object) in a string column
        return None
    return cols


def parse_object_bytes(chunks: Iterable[bytes], *, max_bytes: int = DEFAULT_MAX_BYTES) -> FlowDocument:
    """Decompress (if gzip), parse and validate one flow-log object streamed as byte chunks."""
    body, was_gzip = _read(chunks, max_bytes)
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if was_gzip:
            raise FlowLogError("json", f"decompressed body is not valid JSON: {exc}") from None
        if not body.strip():
            raise FlowLogError("decompress", "object body is blank, expected gzip-compressed JSON")
        raise FlowLogError("decompress", f"object is neither gzip (no 1f 8b magic; starts with "
                                         f"{bytes(body[:8]).hex(' ')}) nor JSON ({exc})") from None
    size = len(body)
    del body
    if not isinstance(doc, dict):
        raise FlowLogError("validate", f"document is {_describe(doc)}, expected a JSON object")
    if "flow_logs" not in doc:
        raise FlowLogError("validate", "document has no 'flow_logs' field")
    flows = doc["flow_logs"]
    if flows is None:
        flows = []
    if not isinstance(flows, list):
        raise FlowLogError("validate", f"'flow_logs' is {_describe(flows)}, expected an array")
    header = _header(doc)
    cols = _columns(flows, header)
    if cols is None:
        raise FlowLogError("validate", _find_problem(flows, header))
    return FlowDocument(header, cols, len(flows), size)


def chunk_count(flow_count: int, max_flows: int = 2000) -> int:
    """How many chunks iter_chunks yields for that many flows (at least 1, even for an empty object)."""
    return max(1, -(-flow_count // max_flows))


def iter_chunks(doc: FlowDocument, max_flows: int = 2000) -> Iterator[dict[str, list]]:
    """Yield the document's columns in slices of at most max_flows flows.

    An empty document yields exactly one empty slice, so every object produces >= 1 chunk downstream.
    """
    if max_flows < 1:
        raise ValueError("max_flows must be >= 1")
    cols = doc.columns
    n = doc.flow_count
    if n <= max_flows:
        yield cols
        return
    for start in range(0, n, max_flows):
        end = start + max_flows
        yield {name: c[start:end] for name, c in cols.items()}
