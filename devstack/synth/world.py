"""The fake IBM Cloud VPC estate used by the VPC stand-in and the flow-log generator: its data model (`World`:
VPCs, subnets, instances with legacy NICs or VNI network attachments, floating IPs, load balancers, gateways)
and IBM's id shapes. worldgen.py builds the same `World` for the same seed. IDs and CRNs are shaped like real
IBM ones (VPC `r006-<uuid>`, subnet and
NIC `0727-<uuid>`, instance `0727_<uuid>`, CRN `crn:v1:bluemix:public:is:<location>:a/<account>::<type>:<id>`).
Private addresses are /24 subnets in 10.240.0.0/12 (unique across the whole world so that one IP
index can cover every region); public addresses come from IBM-looking public ranges.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator

__all__ = [
    "Subnet", "Vpc", "Nic", "Instance", "FloatingIp", "LoadBalancer", "Gateway", "World",
    "crn", "region_prefix", "zone_prefix",
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
