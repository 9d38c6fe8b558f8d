"""The referee: what Kentik (or an IPFIX collector) is owed for a set of generated objects, and how it compares
with what arrived.

Written from docs/translation.md on its own (not from streams/formats/translate.py), so the tests check the pipeline
against the rules rather than against itself. Each owed kflow record is identified by a tuple of its
decoded fields; the comparison counts lost and duplicated records and finds, per object, when its last
record was accepted (to check "delivered, then deleted").
"""
from __future__ import annotations

import calendar
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import unquote


def ip_int(ip: str) -> int:
    a, b, c, d = (int(x) for x in ip.split("."))
    return (a << 24) | (b << 16) | (c << 8) | d


def epoch(ts: str) -> int:
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))


def key_fields(key: str) -> dict[str, str]:
    parts = {}
    for segment in key.split("/"):
        if "=" in segment:
            name, value = segment.split("=", 1)
            parts[name] = unquote(value)
    return parts


def device_name(subnet_id: str) -> str:
    out = "".join(ch if ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "_") else "_" for ch in subnet_id.lower())
    return "ibm_" + out


def owed_records(obj) -> list[tuple]:
    """(device, src, dst, sport, dport, proto, in_bytes, in_pkts, out_bytes, out_pkts, timestamp) per owed CHF."""
    import gzip

    import orjson

    fields = key_fields(obj.key)
    subnet_id = fields["subnet-id"].rsplit(":", 1)[-1]
    device = device_name(subnet_id)
    flows = obj.flows
    body = obj.body
    doc = orjson.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body)
    if flows is None:
        flows = doc["flow_logs"]
    out = []
    for f in flows:
        local = f["initiator_ip"] if f["direction"] == "O" else f["target_ip"]
        ts = epoch(f["start_time"] or doc["capture_start_time"])
        fwd = (f["initiator_ip"], f["target_ip"], f["initiator_port"], f["target_port"],
               f["bytes_from_initiator"], f["packets_from_initiator"])
        rev = (f["target_ip"], f["initiator_ip"], f["target_port"], f["initiator_port"],
               f["bytes_from_target"], f["packets_from_target"])
        directions = [fwd]
        if f["packets_from_target"] > 0 or f["bytes_from_target"] > 0:
            directions.append(rev)
        for src, dst, sport, dport, nbytes, npkts in directions:
            egress = src == local
            out.append((device, ip_int(src), ip_int(dst), sport, dport, f["transport_protocol"],
                        0 if egress else nbytes, 0 if egress else npkts, nbytes if egress else 0,
                        npkts if egress else 0, ts))
    return out


def accepted_record(flow: dict) -> tuple:
    """The same tuple for a flow as the Kentik stand-in decoded it (GET /_emulator/flows)."""
    return (flow["device_name"], flow["src_addr"], flow["dst_addr"], flow["src_port"], flow["dst_port"],
            flow["protocol"], flow["in_bytes"], flow["in_pkts"], flow["out_bytes"], flow["out_pkts"], flow["timestamp"])


@dataclass
class Verdict:
    """`lost`: owed records missing for objects that are gone from the bucket (lost for good). `pending`:
    owed records missing for objects still in the bucket (not delivered yet; the pipeline can still deliver
    them). Without a bucket listing every missing record counts as lost."""

    owed: int
    accepted: int
    lost: int
    duplicates: int
    unexpected: int
    last_accept_by_object: dict[str, float] = field(default_factory=dict)
    pending: int = 0
    lost_objects: list[str] = field(default_factory=list)
    pending_objects: list[str] = field(default_factory=list)


def compare(objects, accepted_flows: list[dict], in_bucket: set[str] | None = None) -> Verdict:
    """Owed vs accepted, as multisets; per object, when its last owed record arrived (stand-in clock).

    `in_bucket`: keys still in the bucket. A missing record owed by an object still there is pending; one
    owed by an object that is gone is lost (a record owed by both kinds is counted lost first: the strict
    reading)."""
    owed = Counter()
    owners: dict[tuple, list[str]] = {}
    for obj in objects:
        for record in owed_records(obj):
            owed[record] += 1
            owners.setdefault(record, []).append(obj.key)
    got = Counter()
    last: dict[str, float] = {}
    for flow in accepted_flows:
        record = accepted_record(flow)
        got[record] += 1
        keys = owners.get(record)
        if keys:
            last[keys[-1]] = max(last.get(keys[-1], 0.0), float(flow.get("received_at", 0.0)))
    lost = pending = 0
    lost_objects: set[str] = set()
    pending_objects: set[str] = set()
    for record, missing in (owed - got).items():
        keys = owners[record]
        gone = [k for k in keys if in_bucket is None or k not in in_bucket]
        there = [k for k in keys if in_bucket is not None and k in in_bucket]
        n_lost = min(missing, len(gone))
        lost += n_lost
        pending += missing - n_lost
        lost_objects.update(gone[:n_lost] if n_lost else ())
        pending_objects.update(there[:missing - n_lost] if missing > n_lost else ())
    extra = got - owed
    duplicates = sum(n for r, n in extra.items() if r in owed)
    unexpected = sum(n for r, n in extra.items() if r not in owed)
    return Verdict(sum(owed.values()), sum(got.values()), lost, duplicates, unexpected, last, pending,
                   sorted(lost_objects), sorted(pending_objects))


PROTOCOL_NAMES = {1: "ICMP", 6: "TCP", 17: "UDP"}  # as nfdump prints them
NFDUMP_FIELDS = ("sa", "da", "sp", "dp", "pr", "ibyt", "ipkt", "ts", "te", "dir")  # what a record is compared by


def utc(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def owed_ipfix(obj) -> list[dict]:
    """What an IPFIX collector is owed for `obj`, from its raw JSON (docs/ipfix.md): one record per direction
    that carried traffic (the forward one always), with the fields as `nfdump -o csv` prints them
    (NFDUMP_FIELDS) plus what nfdump does not show: biflow direction, forwarding status, the local vNIC,
    region and account the enterprise elements carry."""
    import gzip

    import orjson

    doc = orjson.loads(gzip.decompress(obj.body) if obj.body[:2] == b"\x1f\x8b" else obj.body)
    key = key_fields(obj.key)
    out = []
    for f in doc["flow_logs"]:
        local = f["initiator_ip"] if f["direction"] == "O" else f["target_ip"]
        start = epoch(f["start_time"] or doc["capture_start_time"])
        end = max(start, epoch(f["end_time"] or doc["capture_end_time"]))
        ends = [(f["initiator_ip"], f["target_ip"], f["initiator_port"], f["target_port"],
                 f["bytes_from_initiator"], f["packets_from_initiator"], True)]
        if f["packets_from_target"] > 0 or f["bytes_from_target"] > 0:
            ends.append((f["target_ip"], f["initiator_ip"], f["target_port"], f["initiator_port"],
                         f["bytes_from_target"], f["packets_from_target"], False))
        for src, dst, sport, dport, nbytes, npkts, forward in ends:
            out.append({"sa": src, "da": dst, "sp": str(sport), "dp": str(dport),
                        "pr": PROTOCOL_NAMES.get(f["transport_protocol"], str(f["transport_protocol"])),
                        "ibyt": str(nbytes), "ipkt": str(npkts), "ts": utc(start), "te": utc(end),
                        "dir": "1" if src == local else "0", "biflow": 1 if forward else 2,
                        "status": {"accepted": 64, "rejected": 129}[f["action"]],
                        "local_vnic": key["vnic-id"], "region": key["region"], "account": key["account"],
                        "egress": src == local})
    return out


def nfdump_record(row: dict) -> tuple:
    """The comparable part of an owed record or of an `nfdump -o csv` row."""
    return tuple(row[k] for k in NFDUMP_FIELDS)


def received_at(row: dict) -> float:
    """nfdump's `tr` (when the collector received the record; UTC with milliseconds) in epoch seconds, else 0."""
    tr = row.get("tr") or ""
    if len(tr) < 19:
        return 0.0
    return calendar.timegm(time.strptime(tr[:19], "%Y-%m-%d %H:%M:%S")) + float("0" + tr[19:].strip())


@dataclass
class CollectorVerdict:
    """Owed IPFIX records vs the records the collector stored, as multisets; per object, when the collector
    received its last owed record."""

    owed: int
    received: int
    lost: int
    duplicates: int
    unexpected: int
    last_received_by_object: dict[str, float] = field(default_factory=dict)


def compare_collector(objects, rows: list[dict]) -> CollectorVerdict:
    """What `objects` owe a collector vs what it stored (`nfdump -o csv` rows)."""
    owed = Counter()
    owner: dict[tuple, str] = {}
    for obj in objects:
        for r in owed_ipfix(obj):
            record = nfdump_record(r)
            owed[record] += 1
            owner[record] = obj.key
    got = Counter()
    last: dict[str, float] = {}
    for row in rows:
        record = nfdump_record(row)
        got[record] += 1
        if record in owner:
            last[owner[record]] = max(last.get(owner[record], 0.0), received_at(row))
    extra = got - owed
    return CollectorVerdict(sum(owed.values()), sum(got.values()), sum((owed - got).values()),
                            sum(n for r, n in extra.items() if r in owed),
                            sum(n for r, n in extra.items() if r not in owed), last)
