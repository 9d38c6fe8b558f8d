"""FROZEN reference: streams/formats/translate.py as it was before the numpy rewrite (commit 9d08439), kept only as the
oracle of tests/unit/formats/flowlog/test_translate_equivalence.py. Do not use it in the product and do not change it: the new
translate must give the same columns, the same string dictionary (in the same order) and the same custom indexes.
"""
from __future__ import annotations

import re
import socket
import struct
from itertools import chain, compress
from typing import Any, Mapping, NamedTuple

from streams.formats.kflow.chf_segment import INT_COLUMNS  # the kflow integer columns, defined once
from streams.formats.flowlog.flowlog import ObjectKeyInfo, epoch_seconds

__all__ = [
    "CUSTOM_COLUMNS", "INT_COLUMNS", "EndNames", "device_name_for_subnet", "local_end",
    "remote_end", "translate_batch", "custom_values",
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


def _hget(header: Any, name: str) -> str:
    if header is None:
        return ""
    if isinstance(header, Mapping):
        return header.get(name) or ""
    return getattr(header, name, "") or ""


def _epoch(ts: str) -> int:
    return (epoch_seconds(ts) or 0) if ts else 0


def _ip_int(ip: str) -> int:
    try:
        return _IP_UNPACK(socket.inet_aton(ip))[0]
    except (OSError, TypeError):
        return 0


def translate_batch(key_info: ObjectKeyInfo, header: Any, columns: Mapping[str, list], index: Any) -> dict:
    """IBM flow columns -> kflow_batch-shaped columns (int lists, strings, custom_idx, flow_count, ...).

    `header` is a FlowDocument, or a mapping with capture_start_time/capture_end_time (the flow_batch
    record's header). `index` is an IpIndex (lookup / subnet_info / instance_name) or None (no metadata).
    """
    st, ini, tgt = columns["start_time"], columns["initiator_ip"], columns["target_ip"]
    n = len(st)
    strings: dict[str, int] = {}
    t = _Tables(strings, columns, _hget(header, "capture_start_time"), _hget(header, "capture_end_time"))
    keys = list(zip(ini, tgt, columns["direction"], columns["action"]))
    local = local_end(key_info, index)
    fwd_tail, rev_tail = _end_customs(t.intern, keys, key_info, local, index)
    heads = list(zip(map(t.st_idx.__getitem__, st), map(t.et_idx.__getitem__, columns["end_time"])))
    custom = list(chain.from_iterable(map(tuple.__add__, heads, map(fwd_tail.__getitem__, keys))))
    out = _forward(columns, t)
    bft, pft = columns["bytes_from_target"], columns["packets_from_target"]
    mask = [b > 0 or p > 0 for b, p in zip(bft, pft)]
    n_rev = sum(mask)
    if n_rev:
        if n_rev == n:
            def sel(c):
                return c
        else:
            def sel(c):
                return list(compress(c, mask))
        custom.extend(chain.from_iterable(map(tuple.__add__, sel(heads), map(rev_tail.__getitem__, sel(keys)))))
        _append_reverse(out, columns, t, sel)
    out.update({"device_name": device_name_for_subnet(key_info.subnet_id), "subnet_id": key_info.subnet_id,
                "region": key_info.region, "zone": local.zone, "flow_count": n + n_rev, "source_flows": n,
                "strings": list(strings), "custom_idx": custom})
    return out


class _Tables:
    """Per distinct value, once per batch: string indexes, epoch seconds of start times, IPv4 integers."""

    def __init__(self, strings: dict[str, int], columns: Mapping[str, list], cap_s: str, cap_e: str):
        self.strings = strings
        self.st_idx = {s: self.intern(s or cap_s) for s in dict.fromkeys(columns["start_time"])}
        self.et_idx = {s: self.intern(s or cap_e) for s in dict.fromkeys(columns["end_time"])}
        self.ts_of = {s: _epoch(s or cap_s) for s in self.st_idx}
        self.ip_of = {ip: _ip_int(ip) for ip in chain(dict.fromkeys(columns["initiator_ip"]),
                                                       dict.fromkeys(columns["target_ip"]))}

    def intern(self, s: str) -> int:
        i = self.strings.get(s)
        if i is None:
            i = self.strings[s] = len(self.strings)
        return i


def _end_customs(intern, keys: list[tuple], key_info: ObjectKeyInfo, local: EndNames, index: Any):
    """STR02..STR18 of the forward and the reverse CHF, per distinct (initiator, target, direction, action);
    ends in EndNames order (region, zone, vpc, subnet, instance, vnic)."""
    acct, ept, rtype = intern(key_info.account), intern(key_info.endpoint_type), intern(key_info.record_type)
    loc = tuple(map(intern, local))
    ends: dict[str, tuple] = {}
    fwd_tail: dict[tuple, tuple] = {}
    rev_tail: dict[tuple, tuple] = {}
    for k in dict.fromkeys(keys):
        i_ip, t_ip, d, a = k
        remote_ip = t_ip if d == "O" else i_ip  # "O": the initiator is the local vNIC
        r = ends.get(remote_ip)
        if r is None:
            r = ends[remote_ip] = tuple(map(intern, remote_end(remote_ip, index)))
        s_, d_ = (loc, r) if d == "O" else (r, loc)
        ai, di = intern(a), intern(_DIRECTION_WORD.get(d, d))
        fwd_tail[k] = (s_[0], d_[0], acct, s_[4], s_[1], s_[2], s_[3], ept, s_[5], rtype, ai,
                       d_[4], d_[1], d_[2], d_[3], d_[5], di)
        rev_tail[k] = (d_[0], s_[0], acct, d_[4], d_[1], d_[2], d_[3], ept, d_[5], rtype, ai,
                       s_[4], s_[1], s_[2], s_[3], s_[5], di)
    return fwd_tail, rev_tail


def _forward(columns: Mapping[str, list], t: _Tables) -> dict[str, list]:
    """The integer columns of the forward CHF (initiator → target), one per IBM record."""
    bfi, pfi = columns["bytes_from_initiator"], columns["packets_from_initiator"]
    out_f = [d == "O" for d in columns["direction"]]  # forward CHF leaves the local vNIC iff direction is "O"
    return {
        "timestamp": list(map(t.ts_of.__getitem__, columns["start_time"])),
        "src_addr": list(map(t.ip_of.__getitem__, columns["initiator_ip"])),
        "dst_addr": list(map(t.ip_of.__getitem__, columns["target_ip"])),
        "src_port": list(columns["initiator_port"]),
        "dst_port": list(columns["target_port"]),
        "protocol": list(columns["transport_protocol"]),
        "in_bytes": [0 if o else b for o, b in zip(out_f, bfi)],
        "in_pkts": [0 if o else p for o, p in zip(out_f, pfi)],
        "out_bytes": [b if o else 0 for o, b in zip(out_f, bfi)],
        "out_pkts": [p if o else 0 for o, p in zip(out_f, pfi)],
    }


def _append_reverse(out: dict[str, list], columns: Mapping[str, list], t: _Tables, sel) -> None:
    """Append the reverse CHF (target → initiator) of the records `sel` picks (those with target traffic)."""
    out["timestamp"].extend(map(t.ts_of.__getitem__, sel(columns["start_time"])))
    out["src_addr"].extend(map(t.ip_of.__getitem__, sel(columns["target_ip"])))
    out["dst_addr"].extend(map(t.ip_of.__getitem__, sel(columns["initiator_ip"])))
    out["src_port"].extend(sel(columns["target_port"]))
    out["dst_port"].extend(sel(columns["initiator_port"]))
    out["protocol"].extend(sel(columns["transport_protocol"]))
    out_r = [d == "I" for d in sel(columns["direction"])]  # reverse leaves the local vNIC iff direction is "I"
    r_b, r_p = sel(columns["bytes_from_target"]), sel(columns["packets_from_target"])
    out["in_bytes"].extend([0 if o else b for o, b in zip(out_r, r_b)])
    out["in_pkts"].extend([0 if o else p for o, p in zip(out_r, r_p)])
    out["out_bytes"].extend([b if o else 0 for o, b in zip(out_r, r_b)])
    out["out_pkts"].extend([p if o else 0 for o, p in zip(out_r, r_p)])


def custom_values(batch: Mapping, i: int) -> dict[str, str]:
    """The 19 customs of CHF i of a translated batch, by column name (for tests and debugging)."""
    strings = batch["strings"]
    idx = batch["custom_idx"][19 * i:19 * i + 19]
    return {col: strings[j] for col, j in zip(CUSTOM_COLUMNS, idx)}
