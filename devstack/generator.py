"""Synthetic IBM VPC flow-log objects for a devstack World, and the `blueflow-dev generate` entry point.

Generation is pure and deterministic for a seed (`iter_objects` / `generate_objects`): v1 object keys with
percent-encoded CRNs, one gzip-compressed JSON document per object, the header copied as user metadata,
realistic flow mixes consistent with the World (so remote-end enrichment hits exact IPs and subnet CIDRs),
empty objects and optional bad inputs from `devstack.badinputs`. I/O lives at the edges: `write_objects`
uploads with ibm_boto3, `main(argv)` reads the devstack settings, uploads, writes a manifest and prints a
one-line JSON summary. Shapes follow docs/ibm-flow-logs.md.
"""
from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import math
import os
import random
import sys
import time
import uuid
import zlib
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence
from urllib.parse import quote

import orjson

KEY_PREFIX = "ibm_vpc_flowlogs_v1"
VERSION = "0.0.1"
INTERVAL_S = 300
GZIP_LEVEL = 6
DEFAULT_START = datetime(2024, 5, 14, 9, 0, 0, tzinfo=timezone.utc)
IBM_DNS = ("161.26.0.10", "161.26.0.11")
IBM_NTP = ("161.26.0.6",)
HEADER_FIELDS = ("version", "collector_crn", "attached_endpoint_type", "network_interface_id", "instance_crn",
                 "vpc_crn", "capture_start_time", "capture_end_time", "state", "number_of_flow_logs")
FLOW_FIELDS = ("start_time", "end_time", "connection_start_time", "direction", "action", "initiator_ip",
               "target_ip", "initiator_port", "target_port", "transport_protocol", "ether_type", "was_initiated",
               "was_terminated", "bytes_from_initiator", "packets_from_initiator", "bytes_from_target",
               "packets_from_target", "cumulative_bytes_from_initiator", "cumulative_packets_from_initiator",
               "cumulative_bytes_from_target", "cumulative_packets_from_target")
ALL_RECORD_SHARE = 0.1      # share of vNICs whose collector writes record-type=all instead of ingress/egress pairs
EMPTY_TIME_SHARE = 0.02     # share of records with "" start_time/end_time (seen in real data)
OFF_DIRECTION_SHARE = 0.08  # share of records in an ingress/egress object with the other direction


# ----------------------------------------------------------------------------------------------------------
# result type

@dataclass
class GeneratedObject:
    """One object to put in the bucket, plus what a referee needs to know about it."""
    key: str
    body: bytes
    metadata: dict[str, str]
    flows: list[dict] | None          # records written (None when generated with keep_flows=False)
    kind: str                         # 'good' | 'empty' | bad-kind name (devstack.badinputs)
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


# ----------------------------------------------------------------------------------------------------------
# small pure helpers

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


def _uuid_from(*parts: object) -> str:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


# ----------------------------------------------------------------------------------------------------------
# world context: per-vNIC facts precomputed once per World

@dataclass
class NicContext:
    nic: Any
    instance: Any
    subnet: Any
    vpc: Any
    region: str
    account: str
    collector_crn: str
    peers: tuple[str, ...]            # other NIC IPs in the same VPC (exact-IP hits)
    subnet_free: tuple[str, ...]      # unassigned IPs inside the VPC's subnets (subnet-CIDR hits)
    lb_private: tuple[str, ...]       # LB private IPs in the same VPC
    world_public: tuple[str, ...]     # floating / LB / gateway public IPs of the world (not this NIC's)
    has_fip: bool
    offset_s: int                     # capture window phase of this vNIC
    record_types: tuple[str, ...]
    stream_start: dict[str, int]      # record_type -> stream start epoch
    seq_start: dict[str, int]


@dataclass
class WorldContext:
    world: Any
    nics: list[NicContext]
    internet_clients: tuple[str, ...]
    saas_servers: tuple[str, ...]
    admin_ips: tuple[str, ...]
    scanners: tuple[str, ...]


_PUBLIC_FIRST_OCTETS = (3, 4, 8, 13, 18, 20, 23, 31, 34, 35, 37, 40, 45, 46, 50, 52, 54, 62, 66, 69, 72, 77, 78,
                        80, 81, 82, 85, 86, 89, 91, 93, 95, 98, 104, 107, 109, 128, 130, 134, 138, 141, 142, 147,
                        151, 152, 157, 158, 159, 162, 165, 167, 170, 173, 176, 178, 184, 185, 188, 193, 194, 195,
                        199, 201, 204, 207, 209, 212, 213, 216, 217)


def _public_ips(rng: random.Random, n: int, exclude: set[str]) -> tuple[str, ...]:
    out: list[str] = []
    seen = set(exclude)
    while len(out) < n:
        ip = f"{rng.choice(_PUBLIC_FIRST_OCTETS)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        if ip in seen or not ipaddress.IPv4Address(ip).is_global:
            continue
        seen.add(ip)
        out.append(ip)
    return tuple(out)


def _free_ips(rng: random.Random, cidr: str, used: set[str], n: int) -> list[str]:
    net = ipaddress.IPv4Network(cidr, strict=False)
    lo, hi = int(net.network_address) + 4, int(net.broadcast_address) - 1   # IBM reserves first 4 and last
    out: list[str] = []
    if hi <= lo:
        return out
    for _ in range(n * 4):
        ip = str(ipaddress.IPv4Address(rng.randint(lo, hi - 1)))
        if ip not in used and ip not in out:
            out.append(ip)
            if len(out) >= n:
                break
    return out


_CONTEXTS: dict[int, WorldContext] = {}


def world_context(world: Any) -> WorldContext:
    """Precompute per-vNIC context for a World (cached per World object)."""
    cached = _CONTEXTS.get(id(world))
    if cached is not None and cached.world is world:
        return cached
    rng = random.Random(f"blueflow-world-context:{world.account}")
    subnets = {s.id: s for s in world.subnets}
    vpcs = {v.id: v for v in world.vpcs}
    fip_by_nic: dict[str, list[str]] = {}
    for f in world.floating_ips:
        fip_by_nic.setdefault(f.target_nic_id, []).append(f.address)
    all_public = [f.address for f in world.floating_ips]
    for lb in world.load_balancers:
        all_public.extend(lb.public_ips)
    for g in world.gateways:
        if g.public_ip:
            all_public.append(g.public_ip)
    used_private = {n.ip for i in world.instances for n in i.nics}
    for lb in world.load_balancers:
        used_private.update(lb.private_ips)
    for g in world.gateways:
        if g.private_ip:
            used_private.add(g.private_ip)
    nic_ips_by_vpc: dict[str, list[str]] = {}
    for inst in world.instances:
        nic_ips_by_vpc.setdefault(inst.vpc_id, []).extend(n.ip for n in inst.nics)
    free_by_vpc: dict[str, list[str]] = {}
    for s in world.subnets:
        free_by_vpc.setdefault(s.vpc_id, []).extend(_free_ips(rng, s.cidr, used_private, 6))
    lb_priv_by_vpc: dict[str, list[str]] = {}
    for lb in world.load_balancers:
        lb_priv_by_vpc.setdefault(lb.vpc_id, []).extend(lb.private_ips)
    collector_by_vpc = {
        v.id: f"crn:v1:bluemix:public:is:{v.region}:a/{world.account}::flow-log-collector:"
              f"r006-{_uuid_from('collector', world.account, v.id)}"
        for v in world.vpcs}
    ctxs: list[NicContext] = []
    for inst in world.instances:
        for nic in inst.nics:
            own_fips = set(fip_by_nic.get(nic.id, ()))
            rts = ("all",) if rng.random() < ALL_RECORD_SHARE else ("ingress", "egress")
            base = int(DEFAULT_START.timestamp())
            ctxs.append(NicContext(
                nic=nic, instance=inst, subnet=subnets[nic.subnet_id], vpc=vpcs[inst.vpc_id],
                region=inst.region, account=world.account, collector_crn=collector_by_vpc[inst.vpc_id],
                peers=tuple(ip for ip in nic_ips_by_vpc.get(inst.vpc_id, ()) if ip != nic.ip),
                subnet_free=tuple(free_by_vpc.get(inst.vpc_id, ())),
                lb_private=tuple(lb_priv_by_vpc.get(inst.vpc_id, ())),
                world_public=tuple(ip for ip in all_public if ip not in own_fips),
                has_fip=bool(own_fips), offset_s=rng.randint(0, INTERVAL_S - 1), record_types=rts,
                stream_start={rt: base - rng.randint(3600, 4 * 86400) for rt in rts},
                seq_start={rt: rng.randint(0, 40) for rt in rts}))
    exclude = set(all_public)
    ctx = WorldContext(world=world, nics=ctxs,
                       internet_clients=_public_ips(rng, 400, exclude),
                       saas_servers=_public_ips(rng, 40, exclude),
                       admin_ips=_public_ips(rng, 4, exclude),
                       scanners=_public_ips(rng, 120, exclude))
    _CONTEXTS[id(world)] = ctx
    return ctx


# ----------------------------------------------------------------------------------------------------------
# keys

def make_key(ctx: NicContext, record_type: str, capture_start: int, stream_start: int, seq: int,
             *, encode: bool = True) -> str:
    q = crn_quote if encode else (lambda s: s)
    t = time.gmtime(capture_start)
    return (f"{KEY_PREFIX}/account={ctx.account}/region={ctx.region}/vpc-id={q(ctx.vpc.crn)}"
            f"/subnet-id={q(ctx.subnet.crn)}/endpoint-type=vnics/instance-id={q(ctx.instance.crn)}"
            f"/vnic-id={ctx.nic.id}/record-type={record_type}/year={t.tm_year:04d}/month={t.tm_mon:02d}"
            f"/day={t.tm_mday:02d}/hour={t.tm_hour:02d}/stream-id={stream_id_for(stream_start)}/{seq:08d}.gz")


# ----------------------------------------------------------------------------------------------------------
# flows

def _ri(rng: random.Random, a: int, b: int) -> int:
    """randint without randrange's checks (hot path); same distribution for our ranges."""
    return a + int(rng.random() * (b - a + 1))


def _ephemeral(rng: random.Random) -> int:
    return _ri(rng, 32768, 60999)


def _pick(rng: random.Random, pool: Sequence[str], skew: float = 1.6) -> str:
    """Skewed pick: a few remote ends get most of the traffic."""
    return pool[min(len(pool) - 1, int(len(pool) * rng.random() ** skew))]


# lifecycle: short (started+ended in window), cont (neither), start (started, still open), end (ended)
_LIFE_SHORT = ("short",)


def _flow(rng: random.Random, cs: int, ce: int, direction: str, action: str, iip: str, iport: int, tip: str,
          tport: int, proto: int, life: str, pkts_i: int, bpp_i: tuple[int, int], reply: tuple[float, float],
          bpp_t: tuple[int, int]) -> dict:
    if life == "short":
        st = _ri(rng, cs, ce - 1)
        et = min(ce, st + int(rng.expovariate(0.4)))
        conn, wi, wt = st, True, True
    elif life == "cont":
        st = cs + _ri(rng, 0, 15)
        et = ce - _ri(rng, 0, 15)
        conn, wi, wt = cs - _ri(rng, 60, 3 * 86400), False, False
    elif life == "start":
        st = _ri(rng, cs, ce - 30)
        et = ce - _ri(rng, 0, 10)
        conn, wi, wt = st, True, False
    else:  # "end"
        st = cs + _ri(rng, 0, 10)
        et = _ri(rng, st, ce)
        conn, wi, wt = cs - _ri(rng, 60, 86400), False, True
    b_i = pkts_i * _ri(rng, *bpp_i)
    if action == "rejected" or reply[1] <= 0:
        pkts_t = b_t = 0
    else:
        pkts_t = max(1, int(pkts_i * rng.uniform(*reply)))
        b_t = pkts_t * _ri(rng, *bpp_t)
    if wi:
        cb_i, cp_i, cb_t, cp_t = b_i, pkts_i, b_t, pkts_t
    else:
        k = rng.uniform(0.5, 60.0)
        extra_p = _ri(rng, 1, 50)
        cp_i = pkts_i + int(pkts_i * k) + extra_p
        cb_i = b_i + int(b_i * k) + extra_p * bpp_i[0]
        cp_t = pkts_t + int(pkts_t * k) + (extra_p if reply[1] > 0 else 0)
        cb_t = b_t + int(b_t * k) + (extra_p * bpp_t[0] if reply[1] > 0 else 0)
    if rng.random() < EMPTY_TIME_SHARE:
        s_st = s_et = ""
    else:
        s_st, s_et = fmt_time(st), fmt_time(et)
    return {"start_time": s_st, "end_time": s_et, "connection_start_time": fmt_time(conn),
            "direction": direction, "action": action, "initiator_ip": iip, "target_ip": tip,
            "initiator_port": iport, "target_port": tport, "transport_protocol": proto, "ether_type": "IPv4",
            "was_initiated": wi, "was_terminated": wt,
            "bytes_from_initiator": b_i, "packets_from_initiator": pkts_i,
            "bytes_from_target": b_t, "packets_from_target": pkts_t,
            "cumulative_bytes_from_initiator": cb_i, "cumulative_packets_from_initiator": cp_i,
            "cumulative_bytes_from_target": cb_t, "cumulative_packets_from_target": cp_t}


def _life(rng: random.Random, long_share: float) -> str:
    if rng.random() >= long_share:
        return "short"
    return ("cont", "start", "end")[min(2, int(rng.random() * 3))]


_SERVICE_PORTS = (5432, 6379, 9092, 8443, 3306, 27017, 8080, 2379)
_SCAN_PORTS = (22, 23, 80, 443, 445, 1433, 3306, 3389, 5900, 6379, 8080, 8443, 9200, 11211)


def _in_https(rng, wc, c, cs, ce):
    pool = wc.internet_clients if (c.has_fip or not c.world_public or rng.random() < 0.85) else c.world_public
    return _flow(rng, cs, ce, "I", "accepted", _pick(rng, pool), _ri(rng, 1024, 65535), c.nic.ip,
                 rng.choice((443, 443, 443, 80)), 6, _life(rng, 0.2), _ri(rng, 5, 120), (52, 420), (0.8, 2.5),
                 (200, 1448))


def _in_world_public(rng, wc, c, cs, ce):
    src = _pick(rng, c.world_public) if c.world_public else _pick(rng, wc.internet_clients)
    return _flow(rng, cs, ce, "I", "accepted", src, _ephemeral(rng), c.nic.ip, 443, 6, _life(rng, 0.3),
                 _ri(rng, 5, 80), (52, 400), (0.8, 2.0), (200, 1448))


def _in_lb(rng, wc, c, cs, ce):
    src = _pick(rng, c.lb_private) if c.lb_private else _pick(rng, c.peers or wc.internet_clients)
    return _flow(rng, cs, ce, "I", "accepted", src, _ephemeral(rng), c.nic.ip, rng.choice((80, 8080, 443)), 6,
                 _life(rng, 0.4), _ri(rng, 4, 200), (52, 600), (0.8, 2.0), (100, 1448))


def _in_ssh(rng, wc, c, cs, ce):
    src = rng.choice(wc.admin_ips) if (not c.peers or rng.random() < 0.5) else _pick(rng, c.peers)
    return _flow(rng, cs, ce, "I", "accepted", src, _ri(rng, 1024, 65535), c.nic.ip, 22, 6, _life(rng, 0.8),
                 _ri(rng, 10, 400), (52, 200), (0.8, 1.5), (52, 600))


def _in_east_west(rng, wc, c, cs, ce):
    src = _pick(rng, c.peers) if c.peers else _pick(rng, c.subnet_free or wc.internet_clients)
    return _flow(rng, cs, ce, "I", "accepted", src, _ephemeral(rng), c.nic.ip, rng.choice(_SERVICE_PORTS), 6,
                 _life(rng, 0.6), _ri(rng, 2, 500), (60, 900), (0.5, 2.0), (60, 1448))


def _in_subnet(rng, wc, c, cs, ce):
    src = rng.choice(c.subnet_free) if c.subnet_free else _pick(rng, wc.internet_clients)
    return _flow(rng, cs, ce, "I", "accepted", src, _ephemeral(rng), c.nic.ip, rng.choice(_SERVICE_PORTS), 6,
                 _life(rng, 0.3), _ri(rng, 2, 60), (60, 400), (0.5, 2.0), (60, 1448))


def _in_scan(rng, wc, c, cs, ce):
    proto = 6 if rng.random() < 0.85 else 17
    return _flow(rng, cs, ce, "I", "rejected", _pick(rng, wc.scanners, 1.2), _ri(rng, 1024, 65535), c.nic.ip,
                 rng.choice(_SCAN_PORTS) if rng.random() < 0.7 else _ri(rng, 1, 65535), proto, "short",
                 _ri(rng, 1, 3), (40, 60), (0.0, 0.0), (0, 0))


def _out_dns(rng, wc, c, cs, ce):
    n = _ri(rng, 1, 2)
    return _flow(rng, cs, ce, "O", "accepted", c.nic.ip, _ephemeral(rng), rng.choice(IBM_DNS), 53, 17, "short",
                 n, (58, 90), (1.0, 1.0), (90, 320))


def _out_ntp(rng, wc, c, cs, ce):
    return _flow(rng, cs, ce, "O", "accepted", c.nic.ip, rng.choice((123, _ephemeral(rng))), IBM_NTP[0], 123, 17,
                 "short", 1, (76, 76), (1.0, 1.0), (76, 76))


def _out_dhcp(rng, wc, c, cs, ce):
    # the one kind of record whose local side is not the vNIC IP: the client has no address yet
    return _flow(rng, cs, ce, "O", "accepted", "0.0.0.0", 68, "255.255.255.255", 67, 17, "short",
                 _ri(rng, 1, 2), (328, 350), (0.0, 0.0), (0, 0))


def _out_https(rng, wc, c, cs, ce):
    return _flow(rng, cs, ce, "O", "accepted", c.nic.ip, _ephemeral(rng), _pick(rng, wc.saas_servers), 443, 6,
                 _life(rng, 0.25), _ri(rng, 5, 300), (52, 700), (0.7, 3.0), (100, 1448))


def _out_east_west(rng, wc, c, cs, ce):
    dst = _pick(rng, c.peers) if c.peers else _pick(rng, c.subnet_free or wc.saas_servers)
    return _flow(rng, cs, ce, "O", "accepted", c.nic.ip, _ephemeral(rng), dst, rng.choice(_SERVICE_PORTS), 6,
                 _life(rng, 0.6), _ri(rng, 2, 500), (60, 900), (0.5, 2.0), (60, 1448))


def _out_subnet(rng, wc, c, cs, ce):
    dst = rng.choice(c.subnet_free) if c.subnet_free else _pick(rng, wc.saas_servers)
    return _flow(rng, cs, ce, "O", "accepted", c.nic.ip, _ephemeral(rng), dst, rng.choice((443, 8443, 5432)), 6,
                 _life(rng, 0.3), _ri(rng, 2, 60), (60, 400), (0.5, 2.0), (60, 1448))


def _out_world_public(rng, wc, c, cs, ce):
    dst = _pick(rng, c.world_public) if c.world_public else _pick(rng, wc.saas_servers)
    return _flow(rng, cs, ce, "O", "accepted", c.nic.ip, _ephemeral(rng), dst, 443, 6, _life(rng, 0.3),
                 _ri(rng, 5, 80), (52, 400), (0.8, 2.0), (200, 1448))


def _out_syslog(rng, wc, c, cs, ce):
    dst = _pick(rng, c.peers) if c.peers else _pick(rng, wc.saas_servers)
    return _flow(rng, cs, ce, "O", "accepted", c.nic.ip, _ephemeral(rng), dst, 514, 17, _life(rng, 0.5),
                 _ri(rng, 1, 200), (80, 600), (0.0, 0.0), (0, 0))


def _out_rejected(rng, wc, c, cs, ce):
    return _flow(rng, cs, ce, "O", "rejected", c.nic.ip, _ephemeral(rng), _pick(rng, wc.internet_clients),
                 rng.choice((25, 465, 6667, 4444)), 6, "short", _ri(rng, 1, 3), (40, 60), (0.0, 0.0), (0, 0))


# (builder, weight) per direction
_INBOUND = ((_in_https, 30), (_in_world_public, 6), (_in_lb, 12), (_in_ssh, 3), (_in_east_west, 20),
            (_in_subnet, 6), (_in_scan, 14))
_OUTBOUND = ((_out_dns, 28), (_out_ntp, 4), (_out_https, 25), (_out_east_west, 22), (_out_subnet, 6),
             (_out_world_public, 6), (_out_syslog, 4), (_out_rejected, 2))


def _cum(table):
    fns, acc, out = [], 0, []
    for fn, w in table:
        acc += w
        fns.append(fn)
        out.append(acc)
    return fns, out


_IN_FNS, _IN_CUM = _cum(_INBOUND)
_OUT_FNS, _OUT_CUM = _cum(_OUTBOUND)


def make_flows(rng: random.Random, wc: WorldContext, c: NicContext, record_type: str, cs: int, ce: int,
               n: int) -> list[dict]:
    """n records for one vNIC window; record_type steers the direction mix."""
    p_in = {"ingress": 1.0 - OFF_DIRECTION_SHARE, "egress": OFF_DIRECTION_SHARE}.get(record_type, 0.5)
    flows = []
    choices = rng.choices
    rand = rng.random
    for _ in range(n):
        if rand() < p_in:
            fn = choices(_IN_FNS, cum_weights=_IN_CUM)[0]
        else:
            fn = choices(_OUT_FNS, cum_weights=_OUT_CUM)[0]
        flows.append(fn(rng, wc, c, cs, ce))
    if n >= 20 and rand() < 0.15:   # a DHCP renewal now and then
        flows[rng.randrange(n)] = _out_dhcp(rng, wc, c, cs, ce)
    return flows


def make_document(c: NicContext, cs: int, ce: int, flows: list[dict], *, state: str = "ok") -> dict:
    return {"version": VERSION, "collector_crn": c.collector_crn, "attached_endpoint_type": "vnic",
            "network_interface_id": c.nic.id, "instance_crn": c.instance.crn, "vpc_crn": c.vpc.crn,
            "capture_start_time": fmt_time(cs), "capture_end_time": fmt_time(ce), "state": state,
            "number_of_flow_logs": len(flows), "flow_logs": flows}


def flow_count_for(rng: random.Random, mean_flows: float) -> int:
    """Long-tailed (log-normal, sigma 1) count with the given mean, at least 1, capped at 12x the mean."""
    sigma = 1.0
    mu = math.log(max(mean_flows, 1.0)) - sigma * sigma / 2
    return max(1, min(int(mean_flows * 12) + 1, int(rng.lognormvariate(mu, sigma) + 0.5)))


@dataclass
class Sample:
    """A valid object for a random vNIC (used by devstack.badinputs to derive bad variants)."""
    ctx: NicContext
    record_type: str
    capture_start: int
    stream_start: int
    seq: int
    doc: dict

    def key(self, *, encode: bool = True) -> str:
        return make_key(self.ctx, self.record_type, self.capture_start, self.stream_start, self.seq,
                        encode=encode)


def sample(world: Any, rng: random.Random, *, start: datetime = DEFAULT_START, flows: int = 3) -> Sample:
    """A random valid object on its own fresh stream (keys do not collide with generate_objects')."""
    wc = world_context(world)
    c = rng.choice(wc.nics)
    rt = rng.choice(c.record_types)
    cs = int(start.timestamp()) + c.offset_s + INTERVAL_S * rng.randint(0, 11)
    stream_start = cs - rng.randint(1, 30 * 86400)
    seq = rng.randint(1000, 99_999_999)
    return Sample(c, rt, cs, stream_start, seq,
                  make_document(c, cs, cs + INTERVAL_S, make_flows(rng, wc, c, rt, cs, cs + INTERVAL_S, flows)))


# ----------------------------------------------------------------------------------------------------------
# objects

def _good_object(wc: WorldContext, c: NicContext, rt: str, interval: int, start_ts: int, rng: random.Random,
                 empty: bool, mean_flows: float, keep_flows: bool) -> tuple[GeneratedObject, bytes]:
    """The object (body still empty) and its uncompressed JSON document."""
    cs = start_ts + c.offset_s + interval * INTERVAL_S
    ce = cs + INTERVAL_S
    n = 0 if empty else flow_count_for(rng, mean_flows)
    flows = make_flows(rng, wc, c, rt, cs, ce, n) if n else []
    doc = make_document(c, cs, ce, flows)
    key = make_key(c, rt, cs, c.stream_start[rt], c.seq_start[rt] + interval)
    obj = GeneratedObject(key=key, body=b"", metadata=header_metadata(doc), flows=flows if keep_flows else None,
                          kind="empty" if empty else "good", flow_count=n, chf_count=chf_count(flows))
    return obj, orjson.dumps(doc)


def _with_body(obj: GeneratedObject, raw: bytes) -> GeneratedObject:
    obj.body = gzip_bytes(raw)
    return obj


def _plan(wc: WorldContext, objects: int) -> Iterator[tuple[NicContext, str, int]]:
    """Interval-major: every vNIC writes its ingress/egress pair (or one 'all') per 5-minute interval."""
    made = 0
    interval = 0
    while made < objects:
        for c in wc.nics:
            for rt in c.record_types:
                if made >= objects:
                    return
                yield c, rt, interval
                made += 1
        interval += 1


def iter_objects(world: Any, *, objects: int, seed: int, empty_share: float = 0.1, mean_flows: float = 150,
                 start: datetime = DEFAULT_START, bad: int = 0, tricky: int = 0, bad_kinds: Sequence[str] | None = None,
                 keep_flows: bool = True, compress_workers: int | None = None) -> Iterator[GeneratedObject]:
    """Yield `objects` flow-log objects (good + empty), plus `bad` bad and `tricky` tricky-good catalogue
    objects interleaved at seeded positions. Deterministic for (world, seed, arguments): gzip runs in a few
    threads (zlib releases the GIL) while the next documents are built, but results come out in order."""
    from devstack import badinputs  # late import: badinputs builds on this module

    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    start_ts = int(start.timestamp())
    wc = world_context(world)
    if not wc.nics:
        raise ValueError("world has no vNICs")
    names = list(bad_kinds) if bad_kinds is not None else list(badinputs.BAD_KINDS)
    extra: list[tuple[str, int]] = [(names[i % len(names)], i) for i in range(bad)] if names else []
    extra += [(badinputs.TRICKY_GOOD_KINDS[i % len(badinputs.TRICKY_GOOD_KINDS)], bad + i) for i in range(tricky)]
    total = objects + len(extra)
    place_rng = random.Random(f"blueflow-place:{seed}")
    slots = dict(zip(sorted(place_rng.sample(range(total), len(extra))), extra))
    plan = _plan(wc, objects)
    seen: set[str] = set()
    workers = compress_workers if compress_workers is not None else min(4, os.cpu_count() or 1)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bf-gzip") if workers > 1 else None
    ahead: deque = deque()
    try:
        for pos in range(total):
            if pos in slots:
                name, i = slots[pos]
                obj = badinputs.make_object(name, world, random.Random(f"blueflow-bad:{seed}:{i}"), start=start,
                                            keep_flows=keep_flows)
                if obj.key in seen:   # astronomically unlikely; keep keys unique anyway
                    obj = badinputs.make_object(name, world, random.Random(f"blueflow-bad2:{seed}:{i}"),
                                                start=start, keep_flows=keep_flows)
                item: Any = obj
            else:
                c, rt, interval = next(plan)
                rng = random.Random(f"blueflow-obj:{seed}:{pos}")
                empty = rng.random() < empty_share
                obj, raw = _good_object(wc, c, rt, interval, start_ts, rng, empty, mean_flows, keep_flows)
                item = pool.submit(_with_body, obj, raw) if pool is not None else _with_body(obj, raw)
            seen.add(obj.key)
            ahead.append(item)
            while len(ahead) > 2 * workers:
                first = ahead.popleft()
                yield first.result() if isinstance(first, Future) else first
        while ahead:
            first = ahead.popleft()
            yield first.result() if isinstance(first, Future) else first
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def generate_objects(world: Any, *, objects: int, seed: int, empty_share: float = 0.1, mean_flows: float = 150,
                     start: datetime = DEFAULT_START, bad: int = 0, tricky: int = 0,
                     bad_kinds: Sequence[str] | None = None) -> list[GeneratedObject]:
    return list(iter_objects(world, objects=objects, seed=seed, empty_share=empty_share, mean_flows=mean_flows,
                             start=start, bad=bad, tricky=tricky, bad_kinds=bad_kinds))


# ----------------------------------------------------------------------------------------------------------
# I/O edge: upload, settings, CLI

@dataclass
class WriteResult:
    written: int = 0
    bytes: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)   # (key, error class + message)


def _put(cos_client: Any, bucket: str, obj: GeneratedObject) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": obj.key, "Body": obj.body, "Metadata": obj.metadata}
    if obj.content_encoding:
        kwargs["ContentEncoding"] = obj.content_encoding
    cos_client.put_object(**kwargs)


def write_objects(cos_client: Any, bucket: str, objects: Iterable[GeneratedObject], workers: int = 8,
                  on_written=None) -> WriteResult:
    """Upload objects with put_object (header as Metadata) from a thread pool; bounded in-flight window so
    an iterator of objects is consumed lazily. Failures are collected, not raised."""
    result = WriteResult()
    window = max(1, workers) * 4
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="bf-put") as pool:
        pending: dict[Any, GeneratedObject] = {}

        def drain(block_until: int) -> None:
            while len(pending) > block_until:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    obj = pending.pop(fut)
                    err = fut.exception()
                    if err is None:
                        result.written += 1
                        result.bytes += len(obj.body)
                        if on_written is not None:
                            on_written(obj)
                    else:
                        result.failed.append((obj.key, f"{type(err).__name__}: {err}"))

        for obj in objects:
            pending[pool.submit(_put, cos_client, bucket, obj)] = obj
            if len(pending) >= window:
                drain(window - 1)
        drain(0)
    return result


def load_devstack_env(paths: Sequence[Path] | None = None) -> dict[str, str]:
    """Settings: the local stack's env file (KEY=value lines, in $BLUEFLOW_DEVSTACK_DIR or .devstack) overlaid by
    the process environment."""
    found: dict[str, str] = {}
    from devstack.stack import state_dir  # honours $BLUEFLOW_DEVSTACK_DIR

    candidates = paths if paths is not None else [state_dir() / "env"]
    for p in candidates:
        if p.is_file():
            for line in p.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, v = line.split("=", 1)
                    if k.startswith("export "):
                        k = k[len("export "):]
                    found.setdefault(k.strip(), v.strip().strip("'\""))
            break
    found.update({k: v for k, v in os.environ.items() if k.startswith(("BLUEFLOW_", "IBM_"))})
    return found


def _cos_client(settings: dict[str, str]) -> Any:
    endpoint = settings.get("BLUEFLOW_COS_ENDPOINT")
    if not endpoint:
        raise SystemExit("generate: BLUEFLOW_COS_ENDPOINT is not set (run `blueflow-dev devstack up` or export it)")
    access, secret = settings.get("BLUEFLOW_COS_HMAC_ACCESS_KEY"), settings.get("BLUEFLOW_COS_HMAC_SECRET_KEY")
    from connectors.cos import make_cos_client

    if access and secret:
        return make_cos_client(endpoint, hmac_access_key=access, hmac_secret_key=secret)
    return make_cos_client(endpoint, api_key=settings.get("IBM_COS_API_KEY"),
                           service_instance=settings.get("IBM_SERVICE_INSTANCE"),
                           iam_token_url=(settings["BLUEFLOW_IAM_URL"].rstrip("/") + "/identity/token"
                                          if settings.get("BLUEFLOW_IAM_URL") else None))


def _ensure_bucket(client: Any, bucket: str) -> None:
    try:
        client.head_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - any failure: try to create, which reports the real problem
        try:
            client.create_bucket(Bucket=bucket)
        except Exception as err:  # noqa: BLE001
            if "BucketAlready" not in type(err).__name__ and "BucketAlready" not in str(err):
                raise


def _parse_start(value: str | None) -> datetime:
    if not value:
        return DEFAULT_START
    if value == "now":
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        return now - timedelta(hours=1)
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blueflow-dev generate", description="Write synthetic IBM VPC flow logs.")
    p.add_argument("--objects", type=int, default=100, help="flow-log objects (good + empty)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bad", type=int, default=0, help="extra bad-input objects (cycling the catalogue)")
    p.add_argument("--tricky", type=int, default=0, help="extra tricky-but-valid objects")
    p.add_argument("--bad-kinds", default=None, help="comma-separated bad kinds (default: all defaults)")
    p.add_argument("--empty-share", type=float, default=0.1)
    p.add_argument("--mean-flows", type=float, default=150)
    p.add_argument("--start", default=None, help="RFC 3339 start of the first window, or 'now' (default fixed)")
    p.add_argument("--bucket", default=None, help="default: BLUEFLOW_BUCKET")
    p.add_argument("--world-seed", type=int, default=None, help="default: BLUEFLOW_WORLD_SEED or 1")
    p.add_argument("--regions", default=None, help="default: BLUEFLOW_REGIONS or us-south,eu-de")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--manifest", default=None, help="write a JSON-lines manifest of what was written")
    p.add_argument("--dry-run", action="store_true", help="generate only, do not upload")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_devstack_env()
    from devstack.world import build_world

    world_seed = args.world_seed if args.world_seed is not None else int(settings.get("BLUEFLOW_WORLD_SEED", "1"))
    regions = tuple(r for r in (args.regions or settings.get("BLUEFLOW_REGIONS", "us-south,eu-de")).split(",") if r)
    world = build_world(seed=world_seed, regions=regions)
    bad_kinds = [k for k in args.bad_kinds.split(",") if k] if args.bad_kinds else None
    summary = {"objects": 0, "good": 0, "empty": 0, "bad": 0, "flows": 0, "chf": 0, "bytes": 0, "failed": 0}
    manifest_lines: list[bytes] = []

    def account(obj: GeneratedObject) -> None:
        summary["objects"] += 1
        summary["bytes"] += len(obj.body)
        summary["flows"] += obj.flow_count
        summary["chf"] += obj.chf_count
        summary[obj.kind if obj.kind in ("good", "empty") else "bad"] += 1
        if args.manifest:
            manifest_lines.append(orjson.dumps(obj.manifest_entry()))

    objs = iter_objects(world, objects=args.objects, seed=args.seed, empty_share=args.empty_share,
                        mean_flows=args.mean_flows, start=_parse_start(args.start), bad=args.bad,
                        tricky=args.tricky, bad_kinds=bad_kinds, keep_flows=False)
    t0 = time.monotonic()
    if args.dry_run:
        for obj in objs:
            account(obj)
    else:
        bucket = args.bucket or settings.get("BLUEFLOW_BUCKET")
        if not bucket:
            raise SystemExit("generate: no bucket: give --bucket, set BLUEFLOW_BUCKET, or start the local stack "
                             "(blueflow-dev devstack up; it writes $BLUEFLOW_DEVSTACK_DIR/env)")
        client = _cos_client(settings)
        _ensure_bucket(client, bucket)
        res = write_objects(client, bucket, objs, workers=args.workers, on_written=account)
        summary["failed"] = len(res.failed)
        for key, err in res.failed[:5]:
            print(f"generate: put failed for {key}: {err}", file=sys.stderr)
    summary["seconds"] = round(time.monotonic() - t0, 3)
    if args.manifest:
        Path(args.manifest).write_bytes(b"\n".join(manifest_lines) + (b"\n" if manifest_lines else b""))
    print(json.dumps(summary))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
