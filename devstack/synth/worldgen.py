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
