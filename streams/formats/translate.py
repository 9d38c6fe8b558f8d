"""Translate a batch of IBM flow records (columns) into kflow/CHF columns: the rules of docs/translation.md.

Pure and per batch: each string column is turned into codes once (one dictionary lookup per value), every
lookup (timestamps, IPv4 integers, remote ends from the IP index, names) is done once per distinct value, and
the per-flow work is numpy gathers over those codes (IPs as uint32). Output order: all forward CHF (one per
IBM record, in input order), then all reverse CHF (records with packets_from_target > 0 or
bytes_from_target > 0, in input order). Custom strings are dictionary-encoded: `strings` (distinct values) + `custom_idx` (19 per CHF, STR00..STR18).
"""
from __future__ import annotations

import re
import socket
import struct
from itertools import chain
from typing import Any, Mapping, NamedTuple

import numpy as np

from streams.formats.kflow.chf_segment import INT_COLUMNS  # the kflow integer columns, defined once
from streams.formats.flowlog.flowlog import ObjectKeyInfo, epoch_seconds

__all__ = [
    "CUSTOM_COLUMNS", "INT_COLUMNS", "EndNames", "device_name_for_subnet", "local_end",
    "remote_end", "Segment", "translate_batch", "translate_segments",
]

CUSTOM_COLUMNS = tuple(f"STR{i:02d}" for i in range(19))
_DIRECTION_WORD = {"I": "inbound", "O": "outbound"}
_BAD_DEVICE_CHARS = re.compile(r"[^a-z0-9_]")
_IP_UNPACK = struct.Struct("!I").unpack
_EMPTY_END = ("", "", "", "", "", "")


class EndNames(NamedTuple):
    """What the customs say about one end of a flow."""

    region: str
    zone: str
    vpc: str
    subnet: str
    instance: str
    vnic: str


def device_name_for_subnet(subnet_id: str) -> str:
    """Kentik device name of an IBM subnet: 'ibm_' + id, lower-cased, [^a-z0-9_] -> '_'."""
    return _BAD_DEVICE_CHARS.sub("_", ("ibm_" + subnet_id).lower())


def local_end(key_info: ObjectKeyInfo, index: Any) -> EndNames:
    """The vNIC that wrote the object: names from VPC metadata, else the ids/zone from the object key."""
    info = index.subnet_info(key_info.subnet_id) if index is not None else None
    inst = index.instance_name(key_info.instance_id) if index is not None else None
    zone = (getattr(info, "zone", "") or "") if info is not None else ""
    vpc = (getattr(info, "vpc_name", "") or "") if info is not None else ""
    subnet = (getattr(info, "name", "") or "") if info is not None else ""
    if not vpc and index is not None and hasattr(index, "vpc_name"):
        vpc = index.vpc_name(key_info.vpc_id) or ""
    return EndNames(
        region=key_info.region,
        zone=zone or key_info.subnet_zone,
        vpc=vpc or key_info.vpc_id,
        subnet=subnet or key_info.subnet_id,
        instance=inst or key_info.instance_id,
        vnic=key_info.vnic_id,
    )


def remote_end(ip: str, index: Any) -> EndNames:
    """The other end: exact IP, else longest subnet CIDR (index.lookup does both), else all ""."""
    end = index.lookup(ip) if index is not None else None
    if end is None:
        return EndNames(*_EMPTY_END)
    return EndNames(end.region or "", end.zone or "", end.vpc_name or "", end.subnet_name or "",
                    end.instance_name or "", end.vnic_id or "")


def _hget(header: Mapping | None, name: str) -> str:
    return (header or {}).get(name) or ""


def _epoch(ts: str) -> int:
    return (epoch_seconds(ts) or 0) if ts else 0


def _ip_int(ip: str) -> int:
    try:
        return _IP_UNPACK(socket.inet_aton(ip))[0]
    except (OSError, TypeError):
        return 0


class Segment(NamedTuple):
    """One object's consecutive rows of a batch: its key, its header (capture times) and how many rows."""

    key_info: ObjectKeyInfo
    header: Mapping | None
    count: int


def translate_batch(key_info: ObjectKeyInfo, header: Mapping | None, columns: Mapping[str, Any], index: Any) -> dict:
    """IBM flow columns -> kflow_batch-shaped columns (numpy integer columns, strings, custom_idx, flow_count, ...).

    `header` is the object's header (a mapping with capture_start_time/capture_end_time: a flows part's). `index` is an IpIndex (lookup / subnet_info / instance_name) or None (no metadata).
    Integer columns may be lists or numpy arrays.
    """
    n = len(columns["start_time"])
    out, counts, (local,) = translate_segments([Segment(key_info, header, n)], columns, index)
    out.update({"device_name": device_name_for_subnet(key_info.subnet_id), "subnet_id": key_info.subnet_id,
                "region": key_info.region, "zone": local.zone, "flow_count": int(counts[0]), "source_flows": n})
    return out


def translate_segments(segments: list[Segment], columns: Mapping[str, Any], index: Any) -> tuple:
    """The rows of several objects (`segments`, one after the other in `columns`) translated in one pass:
    (kflow columns with one string dictionary, CHF count per segment, EndNames of each segment's vNIC). Each
    segment's CHF are consecutive in the output, its forward CHF (input order) then its reverse CHF."""
    part = np.repeat(np.arange(len(segments)), [s.count for s in segments])
    c = _Codes(columns, part, [(_hget(s.header, "capture_start_time"), _hget(s.header, "capture_end_time"))
                               for s in segments])
    locals_ = [local_end(s.key_info, index) for s in segments]
    fwd = _forward_customs(c, segments, locals_, index, part)
    f = {name: np.asarray(columns[name], dtype=np.int64) for name in _INT_INPUTS}
    rev = (f["bytes_from_target"] > 0) | (f["packets_from_target"] > 0)
    rows, is_rev, counts, order = _chf_order(part, rev, len(segments))
    out = _int_columns(c, f, rows, is_rev)
    rev_customs = fwd[rev]  # the reverse CHF: ends swapped, all else the same
    rev_customs[:, _SRC_END], rev_customs[:, _DST_END] = rev_customs[:, _DST_END], rev_customs[:, _SRC_END]
    customs = np.concatenate((fwd, rev_customs))
    if order is not None:
        customs = customs[order]
    out.update({"strings": list(c.strings), "custom_idx": customs.ravel()})
    return out, counts, locals_


def _chf_order(part: np.ndarray, rev: np.ndarray, segments: int) -> tuple:
    """(the IBM record of each CHF, whether it is a reverse CHF, CHF per segment, and the order that takes
    all forward then all reverse CHF to per segment its forward then its reverse CHF, or None with one segment)."""
    n = len(part)
    rows = np.concatenate((np.arange(n), np.flatnonzero(rev)))
    is_rev = np.zeros(len(rows), dtype=bool)
    is_rev[n:] = True
    if segments == 1:
        return rows, is_rev, np.array([len(rows)]), None
    order = np.argsort(part[rows] * 2 + is_rev, kind="stable")
    return rows[order], is_rev[order], np.bincount(part[rows], minlength=segments), order


# columns of STR02..STR18 that hold the source / destination end, in EndNames order
# (region, zone, vpc, subnet, instance, vnic): STR02 region, STR06 zone, STR07 vpc, STR08 subnet,
# STR05 instance, STR10 vnic for the source; STR03, STR14, STR15, STR16, STR13, STR17 for the destination.
_SRC_END = np.array([2, 6, 7, 8, 5, 10])
_DST_END = np.array([3, 14, 15, 16, 13, 17])
_INT_INPUTS = ("initiator_port", "target_port", "transport_protocol", "bytes_from_initiator",
               "packets_from_initiator", "bytes_from_target", "packets_from_target")


def _factorize(values: Any, table: dict) -> np.ndarray:
    """The position of each value in `table`; values not in it yet are added in first-appearance order."""
    for v in dict.fromkeys(values):
        table.setdefault(v, len(table))
    return np.fromiter(map(table.__getitem__, values), dtype=np.int64, count=len(values))


def _times(table: dict, codes: np.ndarray, part: np.ndarray, caps: list[str]) -> list[str]:
    """The distinct times of a column, an empty one standing for its segment's capture time: with segments of
    different capture times, their empty rows are given codes of their own (`codes` is changed in place)."""
    values = list(table)
    empty = table.get("")
    if empty is None:
        return values
    values[empty] = caps[0]
    if len(set(caps)) > 1:
        rows = codes == empty
        for p in np.unique(part[rows]).tolist():
            codes[rows & (part == p)] = len(values)
            values.append(caps[p])
    return values


def _first_seen(codes: np.ndarray, count: int) -> list[int]:
    """Index of the first occurrence of each code 0..count-1 of codes numbered in order of appearance (the
    running maximum steps up by one exactly there)."""
    return np.searchsorted(np.maximum.accumulate(codes), np.arange(count)).tolist() if len(codes) else []


class _Codes:
    """The string columns as codes into per-batch tables of their distinct values, and the string dictionary
    (`strings`, value -> index in first-interned order) that the customs index into. `part`: the segment of
    each row; `caps`: each segment's capture (start, end), which stands in for an empty start / end time."""

    def __init__(self, columns: Mapping[str, Any], part: np.ndarray, caps: list[tuple[str, str]]):
        self.strings: dict[str, int] = {}
        st, et, ips, dirs, acts = {}, {}, {}, {}, {}
        self.st, self.et = _factorize(columns["start_time"], st), _factorize(columns["end_time"], et)
        st_values = _times(st, self.st, part, [cap[0] for cap in caps])
        self.st_idx = self.intern(st_values)
        self.et_idx = self.intern(_times(et, self.et, part, [cap[1] for cap in caps]))
        self.ts = np.array([_epoch(s) for s in st_values], dtype=np.int64)
        self.ini, self.tgt = _factorize(columns["initiator_ip"], ips), _factorize(columns["target_ip"], ips)
        self.ip_values = list(ips)
        self.ip = np.array([_ip_int(ip) for ip in ips], dtype=np.uint32)
        self.dir, self.act = _factorize(columns["direction"], dirs), _factorize(columns["action"], acts)
        self.dir_values, self.act_values = list(dirs), list(acts)
        self.out_f = np.array([d == "O" for d in dirs], dtype=bool)[self.dir]  # initiator is the local vNIC
        self.out_r = np.array([d == "I" for d in dirs], dtype=bool)[self.dir]  # target is the local vNIC

    def intern(self, values: Any) -> np.ndarray:
        """The dictionary index of each value; new values are added in order."""
        strings = self.strings
        for v in values:
            if v not in strings:
                strings[v] = len(strings)
        return np.fromiter(map(strings.__getitem__, values), dtype=np.int32, count=len(values))


def _forward_customs(c: _Codes, segments: list, locals_: list[EndNames], index: Any,
                     part: np.ndarray) -> np.ndarray:
    """STR00..STR18 of every forward CHF, as an (n, 19) array of string indexes."""
    own = np.array([c.intern((s.key_info.account, s.key_info.endpoint_type, s.key_info.record_type) + tuple(local))
                    for s, local in zip(segments, locals_)], dtype=np.int32).reshape(-1, 9)
    own = own[part] if len(segments) > 1 else own[0]  # per row, or the one segment's (broadcast)
    remote = np.where(c.out_f, c.tgt, c.ini)
    r_codes, r_first = np.unique(remote, return_index=True)
    remote_names = {r: remote_end(c.ip_values[r], index) for r in r_codes.tolist()}
    dir_words = [_DIRECTION_WORD.get(d, d) for d in c.dir_values]
    # names enter the dictionary in the order a flow-by-flow pass would meet them: per flow its remote end's
    # six names, then its action, then its direction word (each distinct value at its first flow)
    events = sorted([(f, 0, remote_names[r]) for r, f in zip(r_codes.tolist(), r_first.tolist())] +
                    [(f, 1, (c.act_values[a],)) for a, f in enumerate(_first_seen(c.act, len(c.act_values)))] +
                    [(f, 2, (dir_words[d],)) for d, f in enumerate(_first_seen(c.dir, len(dir_words)))])
    c.intern(list(dict.fromkeys(chain.from_iterable(names for _, _, names in events))))
    ends = np.zeros((len(c.ip_values), 6), dtype=np.int32)
    ends[list(remote_names)] = c.intern(list(chain.from_iterable(remote_names.values()))).reshape(-1, 6)
    fwd = np.empty((len(c.st), 19), dtype=np.int32)
    fwd[:, 0], fwd[:, 1] = c.st_idx[c.st], c.et_idx[c.et]
    r_end, out, loc = ends[remote], c.out_f[:, None], own[..., 3:]
    fwd[:, _SRC_END] = np.where(out, loc, r_end)
    fwd[:, _DST_END] = np.where(out, r_end, loc)
    fwd[:, 4], fwd[:, 9], fwd[:, 11] = own[..., 0], own[..., 1], own[..., 2]
    fwd[:, 12], fwd[:, 18] = c.intern(c.act_values)[c.act], c.intern(dir_words)[c.dir]
    return fwd


def _int_columns(c: _Codes, f: dict[str, np.ndarray], rows: np.ndarray, is_rev: np.ndarray) -> dict[str, np.ndarray]:
    """The integer columns of each CHF: the IBM record `rows` read forward (initiator → target) or, where
    `is_rev`, reverse (target → initiator). Bytes/packets count as out* when the CHF leaves the local vNIC."""
    n = len(c.st)
    src = rows + n * is_rev  # into (initiator values + target values): the CHF's source side
    dst = rows + n * ~is_rev

    def pair(initiator: np.ndarray, target: np.ndarray) -> np.ndarray:
        return np.concatenate((initiator, target))

    addr, port = pair(c.ip[c.ini], c.ip[c.tgt]), pair(f["initiator_port"], f["target_port"])
    sent_bytes = pair(f["bytes_from_initiator"], f["bytes_from_target"])[src]
    sent_pkts = pair(f["packets_from_initiator"], f["packets_from_target"])[src]
    leaves = pair(c.out_f, c.out_r)[src]
    return {
        "timestamp": c.ts[c.st[rows]], "src_addr": addr[src], "dst_addr": addr[dst], "src_port": port[src],
        "dst_port": port[dst], "protocol": f["transport_protocol"][rows],
        "in_bytes": np.where(leaves, 0, sent_bytes), "in_pkts": np.where(leaves, 0, sent_pkts),
        "out_bytes": np.where(leaves, sent_bytes, 0), "out_pkts": np.where(leaves, sent_pkts, 0),
    }
