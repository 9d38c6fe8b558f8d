"""Translate a batch of IBM flow records (columns) into kflow/CHF columns: the rules of spec/kentik.md.

Pure and per batch: every lookup (timestamps, IPv4 integers, remote ends from the IP index, the 17 custom
indexes that depend on the ends) is done once per distinct value, then the per-flow work is C-level
`map`/`zip`/`compress` over the columns. Output order: all forward CHF (one per IBM record, in input order),
then all reverse CHF (records with packets_from_target > 0 or bytes_from_target > 0, in input order).
Custom strings are dictionary-encoded: `strings` (distinct values) + `custom_idx` (19 per CHF, STR00..STR18).
"""
from __future__ import annotations

import re
import socket
import struct
from itertools import chain, compress
from typing import Any, Mapping, NamedTuple

from connectors.kflow import INT_COLUMNS  # the kflow integer columns, defined once
from streams.flowlog import ObjectKeyInfo, epoch_seconds

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
    st = columns["start_time"]
    et = columns["end_time"]
    dirs = columns["direction"]
    acts = columns["action"]
    ini = columns["initiator_ip"]
    tgt = columns["target_ip"]
    iport = columns["initiator_port"]
    tport = columns["target_port"]
    proto = columns["transport_protocol"]
    bfi = columns["bytes_from_initiator"]
    pfi = columns["packets_from_initiator"]
    bft = columns["bytes_from_target"]
    pft = columns["packets_from_target"]
    n = len(st)
    cap_s = _hget(header, "capture_start_time")
    cap_e = _hget(header, "capture_end_time")

    strings: dict[str, int] = {}

    def intern(s: str) -> int:
        i = strings.get(s)
        if i is None:
            i = strings[s] = len(strings)
        return i

    # per distinct timestamp string: custom index and epoch seconds
    st_idx = {s: intern(s or cap_s) for s in dict.fromkeys(st)}
    et_idx = {s: intern(s or cap_e) for s in dict.fromkeys(et)}
    ts_of = {s: _epoch(s or cap_s) for s in st_idx}
    ip_of = {ip: _ip_int(ip) for ip in chain(dict.fromkeys(ini), dict.fromkeys(tgt))}

    # constant customs of this object, the local end, and per distinct remote IP its end
    acct = intern(key_info.account)
    ept = intern(key_info.endpoint_type)
    rtype = intern(key_info.record_type)
    local = local_end(key_info, index)
    loc = tuple(map(intern, local))
    ends: dict[str, tuple] = {}
    act_idx = {a: intern(a) for a in dict.fromkeys(acts)}
    dir_idx = {d: intern(_DIRECTION_WORD.get(d, d)) for d in dict.fromkeys(dirs)}

    # STR02..STR18 of a CHF from end s to end d (EndNames order: region, zone, vpc, subnet, instance, vnic),
    # per distinct (initiator, target, direction, action)
    fwd_tail: dict[tuple, tuple] = {}
    rev_tail: dict[tuple, tuple] = {}
    keys = list(zip(ini, tgt, dirs, acts))
    for k in dict.fromkeys(keys):
        i_ip, t_ip, d, a = k
        remote_ip = t_ip if d == "O" else i_ip  # "O": the initiator is the local vNIC
        r = ends.get(remote_ip)
        if r is None:
            r = ends[remote_ip] = tuple(map(intern, remote_end(remote_ip, index)))
        s_, d_ = (loc, r) if d == "O" else (r, loc)
        ai = act_idx[a]
        di = dir_idx[d]
        fwd_tail[k] = (s_[0], d_[0], acct, s_[4], s_[1], s_[2], s_[3], ept, s_[5], rtype, ai,
                       d_[4], d_[1], d_[2], d_[3], d_[5], di)
        rev_tail[k] = (d_[0], s_[0], acct, d_[4], d_[1], d_[2], d_[3], ept, d_[5], rtype, ai,
                       s_[4], s_[1], s_[2], s_[3], s_[5], di)

    heads = list(zip(map(st_idx.__getitem__, st), map(et_idx.__getitem__, et)))
    add = tuple.__add__
    custom = list(chain.from_iterable(map(add, heads, map(fwd_tail.__getitem__, keys))))

    ts = list(map(ts_of.__getitem__, st))
    a_src = list(map(ip_of.__getitem__, ini))
    a_dst = list(map(ip_of.__getitem__, tgt))
    # forward CHF leaves the local vNIC (out*) iff direction is "O"
    out_f = [d == "O" for d in dirs]
    in_bytes = [0 if o else b for o, b in zip(out_f, bfi)]
    in_pkts = [0 if o else p for o, p in zip(out_f, pfi)]
    out_bytes = [b if o else 0 for o, b in zip(out_f, bfi)]
    out_pkts = [p if o else 0 for o, p in zip(out_f, pfi)]
    src_port = list(iport)
    dst_port = list(tport)
    protocol = list(proto)

    mask = [b > 0 or p > 0 for b, p in zip(bft, pft)]
    n_rev = sum(mask)
    if n_rev:
        if n_rev == n:
            def sel(c):
                return c
        else:
            def sel(c):
                return list(compress(c, mask))
        r_keys = sel(keys)
        custom.extend(chain.from_iterable(map(add, sel(heads), map(rev_tail.__getitem__, r_keys))))
        r_st = sel(st)
        ts.extend(map(ts_of.__getitem__, r_st))
        r_ini = sel(ini)
        r_tgt = sel(tgt)
        a_src.extend(map(ip_of.__getitem__, r_tgt))
        a_dst.extend(map(ip_of.__getitem__, r_ini))
        src_port.extend(sel(tport))
        dst_port.extend(sel(iport))
        protocol.extend(sel(proto))
        # reverse CHF leaves the local vNIC iff direction is "I" (the target is local)
        out_r = [d == "I" for d in sel(dirs)]
        r_b = sel(bft)
        r_p = sel(pft)
        in_bytes.extend([0 if o else b for o, b in zip(out_r, r_b)])
        in_pkts.extend([0 if o else p for o, p in zip(out_r, r_p)])
        out_bytes.extend([b if o else 0 for o, b in zip(out_r, r_b)])
        out_pkts.extend([p if o else 0 for o, p in zip(out_r, r_p)])

    return {
        "device_name": device_name_for_subnet(key_info.subnet_id),
        "subnet_id": key_info.subnet_id,
        "region": key_info.region,
        "zone": local.zone,
        "flow_count": n + n_rev,
        "source_flows": n,
        "timestamp": ts,
        "src_addr": a_src,
        "dst_addr": a_dst,
        "src_port": src_port,
        "dst_port": dst_port,
        "protocol": protocol,
        "in_bytes": in_bytes,
        "in_pkts": in_pkts,
        "out_bytes": out_bytes,
        "out_pkts": out_pkts,
        "strings": list(strings),
        "custom_idx": custom,
    }


def custom_values(batch: Mapping, i: int) -> dict[str, str]:
    """The 19 customs of CHF i of a translated batch, by column name (for tests and debugging)."""
    strings = batch["strings"]
    idx = batch["custom_idx"][19 * i:19 * i + 19]
    return {col: strings[j] for col, j in zip(CUSTOM_COLUMNS, idx)}
