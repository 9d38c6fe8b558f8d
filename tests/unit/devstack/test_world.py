"""Unit tests for the seeded fake IBM estate (devstack.synth.world)."""

import ipaddress
import re

from devstack.synth.world import zone_prefix
from devstack.synth.worldgen import build_world

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CRN = re.compile(r"^crn:v1:bluemix:public:is:(?P<loc>[a-z]+-[a-z]+(?:-\d)?):a/(?P<acct>[0-9a-f]{32})::(?P<type>[a-z-]+):(?P<id>.+)$")


def test_deterministic_for_a_seed():
    assert build_world(7) == build_world(7)
    assert build_world(7).account != build_world(8).account
    assert build_world(7).vpcs != build_world(8).vpcs


def test_sizes():
    w = build_world(1, regions=("us-south", "eu-de"), vpcs_per_region=2, subnets_per_vpc=3, instances_per_subnet=4)
    assert w.regions == ("us-south", "eu-de")
    assert len(w.vpcs) == 4 and len(w.subnets) == 12 and len(w.instances) == 48
    assert len(w.load_balancers) == 4
    assert sorted(g.kind for g in w.gateways) == ["public"] * 4 + ["vpn"] * 4
    assert w.floating_ips
    assert any(i.uses_vni for i in w.instances) and any(not i.uses_vni for i in w.instances)
    assert any(len(i.nics) == 2 for i in w.instances)
    assert all(1 <= len(i.nics) <= 2 for i in w.instances)


def test_id_and_crn_shapes():
    w = build_world(3)
    assert re.fullmatch(r"[0-9a-f]{32}", w.account)
    for v in w.vpcs:
        assert re.fullmatch(rf"r\d{{3}}-{UUID}", v.id)
        m = CRN.match(v.crn)
        assert m and m["loc"] == v.region and m["type"] == "vpc" and m["id"] == v.id and m["acct"] == w.account
        assert v.name.endswith("-vpc")
    for s in w.subnets:
        assert re.fullmatch(rf"{zone_prefix(s.zone)}-{UUID}", s.id)
        m = CRN.match(s.crn)
        assert m and m["loc"] == s.zone and m["type"] == "subnet" and m["id"] == s.id
        assert s.zone.startswith(s.region + "-")
        assert s.name.endswith(s.zone)
    for i in w.instances:
        assert re.fullmatch(rf"{zone_prefix(i.zone)}_{UUID}", i.id)
        m = CRN.match(i.crn)
        assert m and m["loc"] == i.zone and m["type"] == "instance" and m["id"] == i.id
        for n in i.nics:
            assert re.fullmatch(rf"{zone_prefix(i.zone)}-{UUID}", n.id)
    assert zone_prefix("us-south-1") == "0717" and zone_prefix("us-south-2") == "0727"
    assert zone_prefix("us-south-3") == "0737"


def test_ips_inside_cidrs_and_unique():
    w = build_world(5)
    nets = {s.id: ipaddress.IPv4Network(s.cidr) for s in w.subnets}
    for a in nets.values():
        assert a.prefixlen == 24 and a.subnet_of(ipaddress.IPv4Network("10.0.0.0/8"))
    assert len(set(nets.values())) == len(nets), "subnet CIDRs overlap"
    private = []
    for inst, nic, sn, vpc in w.nics():
        addr = ipaddress.IPv4Address(nic.ip)
        assert addr in nets[nic.subnet_id]
        assert int(addr) - int(nets[nic.subnet_id].network_address) >= 4  # IBM reserves .0-.3
        assert sn.vpc_id == vpc.id == inst.vpc_id and sn.zone == inst.zone
        private.append(nic.ip)
    for lb in w.load_balancers:
        for sid, ip in zip(lb.subnet_ids, lb.private_ips):
            assert ipaddress.IPv4Address(ip) in nets[sid]
            private.append(ip)
    for g in w.gateways:
        if g.private_ip:
            assert ipaddress.IPv4Address(g.private_ip) in nets[g.subnet_id]
            private.append(g.private_ip)
    assert len(private) == len(set(private))
    public = w.public_ips()
    assert len(public) == len(set(public))
    assert all(not ipaddress.IPv4Address(p).is_private for p in public)
    assert not set(public) & set(private)


def test_ids_unique_and_helpers():
    w = build_world(11)
    ids = ([v.id for v in w.vpcs] + [s.id for s in w.subnets] + [i.id for i in w.instances]
           + [n.id for i in w.instances for n in i.nics] + [n.vni_id for i in w.instances for n in i.nics if n.vni_id]
           + [f.id for f in w.floating_ips] + [lb.id for lb in w.load_balancers] + [g.id for g in w.gateways])
    assert len(ids) == len(set(ids))
    inst, nic, sn, vpc = next(iter(w.nics()))
    assert w.subnet(sn.id) is sn and w.vpc(vpc.id) is vpc
    assert w.instance_of_nic(nic.id) is inst and w.nic(nic.id) is nic
    for f in w.floating_ips:
        owner = w.instance_of_nic(f.target_nic_id)
        assert owner.zone == f.zone and w.floating_ip_of_nic(f.target_nic_id) is f
    assert sum(1 for _ in w.nics("eu-de")) == sum(len(i.nics) for i in w.instances if i.region == "eu-de")
    names = [(i.region, i.name) for i in w.instances]
    assert len(names) == len(set(names)), "instance names must be unique per region"


def test_other_regions_and_sizes():
    w = build_world(2, regions="us-east,jp-tok,ca-tor", vpcs_per_region=7, subnets_per_vpc=5, instances_per_subnet=2)
    assert len(w.vpcs) == 21 and len(w.subnets) == 105 and len(w.instances) == 210
    assert len({s.cidr for s in w.subnets}) == 105
    assert len({v.name for v in w.vpcs if v.region == "us-east"}) == 7
