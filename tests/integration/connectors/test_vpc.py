"""Integration: connectors.vpc through the real ibm-vpc SDK against the IAM and VPC stand-ins (in-process)."""

import pytest
import requests

from connectors.vpc import VpcMetadataError, fetch_region_metadata
from devstack.standins import iam, vpc
from devstack.standins.common import BackgroundServer
from devstack.synth.worldgen import build_world
from streams.state.ipindex import IpIndex

KEY = "blueflow-dev-key"
SEED = 1
REGIONS = ("us-south", "eu-de")
Q = {"version": "2024-04-30", "generation": "2"}


@pytest.fixture(scope="module")
def world():
    return build_world(SEED, REGIONS)


@pytest.fixture(scope="module")
def servers(world):
    with BackgroundServer(iam.make_app(api_keys=[KEY, "other-key"])) as iam_srv, \
            BackgroundServer(vpc.make_app(world=world, iam_url=iam_srv.url, max_limit=10)) as vpc_srv:
        yield iam_srv, vpc_srv


@pytest.fixture()
def stack(servers):
    iam_srv, vpc_srv = servers
    for s in servers:
        requests.post(s.url + "/_emulator/reset", timeout=5).raise_for_status()
    return iam_srv.url, vpc_srv.url


def token(iam_url, key=KEY):
    r = requests.post(iam_url + "/identity/token", auth=("bx", "bx"), timeout=5,
                      data={"grant_type": "urn:ibm:params:oauth:grant-type:apikey", "apikey": key,
                            "response_type": "cloud_iam"})
    r.raise_for_status()
    return r.json()["access_token"]


def fetch(stack, region, **kw):
    iam_url, vpc_url = stack
    kw.setdefault("retry_interval", 0.2)
    return fetch_region_metadata(region, kw.pop("api_key", KEY), iam_url=iam_url,
                                 service_url=f"{vpc_url}/{region}/v1", **kw)


def stats(url):
    return requests.get(url + "/_emulator/stats", timeout=5).json()


def test_snapshot_matches_world_and_pages(stack, world):
    snaps = []
    for region in REGIONS:
        snap = fetch(stack, region)
        snaps.append(snap)
        w = world.in_region(region)
        assert snap["region"] == region and snap["fetched_at"] > 0
        assert {v["id"] for v in snap["vpcs"]} == {v.id for v in w.vpcs}
        assert {(s["id"], s["cidr"], s["zone"], s["vpc_id"]) for s in snap["subnets"]} == {
            (s.id, s.cidr, s.zone, s.vpc_id) for s in w.subnets}
        kinds = {}
        for e in snap["endpoints"]:
            kinds.setdefault(e["kind"], set()).add(e["ip"])
            assert e["region"] == region
        nic_ips = {n.ip for i in w.instances if not i.uses_vni for n in i.nics}
        vni_ips = {n.ip for i in w.instances if i.uses_vni for n in i.nics}
        assert kinds["nic"] == nic_ips and kinds["vni"] == vni_ips
        assert kinds["floating_ip"] == {f.address for f in w.floating_ips}
        assert kinds["load_balancer"] == {ip for lb in w.load_balancers for ip in lb.private_ips + lb.public_ips}
        assert kinds["vpn_gateway"] == {ip for g in w.gateways if g.kind == "vpn" for ip in (g.public_ip, g.private_ip)}
        assert kinds["public_gateway"] == {g.public_ip for g in w.gateways if g.kind == "public"}
        by_ip = {e["ip"]: e for e in snap["endpoints"]}
        for inst, nic, sn, v in w.nics():
            e = by_ip[nic.ip]
            assert (e["instance_id"], e["instance_name"], e["vnic_id"], e["subnet_id"], e["subnet_name"],
                    e["vpc_id"], e["vpc_name"], e["zone"]) == (inst.id, inst.name, nic.id, sn.id, sn.name, v.id,
                                                               v.name, inst.zone)
        for f in w.floating_ips:
            assert by_ip[f.address]["vnic_id"] == f.target_nic_id
            assert by_ip[f.address]["instance_id"] == w.instance_of_nic(f.target_nic_id).id
    # pages of at most 10: 24 instances per region -> 3 requests each
    reqs = stats(stack[1])["requests"]
    for region in REGIONS:
        assert reqs[f"GET /{region}/v1/instances"] == 3
    idx = IpIndex.from_snapshots(snaps)
    inst, nic, sn, v = next(iter(world.nics("eu-de")))
    assert idx.lookup(nic.ip).instance_name == inst.name


def test_paging_protocol(stack):
    iam_url, vpc_url = stack
    h = {"Authorization": "Bearer " + token(iam_url)}
    url = f"{vpc_url}/us-south/v1/instances"
    seen, page, nxt = [], 0, url
    params = dict(Q, limit=7)
    while nxt:
        r = requests.get(nxt, params=params, headers=h, timeout=5)
        assert r.status_code == 200
        body = r.json()
        assert body["limit"] == 7 and body["total_count"] == 24 and "limit=7" in body["first"]["href"]
        seen += [i["id"] for i in body["instances"]]
        nxt = body.get("next", {}).get("href")
        params = Q  # next.href carries limit and start
        page += 1
    assert page == 4 and len(seen) == len(set(seen)) == 24
    assert requests.get(url, params=dict(Q, limit=101), headers=h, timeout=5).status_code == 400
    assert requests.get(url, params=dict(Q, start="bogus"), headers=h, timeout=5).status_code == 400
    one = requests.get(f"{url}/{seen[0]}", params=Q, headers=h, timeout=5)
    assert one.status_code == 200 and one.json()["id"] == seen[0]
    nics = requests.get(f"{url}/{seen[0]}/network_interfaces", params=Q, headers=h, timeout=5).json()
    assert nics["network_interfaces"][0]["type"] == "primary"
    assert requests.get(f"{vpc_url}/mars-1/v1/vpcs", params=Q, headers=h, timeout=5).status_code == 404


def test_version_generation_and_auth_required(stack):
    iam_url, vpc_url = stack
    url = f"{vpc_url}/us-south/v1/vpcs"
    h = {"Authorization": "Bearer " + token(iam_url)}
    r = requests.get(url, params={"generation": "2"}, headers=h, timeout=5)
    assert r.status_code == 400 and r.json()["errors"][0]["code"] == "missing_version"
    assert requests.get(url, params={"version": "2024-04-30"}, headers=h, timeout=5).status_code == 400
    assert requests.get(url, params={"version": "yesterday", "generation": "2"}, headers=h, timeout=5).status_code == 400
    assert requests.get(url, params=Q, timeout=5).status_code == 401
    # a well-formed JWT that the IAM stand-in did not issue
    forged = token(iam_url).rsplit(".", 1)[0] + ".c2lnbmF0dXJl"
    assert requests.get(url, params=Q, headers={"Authorization": "Bearer " + forged}, timeout=5).status_code == 401
    assert requests.get(url, params=Q, headers=h, timeout=5).status_code == 200


def test_bad_api_key_is_an_iam_error(stack):
    with pytest.raises(VpcMetadataError) as info:
        fetch(stack, "us-south", api_key="definitely-wrong-key")
    err = info.value
    assert err.region == "us-south" and "IAM" in err.reason and "BXNIM0415E" not in "definitely-wrong-key"
    assert "definitely-wrong-key" not in str(err)


def test_injected_503s_are_retried(stack, world):
    vpc_url = stack[1]
    requests.post(vpc_url + "/_emulator/faults", timeout=5,
                  json={"status": 503, "count": 2, "path_prefix": "/us-south/v1/instances"}).raise_for_status()
    requests.post(vpc_url + "/_emulator/faults", timeout=5,
                  json={"drop": True, "count": 1, "path_prefix": "/us-south/v1/subnets"}).raise_for_status()
    snap = fetch(stack, "us-south")
    assert len(snap["subnets"]) == len(world.in_region("us-south").subnets)
    assert stats(vpc_url)["faults_applied"] == 3
    assert requests.get(vpc_url + "/_emulator/faults", timeout=5).json()["faults"] == []


def test_persistent_errors_surface_with_context(stack):
    vpc_url = stack[1]
    requests.post(vpc_url + "/_emulator/faults", timeout=5,
                  json={"status": 500, "count": 0, "path_prefix": "/us-south/v1/load_balancers"}).raise_for_status()
    with pytest.raises(VpcMetadataError) as info:
        fetch(stack, "us-south", max_retries=1)
    assert "load balancers" in info.value.reason


def test_iam_unreachable(stack):
    with pytest.raises(VpcMetadataError) as info:
        fetch_region_metadata("us-south", KEY, iam_url="http://127.0.0.1:9", service_url=stack[1] + "/us-south/v1",
                              timeout=2)
    assert "IAM" in info.value.reason
