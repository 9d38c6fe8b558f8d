"""Unit tests for streams.state.ipindex (exact IP first, then longest subnet prefix)."""

from connectors.vpc import build_snapshot
from devstack.synth.worldgen import build_world
from streams.state.ipindex import End, IpIndex, SubnetInfo


def ep(ip, kind="nic", **kw):
    base = dict(ip=ip, kind=kind, instance_name="", instance_id="", vnic_id="", subnet_id="", subnet_name="",
                vpc_id="", vpc_name="", zone="", region="us-south")
    base.update(kw)
    return base


SNAP = {
    "region": "us-south", "fetched_at": 0.0,
    "vpcs": [{"id": "r006-v", "crn": "crn:v", "name": "prod-web-vpc"}],
    "subnets": [
        {"id": "0717-wide", "crn": "c1", "name": "wide", "cidr": "10.240.0.0/16", "zone": "us-south-1",
         "vpc_id": "r006-v", "vpc_name": "prod-web-vpc"},
        {"id": "0717-narrow", "crn": "c2", "name": "narrow", "cidr": "10.240.7.0/24", "zone": "us-south-1",
         "vpc_id": "r006-v", "vpc_name": "prod-web-vpc"},
    ],
    "endpoints": [
        ep("10.240.7.4", instance_name="web-01", instance_id="0717_i1", vnic_id="0717-n1", subnet_id="0717-narrow",
           subnet_name="narrow", vpc_id="r006-v", vpc_name="prod-web-vpc", zone="us-south-1"),
        ep("52.116.1.2", "floating_ip", instance_name="web-01", instance_id="0717_i1", vnic_id="0717-n1",
           subnet_id="0717-narrow", subnet_name="narrow", vpc_id="r006-v", vpc_name="prod-web-vpc", zone="us-south-1"),
    ],
}


def test_exact_beats_cidr():
    idx = IpIndex.from_snapshots([SNAP])
    assert idx.lookup("10.240.7.4") == End("us-south", "us-south-1", "prod-web-vpc", "narrow", "web-01", "0717-n1")


def test_longest_prefix():
    idx = IpIndex.from_snapshots([SNAP])
    assert idx.lookup("10.240.7.99") == End("us-south", "us-south-1", "prod-web-vpc", "narrow", "", "")
    assert idx.lookup("10.240.9.1") == End("us-south", "us-south-1", "prod-web-vpc", "wide", "", "")


def test_miss_and_garbage():
    idx = IpIndex.from_snapshots([SNAP])
    assert idx.lookup("8.8.8.8") is None
    assert idx.lookup("not-an-ip") is None
    assert idx.lookup("") is None
    assert IpIndex.empty().lookup("10.240.7.4") is None


def test_floating_ip_maps_to_nic_owner():
    idx = IpIndex.from_snapshots([SNAP])
    e = idx.lookup("52.116.1.2")
    assert e.instance_name == "web-01" and e.vnic_id == "0717-n1" and e.subnet_name == "narrow"


def test_info_helpers_and_cache():
    idx = IpIndex.from_snapshots([SNAP], cache_size=2)
    assert idx.subnet_info("0717-narrow") == SubnetInfo("narrow", "us-south-1", "prod-web-vpc", "us-south")
    assert idx.subnet_info("nope") is None
    assert idx.instance_name("0717_i1") == "web-01" and idx.instance_name("x") is None
    assert idx.vpc_name("r006-v") == "prod-web-vpc"
    for ip in ("10.240.7.4", "10.240.7.5", "10.240.7.6", "10.240.7.4"):
        idx.lookup(ip)
    assert len(idx._cache) == 2
    assert idx.lookup("10.240.7.4").instance_name == "web-01"


def _raw_from_world(world, region):
    """Build raw API-like collections straight from the stand-in renderer (no HTTP)."""
    from devstack.standins.vpc_render import Renderer
    cols = Renderer(world, region, "http://x/" + region + "/v1").collections()
    return cols


def test_world_snapshot_every_nic_and_floating_ip_resolves():
    w = build_world(4)
    snaps = [build_snapshot(r, _raw_from_world(w, r)) for r in w.regions]
    idx = IpIndex.from_snapshots(snaps)
    for inst, nic, sn, vpc in w.nics():
        e = idx.lookup(nic.ip)
        assert e == End(inst.region, inst.zone, vpc.name, sn.name, inst.name, nic.id)
    for f in w.floating_ips:
        inst, nic = w.instance_of_nic(f.target_nic_id), w.nic(f.target_nic_id)
        e = idx.lookup(f.address)
        assert e.instance_name == inst.name and e.vnic_id == nic.id
    for s in w.subnets:
        assert idx.subnet_info(s.id).name == s.name
    for lb in w.load_balancers:
        for ip in lb.private_ips + lb.public_ips:
            assert idx.lookup(ip).instance_name == lb.name
    for g in w.gateways:
        assert idx.lookup(g.public_ip).instance_name == g.name
