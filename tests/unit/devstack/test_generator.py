"""Unit tests for the synthetic flow-log generator (devstack/synth/generator.py) and bad-input catalogue."""
from __future__ import annotations

import gzip
import ipaddress
import json
import random
import re
import zlib
from collections import Counter, defaultdict
from datetime import datetime, timezone
from urllib.parse import unquote

import orjson
import pytest

from devstack.synth import badinputs
from devstack.synth import generator, layout, writer
from devstack.synth.worldgen import build_world
from tests.unit.formats.flowlog import flowdoc

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
IBM_SERVICE_NET = ipaddress.IPv4Network("161.26.0.0/16")
KEY_SEGMENTS = ("account", "region", "vpc-id", "subnet-id", "endpoint-type", "instance-id", "vnic-id",
                "record-type", "year", "month", "day", "hour", "stream-id")
COUNTERS = ("bytes_from_initiator", "packets_from_initiator", "bytes_from_target", "packets_from_target")


@pytest.fixture(scope="module")
def world():
    return build_world(seed=1)


@pytest.fixture(scope="module")
def objs(world):
    return generator.generate_objects(world, objects=600, seed=7, mean_flows=60)


def parse_key(key: str) -> tuple[dict[str, str], str]:
    parts = key.split("/")
    assert parts[0] == "ibm_vpc_flowlogs_v1"
    values = {}
    for seg in parts[1:-1]:
        name, _, value = seg.partition("=")
        values[name] = unquote(value)
    return values, parts[-1]


def body_doc(obj) -> dict:
    return orjson.loads(gzip.decompress(obj.body))


def ts(s: str) -> float:
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


# ------------------------------------------------------------------------------------------------ determinism

def test_deterministic_for_a_seed(world):
    a = generator.generate_objects(world, objects=80, seed=3, mean_flows=40, bad=5, tricky=3)
    b = generator.generate_objects(world, objects=80, seed=3, mean_flows=40, bad=5, tricky=3)
    assert [(o.key, o.body, o.metadata, o.kind, o.flows) for o in a] == \
           [(o.key, o.body, o.metadata, o.kind, o.flows) for o in b]
    c = generator.generate_objects(world, objects=80, seed=4, mean_flows=40)
    assert [o.body for o in a if o.kind == "good"][:10] != [o.body for o in c if o.kind == "good"][:10]


def test_single_threaded_compression_gives_the_same_bytes(world):
    a = list(generator.iter_objects(world, objects=30, seed=11, mean_flows=30, compress_workers=1))
    b = list(generator.iter_objects(world, objects=30, seed=11, mean_flows=30, compress_workers=4))
    assert [o.body for o in a] == [o.body for o in b]


def test_keys_unique(world):
    objs = generator.generate_objects(world, objects=500, seed=2, mean_flows=5, bad=60, tricky=20)
    keys = [o.key for o in objs]
    assert len(keys) == len(set(keys)) == 580


# ------------------------------------------------------------------------------------------------- key layout

def test_key_layout_matches_world(world, objs):
    vpcs = {v.id: v for v in world.vpcs}
    subnets = {s.id: s for s in world.subnets}
    for o in objs:
        values, filename = parse_key(o.key)
        assert tuple(values) == KEY_SEGMENTS
        assert re.fullmatch(r"\d{8}\.gz", filename)
        assert values["account"] == world.account and re.fullmatch(r"[0-9a-f]{32}", values["account"])
        assert values["endpoint-type"] == "vnics"
        assert values["record-type"] in ("ingress", "egress", "all")
        inst = world.instance_of_nic(values["vnic-id"])
        nic = world.nic(values["vnic-id"])
        sub = subnets[nic.subnet_id]
        vpc = vpcs[inst.vpc_id]
        assert values["instance-id"] == inst.crn
        assert values["subnet-id"] == sub.crn
        assert values["vpc-id"] == vpc.crn
        assert values["region"] == inst.region == vpc.region
        # CRNs are percent-encoded in the raw key, the account and vnic id are bare
        assert "crn%3Av1%3Abluemix" in o.key and "crn:v1" not in o.key
        assert f"vnic-id={nic.id}/" in o.key
        # date segments = capture start (UTC), stream-id shape, header agrees with the key
        doc = body_doc(o)
        cs = datetime.strptime(doc["capture_start_time"], "%Y-%m-%dT%H:%M:%SZ")
        assert (values["year"], values["month"], values["day"], values["hour"]) == \
               (f"{cs.year:04d}", f"{cs.month:02d}", f"{cs.day:02d}", f"{cs.hour:02d}")
        assert re.fullmatch(r"\d{8}T\d{6}Z", values["stream-id"])
        assert doc["network_interface_id"] == nic.id
        assert doc["instance_crn"] == inst.crn and doc["vpc_crn"] == vpc.crn
        assert doc["collector_crn"].startswith(f"crn:v1:bluemix:public:is:{vpc.region}:a/{world.account}::"
                                               "flow-log-collector:r006-")


def test_sequences_count_up_per_stream_and_pairs(objs):
    streams = defaultdict(list)
    per_interval = defaultdict(set)
    for o in objs:
        values, filename = parse_key(o.key)
        doc = body_doc(o)
        streams[(values["vnic-id"], values["record-type"], values["stream-id"])].append(
            (doc["capture_start_time"], int(filename[:8])))
        per_interval[(values["vnic-id"], doc["capture_start_time"])].add(values["record-type"])
    assert len(streams) > 10
    for items in streams.values():
        items.sort()
        seqs = [s for _, s in items]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    kinds = Counter(frozenset(v) for v in per_interval.values())
    assert kinds[frozenset(("ingress", "egress"))] > 0
    assert kinds[frozenset(("all",))] > 0
    assert all(k in (frozenset(("ingress", "egress")), frozenset(("all",)), frozenset(("ingress",)))
               for k in kinds)   # a lone 'ingress' only at the very end of the run


# ---------------------------------------------------------------------------------------------------- content

def test_header_and_metadata(objs):
    for o in objs:
        assert o.body[:2] == b"\x1f\x8b"
        doc = body_doc(o)
        assert list(doc) == list(layout.HEADER_FIELDS) + ["flow_logs"]
        assert doc["version"] == "0.0.1" and doc["attached_endpoint_type"] == "vnic" and doc["state"] == "ok"
        assert doc["number_of_flow_logs"] == len(doc["flow_logs"]) == o.flow_count
        assert RFC3339.match(doc["capture_start_time"]) and RFC3339.match(doc["capture_end_time"])
        assert ts(doc["capture_end_time"]) - ts(doc["capture_start_time"]) == layout.INTERVAL_S
        assert o.metadata == {k: str(doc[k]) for k in layout.HEADER_FIELDS}
        assert all(isinstance(v, str) for v in o.metadata.values())
        assert doc["flow_logs"] == o.flows
        assert o.chf_count == sum(1 + (f["packets_from_target"] > 0 or f["bytes_from_target"] > 0)
                                  for f in o.flows)


def test_flow_field_types_and_consistency(objs):
    n = 0
    for o in objs:
        doc = body_doc(o)
        cs, ce = ts(doc["capture_start_time"]), ts(doc["capture_end_time"])
        for f in doc["flow_logs"]:
            n += 1
            assert tuple(f) == layout.FLOW_FIELDS
            for name in ("start_time", "end_time"):
                assert f[name] == "" or RFC3339.match(f[name])
            assert RFC3339.match(f["connection_start_time"])
            assert f["direction"] in ("I", "O") and f["action"] in ("accepted", "rejected")
            for name in ("initiator_ip", "target_ip"):
                assert isinstance(ipaddress.ip_address(f[name]), ipaddress.IPv4Address)
            for name in ("initiator_port", "target_port"):
                assert type(f[name]) is int and 0 <= f[name] <= 65535
            assert f["transport_protocol"] in (6, 17) and f["ether_type"] == "IPv4"
            assert type(f["was_initiated"]) is bool and type(f["was_terminated"]) is bool
            for c in COUNTERS:
                assert type(f[c]) is int and f[c] >= 0
                assert type(f["cumulative_" + c]) is int and f["cumulative_" + c] >= f[c]
            assert f["packets_from_initiator"] >= 1 and f["bytes_from_initiator"] >= f["packets_from_initiator"]
            assert (f["packets_from_target"] == 0) == (f["bytes_from_target"] == 0)
            conn = ts(f["connection_start_time"])
            if f["start_time"]:
                st, et = ts(f["start_time"]), ts(f["end_time"])
                assert cs <= st <= et <= ce
                assert conn <= st
                if f["was_initiated"]:
                    assert conn == st
            if f["was_initiated"]:
                assert cs <= conn <= ce
                assert all(f["cumulative_" + c] == f[c] for c in COUNTERS)
            else:
                assert conn < cs
                assert f["cumulative_packets_from_initiator"] > f["packets_from_initiator"]
            if f["action"] == "rejected":
                assert f["bytes_from_target"] == 0 and f["packets_from_target"] == 0
    assert n > 10_000


def test_local_ip_is_the_vnic_ip(world, objs):
    dhcp = 0
    for o in objs:
        values, _ = parse_key(o.key)
        ip = world.nic(values["vnic-id"]).ip
        for f in o.flows:
            local = f["initiator_ip"] if f["direction"] == "O" else f["target_ip"]
            if f["initiator_ip"] == "0.0.0.0":   # DHCP discover: the client has no address yet
                assert (f["target_ip"], f["initiator_port"], f["target_port"], f["transport_protocol"],
                        f["direction"]) == ("255.255.255.255", 68, 67, 17, "O")
                dhcp += 1
                continue
            assert local == ip, (o.key, f)
    assert dhcp > 0


def test_direction_follows_record_type(objs):
    share = {}
    for rt in ("ingress", "egress", "all"):
        fl = [f for o in objs if f"/record-type={rt}/" in o.key for f in o.flows]
        share[rt] = sum(f["direction"] == "I" for f in fl) / len(fl)
    assert share["ingress"] > 0.8 and share["egress"] < 0.2 and 0.3 < share["all"] < 0.7


def test_realistic_mix(world, objs):
    flows = [f for o in objs for f in o.flows]
    nic_ips = {n.ip for i in world.instances for n in i.nics}
    world_public = set(world.public_ips())
    cidrs = [ipaddress.IPv4Network(s.cidr) for s in world.subnets]

    def in_subnet_only(ip: str) -> bool:
        a = ipaddress.IPv4Address(ip)
        return ip not in nic_ips and any(a in c for c in cidrs)

    def remote(f):
        return f["target_ip"] if f["direction"] == "O" else f["initiator_ip"]

    dns = [f for f in flows if f["target_ip"] == "161.26.0.10" and f["target_port"] == 53]
    assert dns and all(f["transport_protocol"] == 17 and f["was_initiated"] and f["was_terminated"] for f in dns)
    assert any(f["target_port"] == 123 and ipaddress.IPv4Address(f["target_ip"]) in IBM_SERVICE_NET
               for f in flows)
    https_in = [f for f in flows if f["direction"] == "I" and f["target_port"] == 443 and f["action"] == "accepted"]
    assert any(ipaddress.IPv4Address(f["initiator_ip"]).is_global for f in https_in)
    assert any(f["initiator_ip"] in world_public for f in https_in)
    assert any(f["target_port"] == 22 for f in flows)
    scans = [f for f in flows if f["action"] == "rejected"]
    assert len(scans) > 100 and all(f["packets_from_target"] == 0 for f in scans)
    assert any(remote(f) in nic_ips for f in flows)                 # east-west: exact-IP enrichment hits
    assert any(in_subnet_only(remote(f)) for f in flows)             # subnet-CIDR-only hits
    long_ = [f for f in flows if not f["was_initiated"]]
    assert len(long_) > 100
    assert any(f["cumulative_bytes_from_target"] > f["bytes_from_target"] > 0 for f in long_)
    assert any(f["was_initiated"] and not f["was_terminated"] for f in flows)
    assert any(not f["was_initiated"] and f["was_terminated"] for f in flows)
    empty_times = sum(f["start_time"] == "" for f in flows)
    assert 0.005 < empty_times / len(flows) < 0.05
    assert all((f["start_time"] == "") == (f["end_time"] == "") for f in flows)
    assert any(f["action"] == "accepted" and f["packets_from_target"] == 0 for f in flows)   # one-way UDP


def test_empty_share_and_sizes(world):
    objs = generator.generate_objects(world, objects=2000, seed=5, empty_share=0.2, mean_flows=8)
    empty = [o for o in objs if o.kind == "empty"]
    assert 0.16 < len(empty) / len(objs) < 0.24
    for o in empty[:50]:
        doc = body_doc(o)
        assert doc["flow_logs"] == [] and doc["number_of_flow_logs"] == 0
        assert o.metadata["number_of_flow_logs"] == "0" and o.flow_count == 0 and o.chf_count == 0
        assert b'"flow_logs":[]' in gzip.decompress(o.body)
    sizes = [o.flow_count for o in objs if o.kind == "good"]
    assert min(sizes) >= 1
    mean = sum(sizes) / len(sizes)
    assert 6 < mean < 10
    assert max(sizes) > 4 * mean                                   # long tail
    none_empty = generator.generate_objects(world, objects=50, seed=5, empty_share=0.0, mean_flows=8)
    assert all(o.kind == "good" for o in none_empty)


def test_orjson_round_trip_and_gzip(objs):
    for o in objs[:200]:
        raw = zlib.decompress(o.body, wbits=31)
        doc = orjson.loads(raw)
        assert orjson.dumps(doc) == raw
        assert json.loads(raw) == doc
        assert o.body[4:8] == b"\x00\x00\x00\x00"                 # gzip mtime 0: deterministic bytes


# ---------------------------------------------------------------------------------------------- bad inputs

REQUIRED_BAD = {
    "not_gzip", "truncated_gzip", "gzip_non_json", "json_array", "missing_flow_logs", "flow_logs_not_list",
    "flow_not_object", "string_port", "negative_bytes", "port_out_of_range", "bad_ip", "ipv6_ip",
    "invalid_timestamp", "unknown_direction", "missing_flow_field", "non_utf8", "deeply_nested", "v0_key",
    "foreign_readme", "foreign_prefix", "zero_byte", "gzip_trailing_garbage", "double_gzip", "wrong_version",
}
STAGES = {"key", "decompress", "json", "validate"}


def test_catalogue_shape():
    assert len(badinputs.BAD_KINDS) >= 20
    assert REQUIRED_BAD <= set(badinputs.BAD_KINDS)
    assert "predecompressed_body" in badinputs.TRICKY_GOOD_KINDS
    assert "huge_object" in badinputs.LAZY_KINDS and "huge_object" not in badinputs.BAD_KINDS
    assert not set(badinputs.BAD_KINDS) & set(badinputs.TRICKY_GOOD_KINDS)
    for name, k in badinputs.CATALOGUE.items():
        assert k.name == name and k.description
        assert (k.expected_stage == "") == k.good
        assert k.good or k.expected_stage in STAGES


def test_every_bad_kind_present_and_distinct(world):
    n_bad = len(badinputs.BAD_KINDS)
    n_tricky = len(badinputs.TRICKY_GOOD_KINDS)
    objs = generator.generate_objects(world, objects=100, seed=9, mean_flows=5, bad=n_bad, tricky=n_tricky)
    bad = [o for o in objs if o.kind not in ("good", "empty")]
    assert sorted(o.kind for o in bad) == sorted(badinputs.BAD_KINDS)
    assert all(o.variant == o.kind and o.flow_count == 0 and o.chf_count == 0 and o.flows == [] for o in bad)
    tricky = [o for o in objs if o.variant in badinputs.TRICKY_GOOD_KINDS]
    assert sorted(o.variant for o in tricky) == sorted(badinputs.TRICKY_GOOD_KINDS)
    assert all(o.kind == "good" and o.flow_count == len(o.flows) > 0 for o in tricky)
    assert len({o.body for o in bad}) >= len(bad) - 2               # zero_byte and folder_marker share b""
    assert len({o.key for o in objs}) == len(objs)
    pre = next(o for o in tricky if o.variant == "predecompressed_body")
    assert pre.content_encoding == "gzip" and pre.key.endswith(".gz") and pre.body[:1] == b"{"
    assert orjson.loads(pre.body)["flow_logs"] == pre.flows
    bad_keys = {o.kind: o.key for o in bad}
    assert bad_keys["v0_key"].startswith("ibm_vpc_flowlogs_v0/") and "=" not in bad_keys["v0_key"]
    assert not bad_keys["foreign_readme"].startswith("ibm_vpc_flowlogs")
    by_kind = {o.kind: o for o in bad}
    assert by_kind["zero_byte"].body == b""
    assert gzip.decompress(gzip.decompress(by_kind["double_gzip"].body))[:1] == b"{"
    assert b"[" * 10_000 in gzip.decompress(by_kind["deeply_nested"].body)


def test_catalogue_is_deterministic(world):
    a = badinputs.all_entries(world, seed=4)
    b = badinputs.all_entries(world, seed=4)
    assert [bi for _, bi in a] == [bi for _, bi in b]


def test_catalogue_against_reader(world):
    """Each bad kind fails at its expected stage in streams.formats.flowlog.flowlog; tricky-good ones parse."""
    flowlog = pytest.importorskip("streams.formats.flowlog.flowlog")
    for k, bi in badinputs.all_entries(world, seed=1):
        try:
            flowlog.parse_object_key(bi.key)
            doc = flowdoc.parse_object_bytes([bi.body[i:i + 4096] for i in range(0, max(1, len(bi.body)), 4096)])
        except flowlog.FlowLogError as err:
            assert err.stage == k.expected_stage, (k.name, err.stage, err.reason)
            assert err.reason
        else:
            assert k.good, (k.name, "was accepted")
            assert doc.flow_count == len(bi.flows)


def test_huge_object_is_valid_and_lazy(world):
    bi = badinputs.make("huge_object", world, random.Random(1), size_mb=2)
    raw = gzip.decompress(bi.body)
    assert len(raw) >= 2 * 1024 * 1024
    doc = orjson.loads(raw)
    assert len(doc["flow_logs"]) == bi.flow_count and bi.chf >= bi.flow_count
    obj = badinputs.make_object("huge_object", world, random.Random(1), size_mb=1)
    assert obj.kind == "good" and obj.flow_count > 1000 and obj.flows == []


# ---------------------------------------------------------------------------------------------------- CLI

def test_main_dry_run_writes_manifest(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    manifest = tmp_path / "m.jsonl"
    rc = writer.main(["--objects", "40", "--seed", "3", "--bad", "6", "--tricky", "2", "--mean-flows", "10",
                         "--empty-share", "0.25", "--dry-run", "--manifest", str(manifest), "--world-seed", "1",
                         "--regions", "us-south,eu-de"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["objects"] == 48 and summary["bad"] == 6 and summary["good"] + summary["empty"] == 42
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    assert len(lines) == 48 and len({x["key"] for x in lines}) == 48
    assert sum(x["flows"] for x in lines) == summary["flows"]
    assert sum(x["size"] for x in lines) == summary["bytes"]
    assert {x["expected_stage"] for x in lines if x["kind"] not in ("good", "empty")} <= STAGES
    assert all(x["chf"] >= x["flows"] for x in lines)
