"""VPC metadata per account: two accounts may use the same private addresses, and a flow is labelled only from
its own source's account (streams/state/metadata.py: snapshots keyed `<label>/<region>`, one IpIndex per account,
`MetadataFollower.index_for`), end to end through the enrich stage."""
from __future__ import annotations

import gzip

import orjson
import pytest

from devstack.synth import generator
from devstack.synth.worldgen import build_world
from streams.formats.avro import Codec
from streams.state.metadata import MetadataFollower, account_label, indexes_by_account, snapshot_key, source_accounts
from streams.formats.records import MetadataRecord
from streams.config.settings import Settings
from streams.config.sources import Source
from devstack.harness.driver import Driver
from tests.unit.stages.test_sources_stages import A, B, ref


def snapshot(region: str, ip: str, instance: str, vpc: str) -> dict:
    return {"region": region, "vpcs": [{"id": f"id-{vpc}", "name": vpc}], "subnets": [],
            "endpoints": [{"ip": ip, "kind": "nic", "instance_id": f"i-{instance}", "instance_name": instance,
                           "vpc_name": vpc, "subnet_name": f"{vpc}-sub", "zone": f"{region}-1"}]}


def test_snapshot_keys_name_their_account_and_the_global_key_keeps_the_v1_key():
    assert snapshot_key("", "us-south") == "us-south" and account_label("us-south") == ""
    assert snapshot_key("acct-b", "eu-de") == "acct-b/eu-de" and account_label("acct-b/eu-de") == "acct-b"


def test_overlapping_addresses_of_two_accounts_resolve_in_their_own_index_only():
    snaps = {"acct-a/us-south": snapshot("us-south", "10.240.0.4", "web-a", "vpc-a"),
             "acct-b/us-south": snapshot("us-south", "10.240.0.4", "db-b", "vpc-b"),
             "us-south": snapshot("us-south", "10.240.0.9", "v1-host", "vpc-v1")}
    indexes = indexes_by_account(snaps)
    assert indexes["acct-a"].lookup("10.240.0.4").instance_name == "web-a"
    assert indexes["acct-b"].lookup("10.240.0.4").instance_name == "db-b"
    assert indexes["acct-a"].lookup("10.240.0.9") is None  # the global account's host is not acct-a's
    assert indexes[""].lookup("10.240.0.9").instance_name == "v1-host"
    assert set(indexes_by_account(snaps, labels={"acct-b"})) == {"acct-b"}


def test_each_source_maps_to_the_account_that_fetches_its_key_and_regions():
    settings = Settings.from_env({"IBM_VPC_API_KEY": "global", "BLUEFLOW_REGIONS": "us-south,us-east"})
    same = Source("same", "b1", vpc_api_key="global", regions=("us-south",))  # covered by the global fetch
    other = Source("other", "b2", vpc_api_key="acct-b-key", regions=("eu-de",))
    twin = Source("twin", "b3", vpc_api_key="acct-b-key", regions=("eu-de",))  # same account as `other`
    from dataclasses import replace

    labels = source_accounts(replace(settings, sources=(same, other, twin)))
    assert labels == {"same": "", "other": "other", "twin": "other"}
    assert source_accounts(settings) == {"default": ""}  # the flags' one source: the global snapshots


def _follower(labels: dict[str, str]) -> MetadataFollower:
    follower = MetadataFollower.__new__(MetadataFollower)
    follower.codec, follower.snapshots, follower.indexes, follower.labels = Codec("vpc_metadata"), {}, {}, labels
    return follower


def _publish(follower: MetadataFollower, key: str, snap: dict) -> None:
    record = MetadataRecord(region=key, fetched_at=1.0, json=orjson.dumps(snap).decode())
    follower._on_message("vpc-metadata", key.encode(), record.encode())


def test_follower_keeps_one_index_per_account_and_never_lends_one_to_another_source():
    follower = _follower({"acct-a": "acct-a", "acct-b": "acct-b", "acct-c": "acct-c"})
    _publish(follower, "acct-a/us-south", snapshot("us-south", "10.240.0.4", "web-a", "vpc-a"))
    assert follower.index_for("acct-a").lookup("10.240.0.4").instance_name == "web-a"
    assert follower.index_for("acct-b") is None  # no snapshot of acct-b yet: ids from the key, not acct-a's names
    _publish(follower, "acct-b/us-south", snapshot("us-south", "10.240.0.4", "db-b", "vpc-b"))
    _publish(follower, "acct-a/us-south", snapshot("us-south", "10.240.0.4", "web-a2", "vpc-a"))  # a refresh
    assert follower.index_for("acct-a").lookup("10.240.0.4").instance_name == "web-a2"
    assert follower.index_for("acct-b").lookup("10.240.0.4").instance_name == "db-b"
    assert follower.index_for("acct-c") is None


@pytest.fixture(scope="module")
def one_object():
    [obj] = generator.generate_objects(build_world(seed=1), objects=1, seed=5, mean_flows=40, empty_share=0.0)
    flows = orjson.loads(gzip.decompress(obj.body))["flow_logs"]
    f = flows[0]
    return obj, f["target_ip"] if f["direction"] == "O" else f["initiator_ip"]  # the remote end: looked up by IP


def test_enrich_labels_the_same_address_with_each_sources_own_account(one_object):
    obj, ip = one_object
    d = Driver(sources=(A, B))
    d.ctx.metadata.labels = {"acct-a": "acct-a", "acct-b": "acct-b"}
    d.ctx.metadata.indexes = indexes_by_account({
        "acct-a/us-south": snapshot("us-south", ip, "web-of-acct-a", "vpc-a"),
        "acct-b/us-south": snapshot("us-south", ip, "db-of-acct-b", "vpc-b")})
    for source in (A, B):
        d.coses[source.name].put(obj.key, obj.body)
    for r in (ref(d, A, obj.key), ref(d, B, obj.key)):
        d.parse(r)
    d.enrich_all()
    strings: dict[str, set] = {}
    for chunk in d.kflow_chunks(d.kflow_messages()):
        strings.setdefault(chunk.source, set()).update(chunk.columns["strings"])
    assert set(strings) == {"acct-a", "acct-b"}
    assert "web-of-acct-a" in strings["acct-a"] and "db-of-acct-b" not in strings["acct-a"]
    assert "db-of-acct-b" in strings["acct-b"] and "web-of-acct-a" not in strings["acct-b"]
