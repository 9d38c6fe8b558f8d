"""Flow records for one vNIC's capture window: inbound and outbound patterns (HTTPS, DNS, SSH, east-west,
scans, rejected...) consistent with the World, so remote-end enrichment hits exact IPs and subnet CIDRs; a
long-tailed count per object; `sample`, one valid object that badinputs.py derives bad variants from."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

from devstack.synth.layout import DEFAULT_START, INTERVAL_S, fmt_time, make_document, make_key
from devstack.synth.vnics import NicContext, WorldContext, world_context

IBM_DNS = ("161.26.0.10", "161.26.0.11")
IBM_NTP = ("161.26.0.6",)
EMPTY_TIME_SHARE = 0.02     # share of records with "" start_time/end_time (seen in real data)
OFF_DIRECTION_SHARE = 0.08  # share of records in an ingress/egress object with the other direction


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


def flow_count_for(rng: random.Random, mean_flows: float) -> int:
    """Long-tailed (log-normal, sigma 1) count with the given mean, at least 1, capped at 12x the mean."""
    sigma = 1.0
    mu = math.log(max(mean_flows, 1.0)) - sigma * sigma / 2
    return max(1, min(int(mean_flows * 12) + 1, int(rng.lognormvariate(mu, sigma) + 0.5)))


@dataclass
class Sample:
    """A valid object for a random vNIC (used by devstack.synth.badinputs to derive bad variants)."""
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
