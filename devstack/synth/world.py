"""The seeded fake IBM Cloud VPC estate used by the VPC stand-in and the flow-log generator.

`build_world(seed)` returns the same `World` for the same arguments: VPCs, subnets, instances with
legacy NICs or VNI network attachments, floating IPs, one load balancer, one VPN gateway and one
public gateway per VPC. IDs and CRNs are shaped like real IBM ones (VPC `r006-<uuid>`, subnet and
NIC `0727-<uuid>`, instance `0727_<uuid>`, CRN `crn:v1:bluemix:public:is:<location>:a/<account>::<type>:<id>`).
Private addresses are /24 subnets in 10.240.0.0/12 (unique across the whole world so that one IP
index can cover every region); public addresses come from IBM-looking public ranges.
"""

from __future__ import annotations

import hashlib
import ipaddress
import random
import uuid
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator

__all__ = [
    "Subnet", "Vpc", "Nic", "Instance", "FloatingIp", "LoadBalancer", "Gateway", "World",
    "build_world", "crn", "region_prefix", "zone_prefix",
]


# ---------------------------------------------------------------------------------------------
# Data model. Extra fields have defaults.


@dataclass(frozen=True)
class Subnet:
    id: str            # '0727-<uuid>'
    crn: str           # location = zone
    name: str
    cidr: str
    zone: str
    region: str
    vpc_id: str


@dataclass(frozen=True)
class Vpc:
    id: str            # 'r006-<uuid>'
    crn: str           # location = region
    name: str
    region: str


@dataclass(frozen=True)
class Nic:
    id: str            # '0727-<uuid>'; for VNI instances the network attachment id
    name: str
    ip: str
    subnet_id: str
    vni_id: str = ""   # extra: the virtual network interface id when the instance uses VNI attachments


@dataclass(frozen=True)
class Instance:
    id: str            # '0727_<uuid>'
    crn: str           # location = zone
    name: str
    zone: str
    region: str
    vpc_id: str
    nics: tuple[Nic, ...]

    @property
    def uses_vni(self) -> bool:
        """True when the instance has VNI network attachments instead of legacy network interfaces."""
        return bool(self.nics) and bool(self.nics[0].vni_id)


@dataclass(frozen=True)
class FloatingIp:
    id: str
    name: str
    address: str
    target_nic_id: str
    zone: str
    region: str


@dataclass(frozen=True)
class LoadBalancer:
    id: str
    crn: str
    name: str
    region: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    private_ips: tuple[str, ...]
    public_ips: tuple[str, ...]


@dataclass(frozen=True)
class Gateway:
    id: str
    crn: str
    name: str
    kind: str          # 'vpn' | 'public'
    region: str
    vpc_id: str
    zone: str
    public_ip: str
    private_ip: str    # may be ''
    subnet_id: str = ""  # extra: the VPN gateway's subnet ('' for public gateways)


@dataclass(frozen=True)
class World:
    account: str       # 32 hex
    regions: tuple[str, ...]
    vpcs: tuple[Vpc, ...]
    subnets: tuple[Subnet, ...]
    instances: tuple[Instance, ...]
    floating_ips: tuple[FloatingIp, ...]
    load_balancers: tuple[LoadBalancer, ...]
    gateways: tuple[Gateway, ...]
    seed: int = 0
    resource_group_id: str = field(default="")

    # -- lookup tables (built lazily; the dataclass stays frozen) --------------------------------
    @cached_property
    def _subnets_by_id(self) -> dict[str, Subnet]:
        return {s.id: s for s in self.subnets}

    @cached_property
    def _vpcs_by_id(self) -> dict[str, Vpc]:
        return {v.id: v for v in self.vpcs}

    @cached_property
    def _instances_by_id(self) -> dict[str, Instance]:
        return {i.id: i for i in self.instances}

    @cached_property
    def _nic_owner(self) -> dict[str, tuple[Instance, Nic]]:
        return {n.id: (i, n) for i in self.instances for n in i.nics}

    @cached_property
    def _fip_by_nic(self) -> dict[str, FloatingIp]:
        return {f.target_nic_id: f for f in self.floating_ips}

    # -- helpers ---------------------------------------------------------------------------------
    def subnet(self, subnet_id: str) -> Subnet:
        return self._subnets_by_id[subnet_id]

    def vpc(self, vpc_id: str) -> Vpc:
        return self._vpcs_by_id[vpc_id]

    def instance(self, instance_id: str) -> Instance:
        return self._instances_by_id[instance_id]

    def nic(self, nic_id: str) -> Nic:
        return self._nic_owner[nic_id][1]

    def instance_of_nic(self, nic_id: str) -> Instance:
        return self._nic_owner[nic_id][0]

    def floating_ip_of_nic(self, nic_id: str) -> FloatingIp | None:
        return self._fip_by_nic.get(nic_id)

    def nics(self, region: str | None = None) -> Iterator[tuple[Instance, Nic, Subnet, Vpc]]:
        """Every (instance, nic, subnet, vpc), in world order; optionally only one region's."""
        for inst in self.instances:
            if region is not None and inst.region != region:
                continue
            v = self.vpc(inst.vpc_id)
            for n in inst.nics:
                yield inst, n, self.subnet(n.subnet_id), v

    def in_region(self, region: str) -> "World":
        """The same world restricted to one region (account and ids unchanged)."""
        def keep(items):
            return tuple(x for x in items if x.region == region)
        return World(self.account, (region,), keep(self.vpcs), keep(self.subnets), keep(self.instances),
                     keep(self.floating_ips), keep(self.load_balancers), keep(self.gateways),
                     self.seed, self.resource_group_id)

    def subnets_of_vpc(self, vpc_id: str) -> tuple[Subnet, ...]:
        return tuple(s for s in self.subnets if s.vpc_id == vpc_id)

    def instances_in_subnet(self, subnet_id: str) -> tuple[Instance, ...]:
        return tuple(i for i in self.instances if any(n.subnet_id == subnet_id for n in i.nics))

    def public_ips(self) -> tuple[str, ...]:
        """Every public address in the world (floating IPs, LB public IPs, gateway IPs)."""
        out = [f.address for f in self.floating_ips]
        for lb in self.load_balancers:
            out.extend(lb.public_ips)
        out.extend(g.public_ip for g in self.gateways if g.public_ip)
        return tuple(out)


# ---------------------------------------------------------------------------------------------
# ID shapes

_REGION_PREFIX = {
    "us-south": "r006", "us-east": "r014", "eu-de": "r010", "eu-gb": "r018", "jp-tok": "r022",
    "au-syd": "r026", "jp-osa": "r034", "ca-tor": "r038", "br-sao": "r042", "eu-es": "r050",
}
_ZONE_PREFIXES = {
    "us-south": ("0717", "0727", "0737"), "us-east": ("0757", "0767", "0777"),
    "eu-de": ("02b7", "02c7", "02d7"), "eu-gb": ("0787", "0797", "07a7"),
    "jp-tok": ("02e7", "02f7", "02g7"), "au-syd": ("02h7", "02i7", "02j7"),
}


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def region_prefix(region: str) -> str:
    """The `rNNN` prefix IBM puts on regional resource ids."""
    return _REGION_PREFIX.get(region) or f"r{100 + _stable_int(region) % 800:03d}"


def zone_prefix(zone: str) -> str:
    """The 4-character prefix IBM puts on zonal resource ids (us-south-2 -> '0727')."""
    region, _, n = zone.rpartition("-")
    known = _ZONE_PREFIXES.get(region)
    if known and n.isdigit() and 1 <= int(n) <= len(known):
        return known[int(n) - 1]
    return f"0{_stable_int(zone) % 4096:03x}"[:4]


def crn(account: str, location: str, rtype: str, rid: str) -> str:
    return f"crn:v1:bluemix:public:is:{location}:a/{account}::{rtype}:{rid}"


# ---------------------------------------------------------------------------------------------
# Builder

_THEMES = (
    ("web", ("web", "app", "db")),
    ("data", ("ingest", "etl", "warehouse")),
    ("api", ("gateway", "svc", "cache")),
    ("batch", ("worker", "queue", "store")),
    ("edge", ("proxy", "dns", "bastion")),
    ("ml", ("train", "serve", "feature")),
)
_ENVS = ("prod", "stage", "dev", "test")
_PUBLIC_POOLS = {
    "us-south": ("52.116", "169.59", "150.240", "169.48"),
    "us-east": ("52.117", "169.63", "150.239"),
    "eu-de": ("149.81", "158.177", "161.156"),
    "eu-gb": ("141.125", "158.175", "158.176"),
}
_DEFAULT_PUBLIC_POOL = ("52.118", "169.62", "159.122")


class _Rng:
    """Seeded source of ids and addresses."""

    def __init__(self, seed: int):
        self.r = random.Random(seed)
        self.used_public: set[str] = set()

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.r.getrandbits(128), version=4))

    def hex32(self) -> str:
        return f"{self.r.getrandbits(128):032x}"

    def public_ip(self, region: str) -> str:
        pool = _PUBLIC_POOLS.get(region, _DEFAULT_PUBLIC_POOL)
        while True:
            ip = f"{self.r.choice(pool)}.{self.r.randrange(0, 256)}.{self.r.randrange(1, 255)}"
            if ip not in self.used_public:
                self.used_public.add(ip)
                return ip


class _Pool:
    """Hands out host addresses of a subnet, skipping IBM's reserved .0-.3 and the broadcast."""

    def __init__(self, cidr: str):
        self.net = ipaddress.IPv4Network(cidr)
        self.next = int(self.net.network_address) + 4
        self.last = int(self.net.broadcast_address) - 1

    def take(self) -> str:
        if self.next > self.last:
            raise ValueError(f"subnet {self.net} is full")
        ip = str(ipaddress.IPv4Address(self.next))
        self.next += 1
        return ip


def _second_octet(k: int) -> int:
    # 10.240.0.0/12 first (240..255), then 10.16..10.239 if a very large world needs more
    return 240 + k if k < 16 else 16 + (k - 16) % 224


def build_world(seed: int = 1, regions=("us-south", "eu-de"), vpcs_per_region: int = 2,
                subnets_per_vpc: int = 3, instances_per_subnet: int = 4,
                vni_fraction: float = 0.25, floating_ip_fraction: float = 0.3,
                zones_per_region: int = 3) -> World:
    """Build the deterministic world for `seed`."""
    if isinstance(regions, str):
        regions = tuple(r.strip() for r in regions.split(",") if r.strip())
    regions = tuple(regions)
    rng = _Rng(seed)
    account = rng.hex32()
    resource_group_id = rng.hex32()

    vpcs: list[Vpc] = []
    subnets: list[Subnet] = []
    instances: list[Instance] = []
    fips: list[FloatingIp] = []
    lbs: list[LoadBalancer] = []
    gws: list[Gateway] = []
    vpc_counter = 0

    for ri, region in enumerate(regions):
        rp = region_prefix(region)
        zones = [f"{region}-{z}" for z in range(1, zones_per_region + 1)]
        for vi in range(vpcs_per_region):
            theme, tiers = _THEMES[vi % len(_THEMES)]
            env = _ENVS[(ri + vi // len(_THEMES)) % len(_ENVS)]
            suffix = "" if vi < len(_THEMES) else f"-{vi // len(_THEMES)}"
            stem = f"{env}-{theme}{suffix}"
            vid = f"{rp}-{rng.uuid()}"
            vpc = Vpc(vid, crn(account, region, "vpc", vid), f"{stem}-vpc", region)
            vpcs.append(vpc)
            octet2 = _second_octet(vpc_counter)
            vpc_counter += 1

            vpc_subnets: list[Subnet] = []
            pools: dict[str, _Pool] = {}
            for si in range(subnets_per_vpc):
                zi = si % len(zones)
                zone = zones[zi]
                tier = tiers[si % len(tiers)]
                rnd = si // len(tiers)
                name = f"{tier}-subnet-{zone}" + (f"-{rnd + 1}" if rnd else "")
                if vi >= len(_THEMES):
                    name = f"{stem}-{name}"
                cidr = f"10.{octet2}.{zi * 64 + si // len(zones)}.0/24"
                sid = f"{zone_prefix(zone)}-{rng.uuid()}"
                sn = Subnet(sid, crn(account, zone, "subnet", sid), name, cidr, zone, region, vid)
                vpc_subnets.append(sn)
                pools[sid] = _Pool(cidr)
            subnets.extend(vpc_subnets)

            # instances
            counters: dict[str, int] = {}
            for si, sn in enumerate(vpc_subnets):
                tier = tiers[si % len(tiers)]
                same_zone = [s for s in vpc_subnets if s.zone == sn.zone and s.id != sn.id]
                for _ in range(instances_per_subnet):
                    counters[tier] = counters.get(tier, 0) + 1
                    iname = f"{tier}-{counters[tier]:02d}"
                    if vi >= len(_THEMES):
                        iname = f"{stem}-{iname}"
                    zp = zone_prefix(sn.zone)
                    iid = f"{zp}_{rng.uuid()}"
                    uses_vni = rng.r.random() < vni_fraction
                    n_nics = 2 if rng.r.random() < 0.3 else 1
                    nics = []
                    for ni in range(n_nics):
                        nsub = sn if ni == 0 or not same_zone else rng.r.choice(same_zone)
                        nid = f"{zp}-{rng.uuid()}"
                        vni_id = f"{zp}-{rng.uuid()}" if uses_vni else ""
                        nname = (f"{iname}-att-{ni}" if uses_vni else f"eth{ni}")
                        nics.append(Nic(nid, nname, pools[nsub.id].take(), nsub.id, vni_id))
                    inst = Instance(iid, crn(account, sn.zone, "instance", iid), iname, sn.zone, region,
                                    vid, tuple(nics))
                    instances.append(inst)
                    if rng.r.random() < floating_ip_fraction:
                        fid = f"{rp}-{rng.uuid()}"
                        fips.append(FloatingIp(fid, f"{iname}-fip", rng.public_ip(region), nics[0].id,
                                               sn.zone, region))

            # load balancer over (up to) the first subnet of each zone
            lb_subnets: list[Subnet] = []
            for sn in vpc_subnets:
                if all(s.zone != sn.zone for s in lb_subnets):
                    lb_subnets.append(sn)
            lbid = f"{rp}-{rng.uuid()}"
            lbs.append(LoadBalancer(
                lbid, crn(account, region, "load-balancer", lbid), f"{stem}-lb", region, vid,
                tuple(s.id for s in lb_subnets), tuple(pools[s.id].take() for s in lb_subnets),
                (rng.public_ip(region), rng.public_ip(region))))

            # VPN gateway (in the first subnet) and public gateway (first zone)
            first = vpc_subnets[0]
            vpnid = f"{zone_prefix(first.zone)}-{rng.uuid()}"
            gws.append(Gateway(vpnid, crn(account, region, "vpn", vpnid), f"{stem}-vpn", "vpn", region, vid,
                               first.zone, rng.public_ip(region), pools[first.id].take(), first.id))
            pgid = f"{rp}-{rng.uuid()}"
            gws.append(Gateway(pgid, crn(account, first.zone, "public-gateway", pgid), f"{stem}-pgw",
                               "public", region, vid, first.zone, rng.public_ip(region), ""))

    return World(account, regions, tuple(vpcs), tuple(subnets), tuple(instances), tuple(fips),
                 tuple(lbs), tuple(gws), seed, resource_group_id)


if __name__ == "__main__":  # pragma: no cover - quick look at a world
    import sys
    w = build_world(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    print("account", w.account)
    for inst, nic, sn, v in w.nics():
        print(v.name, sn.name, sn.cidr, inst.name, nic.id, nic.ip, "vni" if nic.vni_id else "nic")
