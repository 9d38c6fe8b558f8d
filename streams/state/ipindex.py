"""Label IPv4 addresses with IBM VPC context, built from VPC metadata snapshots (connectors.vpc).

`IpIndex.from_snapshots(snapshots)` builds, once per snapshot update, an exact-IP table (int(ip) ->
End) and a longest-prefix table over subnet CIDRs (one dict per prefix length, longest first).
`lookup(ip)` tries the exact table, then the subnets (the End then has empty instance_name and
vnic_id), else None; results are cached in a bounded per-index LRU, because the same addresses
recur in every batch.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from typing import Iterable, NamedTuple

__all__ = ["End", "SubnetInfo", "IpIndex"]


class End(NamedTuple):
    region: str
    zone: str
    vpc_name: str
    subnet_name: str
    instance_name: str
    vnic_id: str


class SubnetInfo(NamedTuple):
    name: str
    zone: str
    vpc_name: str
    region: str


_MISS = object()


def _ip_int(ip: str) -> int | None:
    try:
        return int(ipaddress.IPv4Address(ip))
    except (ipaddress.AddressValueError, ValueError, TypeError):
        return None


class IpIndex:
    """Immutable after construction, apart from the lookup cache."""

    __slots__ = ("_exact", "_prefixes", "_subnets", "_instances", "_vpcs", "_cache", "_cache_size")

    def __init__(self, exact: dict[int, End], prefixes: list[tuple[int, int, dict[int, End]]],
                 subnets: dict[str, SubnetInfo], instances: dict[str, str], vpcs: dict[str, str],
                 cache_size: int = 65536):
        self._exact = exact
        self._prefixes = prefixes      # [(prefix_len, netmask_int, {network_int: End})], longest first
        self._subnets = subnets
        self._instances = instances
        self._vpcs = vpcs
        self._cache: OrderedDict[str, End | None] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def empty(cls) -> "IpIndex":
        return cls({}, [], {}, {}, {})

    @classmethod
    def from_snapshots(cls, snapshots: Iterable[dict], cache_size: int = 65536) -> "IpIndex":
        exact: dict[int, End] = {}
        by_len: dict[int, dict[int, End]] = {}
        subnets: dict[str, SubnetInfo] = {}
        instances: dict[str, str] = {}
        vpcs: dict[str, str] = {}
        for snap in snapshots:
            region = snap.get("region", "")
            for v in snap.get("vpcs", []):
                vpcs[v["id"]] = v.get("name", "")
            for s in snap.get("subnets", []):
                vpc_name = s.get("vpc_name") or vpcs.get(s.get("vpc_id", ""), "")
                info = SubnetInfo(s.get("name", ""), s.get("zone", ""), vpc_name, region)
                subnets[s["id"]] = info
                try:
                    net = ipaddress.IPv4Network(s.get("cidr", ""), strict=False)
                except ValueError:
                    continue
                by_len.setdefault(net.prefixlen, {})[int(net.network_address)] = End(
                    region, info.zone, vpc_name, info.name, "", "")
            for e in snap.get("endpoints", []):
                n = _ip_int(e.get("ip", ""))
                if n is None:
                    continue
                if e.get("instance_id") and e.get("kind") in ("nic", "vni", "floating_ip"):
                    instances[e["instance_id"]] = e.get("instance_name", "")
                if n in exact:
                    continue  # first snapshot / endpoint wins
                exact[n] = End(e.get("region") or region, e.get("zone", ""), e.get("vpc_name", ""),
                               e.get("subnet_name", ""), e.get("instance_name", ""), e.get("vnic_id", ""))
        prefixes = [(plen, (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF, table)
                    for plen, table in sorted(by_len.items(), reverse=True)]
        return cls(exact, prefixes, subnets, instances, vpcs, cache_size)

    def __len__(self) -> int:
        return len(self._exact)

    def lookup(self, ip: str) -> End | None:
        cache = self._cache
        hit = cache.get(ip, _MISS)
        if hit is not _MISS:
            cache.move_to_end(ip)
            return hit  # type: ignore[return-value]
        result = self._lookup(ip)
        cache[ip] = result
        if len(cache) > self._cache_size:
            cache.popitem(last=False)
        return result

    def _lookup(self, ip: str) -> End | None:
        n = _ip_int(ip)
        if n is None:
            return None
        end = self._exact.get(n)
        if end is not None:
            return end
        for _plen, mask, table in self._prefixes:
            end = table.get(n & mask)
            if end is not None:
                return end
        return None

    def subnet_info(self, subnet_id: str) -> SubnetInfo | None:
        return self._subnets.get(subnet_id)

    def instance_name(self, instance_id: str) -> str | None:
        return self._instances.get(instance_id)

    def vpc_name(self, vpc_id: str) -> str | None:
        return self._vpcs.get(vpc_id)
