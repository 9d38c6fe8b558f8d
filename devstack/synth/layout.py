"""IBM's flow-log object layout, as docs/ibm-flow-logs.md describes it: v1 keys with percent-encoded CRNs, the
JSON document (header and `flow_logs`), the header copied as user metadata, deterministic gzip; and
`GeneratedObject`, one object with what a referee needs to know about it."""
from __future__ import annotations

import hashlib
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterable
from urllib.parse import quote

KEY_PREFIX = "ibm_vpc_flowlogs_v1"
VERSION = "0.0.1"
INTERVAL_S = 300
GZIP_LEVEL = 6
DEFAULT_START = datetime(2024, 5, 14, 9, 0, 0, tzinfo=timezone.utc)
HEADER_FIELDS = ("version", "collector_crn", "attached_endpoint_type", "network_interface_id", "instance_crn",
                 "vpc_crn", "capture_start_time", "capture_end_time", "state", "number_of_flow_logs")
FLOW_FIELDS = ("start_time", "end_time", "connection_start_time", "direction", "action", "initiator_ip",
               "target_ip", "initiator_port", "target_port", "transport_protocol", "ether_type", "was_initiated",
               "was_terminated", "bytes_from_initiator", "packets_from_initiator", "bytes_from_target",
               "packets_from_target", "cumulative_bytes_from_initiator", "cumulative_packets_from_initiator",
               "cumulative_bytes_from_target", "cumulative_packets_from_target")


@dataclass
class GeneratedObject:
    """One object to put in the bucket, plus what a referee needs to know about it."""
    key: str
    body: bytes
    metadata: dict[str, str]
    flows: list[dict] | None          # records written (None when generated with keep_flows=False)
    kind: str                         # 'good' | 'empty' | bad-kind name (devstack.synth.badinputs)
    variant: str = ""                 # catalogue entry name for catalogue objects (incl. tricky-good ones)
    expected_stage: str = ""          # for bad kinds: the stage that should dead-letter it
    reason: str = ""                  # human description of the bad input
    content_encoding: str | None = None
    flow_count: int = 0               # flows owed downstream (0 for bad objects)
    chf_count: int = 0                # kflow records owed: 1 per flow + 1 per flow with target traffic

    def manifest_entry(self) -> dict[str, Any]:
        return {"key": self.key, "kind": self.kind, "variant": self.variant, "flows": self.flow_count,
                "chf": self.chf_count, "size": len(self.body), "expected_stage": self.expected_stage,
                "reason": self.reason}


@lru_cache(maxsize=1 << 17)
def fmt_time(ts: int) -> str:
    """Epoch seconds -> RFC 3339 UTC with Z (cached: windows reuse few distinct seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def stream_id_for(ts: int) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))


def gzip_bytes(data: bytes, level: int = GZIP_LEVEL) -> bytes:
    """Deterministic gzip (mtime 0) through zlib directly."""
    return zlib.compress(data, level, wbits=31)


def crn_quote(value: str) -> str:
    return quote(value, safe="")


def header_metadata(doc: dict) -> dict[str, str]:
    """The header as user metadata: every non-flow_logs field as a string."""
    return {k: str(v) for k, v in doc.items() if k != "flow_logs" and isinstance(v, (str, int, float))}


def chf_count(flows: Iterable[dict]) -> int:
    return sum(1 + (1 if (f.get("packets_from_target") or f.get("bytes_from_target")) else 0) for f in flows)


def uuid_from(*parts: object) -> str:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def make_key(ctx: Any, record_type: str, capture_start: int, stream_start: int, seq: int,
             *, encode: bool = True) -> str:
    q = crn_quote if encode else (lambda s: s)
    t = time.gmtime(capture_start)
    return (f"{KEY_PREFIX}/account={ctx.account}/region={ctx.region}/vpc-id={q(ctx.vpc.crn)}"
            f"/subnet-id={q(ctx.subnet.crn)}/endpoint-type=vnics/instance-id={q(ctx.instance.crn)}"
            f"/vnic-id={ctx.nic.id}/record-type={record_type}/year={t.tm_year:04d}/month={t.tm_mon:02d}"
            f"/day={t.tm_mday:02d}/hour={t.tm_hour:02d}/stream-id={stream_id_for(stream_start)}/{seq:08d}.gz")


def make_document(c: Any, cs: int, ce: int, flows: list[dict], *, state: str = "ok") -> dict:
    return {"version": VERSION, "collector_crn": c.collector_crn, "attached_endpoint_type": "vnic",
            "network_interface_id": c.nic.id, "instance_crn": c.instance.crn, "vpc_crn": c.vpc.crn,
            "capture_start_time": fmt_time(cs), "capture_end_time": fmt_time(ce), "state": state,
            "number_of_flow_logs": len(flows), "flow_logs": flows}
