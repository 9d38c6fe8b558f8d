"""`build_world(seed)`: the seeded fake VPC estate (world.py's model), the same `World` for the same arguments:
per region VPCs of themed subnets and instances, floating IPs, one load balancer, one VPN gateway and one public
gateway per VPC; private /24 subnets unique across the world, public addresses from IBM-looking ranges."""
from __future__ import annotations

import ipaddress
import random
import uuid

from devstack.synth.world import (FloatingIp, Gateway, Instance, LoadBalancer, Nic, Subnet, Vpc, World, crn,
                                  region_prefix, zone_prefix)


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


class _Builder:
    """Builds one world; the seeded draws happen in a fixed order (the same world for the same arguments)."""

    def __init__(self, seed: int, regions: tuple[str, ...], *, vpcs_per_region: int, subnets_per_vpc: int,
                 instances_per_subnet: int, vni_fraction: float, floating_ip_fraction: float, zones_per_region: int):
        self.seed, self.regions = seed, regions
        self.vpcs_per_region, self.subnets_per_vpc = vpcs_per_region, subnets_per_vpc
        self.instances_per_subnet, self.zones_per_region = instances_per_subnet, zones_per_region
        self.vni_fraction, self.floating_ip_fraction = vni_fraction, floating_ip_fraction
        self.rng = _Rng(seed)
        self.account = self.rng.hex32()
        self.resource_group_id = self.rng.hex32()
        self.vpcs: list[Vpc] = []
        self.subnets: list[Subnet] = []
        self.instances: list[Instance] = []
        self.fips: list[FloatingIp] = []
        self.lbs: list[LoadBalancer] = []
        self.gws: list[Gateway] = []
        self.pools: dict[str, _Pool] = {}

    def world(self) -> World:
        for ri, region in enumerate(self.regions):
            zones = [f"{region}-{z}" for z in range(1, self.zones_per_region + 1)]
            for vi in range(self.vpcs_per_region):
                self.vpc(ri, region, zones, vi)
        return World(self.account, self.regions, tuple(self.vpcs), tuple(self.subnets), tuple(self.instances),
                     tuple(self.fips), tuple(self.lbs), tuple(self.gws), self.seed, self.resource_group_id)

    def vpc(self, ri: int, region: str, zones: list[str], vi: int) -> None:
        """One VPC of a theme: its subnets, instances, load balancer and gateways."""
        theme, tiers = _THEMES[vi % len(_THEMES)]
        env = _ENVS[(ri + vi // len(_THEMES)) % len(_ENVS)]
        suffix = "" if vi < len(_THEMES) else f"-{vi // len(_THEMES)}"
        stem = f"{env}-{theme}{suffix}"
        vid = f"{region_prefix(region)}-{self.rng.uuid()}"
        self.vpcs.append(Vpc(vid, crn(self.account, region, "vpc", vid), f"{stem}-vpc", region))
        octet2 = _second_octet(len(self.vpcs) - 1)
        vpc_subnets = [self.subnet(region, zones, vid, vi, si, tiers, stem, octet2)
                       for si in range(self.subnets_per_vpc)]
        self.subnets.extend(vpc_subnets)
        counters: dict[str, int] = {}
        for si, sn in enumerate(vpc_subnets):
            same_zone = [s for s in vpc_subnets if s.zone == sn.zone and s.id != sn.id]
            for _ in range(self.instances_per_subnet):
                self.instance(region, vid, vi, sn, same_zone, tiers[si % len(tiers)], stem, counters)
        self.edge(region, vid, stem, vpc_subnets)

    def subnet(self, region: str, zones: list[str], vid: str, vi: int, si: int, tiers: tuple[str, ...], stem: str,
               octet2: int) -> Subnet:
        zi = si % len(zones)
        zone = zones[zi]
        rnd = si // len(tiers)
        name = f"{tiers[si % len(tiers)]}-subnet-{zone}" + (f"-{rnd + 1}" if rnd else "")
        if vi >= len(_THEMES):
            name = f"{stem}-{name}"
        cidr = f"10.{octet2}.{zi * 64 + si // len(zones)}.0/24"
        sid = f"{zone_prefix(zone)}-{self.rng.uuid()}"
        self.pools[sid] = _Pool(cidr)
        return Subnet(sid, crn(self.account, zone, "subnet", sid), name, cidr, zone, region, vid)

    def instance(self, region: str, vid: str, vi: int, sn: Subnet, same_zone: list[Subnet], tier: str, stem: str,
                 counters: dict[str, int]) -> None:
        """One instance of the subnet (legacy NICs or VNI attachments, one or two), maybe a floating IP."""
        rng = self.rng
        counters[tier] = counters.get(tier, 0) + 1
        iname = f"{tier}-{counters[tier]:02d}"
        if vi >= len(_THEMES):
            iname = f"{stem}-{iname}"
        zp = zone_prefix(sn.zone)
        iid = f"{zp}_{rng.uuid()}"
        uses_vni = rng.r.random() < self.vni_fraction
        n_nics = 2 if rng.r.random() < 0.3 else 1
        nics = []
        for ni in range(n_nics):
            nsub = sn if ni == 0 or not same_zone else rng.r.choice(same_zone)
            nid = f"{zp}-{rng.uuid()}"
            vni_id = f"{zp}-{rng.uuid()}" if uses_vni else ""
            nname = (f"{iname}-att-{ni}" if uses_vni else f"eth{ni}")
            nics.append(Nic(nid, nname, self.pools[nsub.id].take(), nsub.id, vni_id))
        self.instances.append(Instance(iid, crn(self.account, sn.zone, "instance", iid), iname, sn.zone, region,
                                       vid, tuple(nics)))
        if rng.r.random() < self.floating_ip_fraction:
            fid = f"{region_prefix(region)}-{rng.uuid()}"
            self.fips.append(FloatingIp(fid, f"{iname}-fip", rng.public_ip(region), nics[0].id, sn.zone, region))

    def edge(self, region: str, vid: str, stem: str, vpc_subnets: list[Subnet]) -> None:
        """A load balancer over (up to) the first subnet of each zone, a VPN gateway (in the first subnet) and
        a public gateway (first zone)."""
        rng, account, rp = self.rng, self.account, region_prefix(region)
        lb_subnets: list[Subnet] = []
        for sn in vpc_subnets:
            if all(s.zone != sn.zone for s in lb_subnets):
                lb_subnets.append(sn)
        lbid = f"{rp}-{rng.uuid()}"
        self.lbs.append(LoadBalancer(
            lbid, crn(account, region, "load-balancer", lbid), f"{stem}-lb", region, vid,
            tuple(s.id for s in lb_subnets), tuple(self.pools[s.id].take() for s in lb_subnets),
            (rng.public_ip(region), rng.public_ip(region))))
        first = vpc_subnets[0]
        vpnid = f"{zone_prefix(first.zone)}-{rng.uuid()}"
        self.gws.append(Gateway(vpnid, crn(account, region, "vpn", vpnid), f"{stem}-vpn", "vpn", region, vid,
                                first.zone, rng.public_ip(region), self.pools[first.id].take(), first.id))
        pgid = f"{rp}-{rng.uuid()}"
        self.gws.append(Gateway(pgid, crn(account, first.zone, "public-gateway", pgid), f"{stem}-pgw",
                                "public", region, vid, first.zone, rng.public_ip(region), ""))


def build_world(seed: int = 1, regions=("us-south", "eu-de"), vpcs_per_region: int = 2,
                subnets_per_vpc: int = 3, instances_per_subnet: int = 4,
                vni_fraction: float = 0.25, floating_ip_fraction: float = 0.3,
                zones_per_region: int = 3) -> World:
    """Build the deterministic world for `seed`."""
    if isinstance(regions, str):
        regions = tuple(r.strip() for r in regions.split(",") if r.strip())
    return _Builder(seed, tuple(regions), vpcs_per_region=vpcs_per_region, subnets_per_vpc=subnets_per_vpc,
                    instances_per_subnet=instances_per_subnet, vni_fraction=vni_fraction,
                    floating_ip_fraction=floating_ip_fraction, zones_per_region=zones_per_region).world()


if __name__ == "__main__":  # pragma: no cover - quick look at a world
    import sys
    w = build_world(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    print("account", w.account)
    for inst, nic, sn, v in w.nics():
        print(v.name, sn.name, sn.cidr, inst.name, nic.id, nic.ip, "vni" if nic.vni_id else "nic")
