"""IBM Cloud VPC flow-log objects: parse the object key and the gzip'd JSON body into columnar flows.

Pure functions, no I/O. Everything that can be wrong with an object raises `FlowLogError(stage, reason)`
with a sentence a human can act on (stage is one of "key", "download", "decompress", "json", "validate").

A body (an iterable of byte chunks, as connectors.cos.open_object gives them) is read by
`FlowStream(chunks, chunk_flows=..., limits=...)`: streaming, bounded memory whatever the object
(streams/formats/flowlog/flowdecode.py); column chunks come out while the object downloads and are provisional
until the iteration ends without an error; then the stream's `header`, `flow_count` and `chunks` are known.
"""
from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import unquote

from streams.formats.flowlog.flowcheck import (
    FLOW_FIELDS, HEADER_FIELDS, FlowLogError, epoch_seconds, parse_rfc3339,
)
from streams.formats.flowlog.flowdecode import DEFAULT_MAX_OBJECT_BYTES, DEFAULT_MAX_VALUE_BYTES, FlowStream, Limits

__all__ = [
    "FlowLogError", "ObjectKeyInfo", "FlowStream", "Limits", "parse_object_key",
    "FLOW_FIELDS", "HEADER_FIELDS", "KEY_PREFIX", "DEFAULT_MAX_OBJECT_BYTES", "DEFAULT_MAX_VALUE_BYTES", "parse_rfc3339",
    "epoch_seconds",
]

KEY_PREFIX = "ibm_vpc_flowlogs_v1"
STAGES = ("key", "download", "decompress", "json", "validate")


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
