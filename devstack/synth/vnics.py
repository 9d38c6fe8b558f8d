"""Per-vNIC facts of a World, precomputed once per World: its peers, free subnet IPs, load balancers, public
addresses of the world and outside it, record types and stream starts (what traffic.py draws flows from)."""
from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass
from typing import Any

from devstack.synth.layout import DEFAULT_START, INTERVAL_S, uuid_from

ALL_RECORD_SHARE = 0.1      # share of vNICs whose collector writes record-type=all instead of ingress/egress pairs


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
              f"r006-{uuid_from('collector', world.account, v.id)}"
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
