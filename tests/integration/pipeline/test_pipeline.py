"""End to end on the real stack: two workers move a generated bucket into the Kentik stand-in.

One run (module fixture) with good, empty, tricky-but-valid and bad objects; the tests then check what
arrived (exactly once, field by field), what was deleted and when, what was quarantined and why, and that
re-publishing everything sends nothing twice.
"""
from __future__ import annotations

import hashlib

import pytest

from devstack.referee import compare, device_name, key_fields
from streams.formats.avro import Codec
from tests.integration.pipeline_support import kentik, prepare, read_topic, wait_for

pytestmark = pytest.mark.stack

BAD_KINDS = ["not_gzip", "truncated_gzip", "gzip_not_json", "json_array", "missing_flow_logs", "string_port",
             "negative_bytes", "bad_ip", "v0_key", "zero_bytes"]


@pytest.fixture(scope="module")
def run(stack):
    from devstack.synth import badinputs

    kinds = [k for k in BAD_KINDS if k in badinputs.BAD_KINDS]
    assert len(kinds) >= 8, f"bad-input catalogue lacks kinds: {sorted(badinputs.BAD_KINDS)}"
    r = prepare(40, bad=len(kinds), tricky=2, bad_kinds=kinds, seed=21)
    # small chunks: most objects span several messages, so partitions change hands mid-object
    r.start_worker("w1", BLUEFLOW_CHUNK_FLOWS="25")
    r.start_worker("w2", BLUEFLOW_CHUNK_FLOWS="25")
    try:
        done = wait_for(lambda: r.bucket_keys() <= r.bad_keys and r.counts().get("deadlettered", 0) >= len(r.bad_keys),
                        timeout_s=240, interval_s=2)
        assert done, f"pipeline did not drain the bucket; counts={r.counts()}\n{r.logs()}"
        yield r
    finally:
        r.stop_all()


def test_every_owed_kflow_record_arrives_exactly_once(run):
    flows = kentik(run.env, "/_emulator/flows")
    verdict = compare(run.good, flows)
    assert verdict.owed > 1000
    assert (verdict.lost, verdict.duplicates, verdict.unexpected) == (0, 0, 0)
    assert verdict.accepted == verdict.owed


def test_customs_and_fixed_fields_follow_the_translation_rules(run):
    flows = kentik(run.env, "/_emulator/flows")
    account = key_fields(run.good[0].key)["account"]
    for flow in flows:
        customs = flow["customs"]
        assert len(customs) == 19 and set(customs) == {f"STR{i:02d}" for i in range(19)}
        assert flow["sample_rate"] == 100 and flow["sample_adj"] is True and flow["big"] is False
        assert flow["app_protocol"] == 0
        assert customs["STR04"] == account and customs["STR09"] == "vnics"
        assert customs["STR12"] in ("accepted", "rejected")
        assert customs["STR18"] in ("inbound", "outbound")
        assert customs["STR11"] in ("ingress", "egress", "all")
        assert customs["STR00"] and customs["STR01"]  # never empty: capture times are the fallback
        # the local end always has metadata names: the VPC stand-in serves the same world
        assert customs["STR02"] or customs["STR03"]


def test_each_object_lands_on_its_subnets_device(run):
    flows = kentik(run.env, "/_emulator/flows")
    devices = {d["device_name"]: d for d in kentik(run.env, "/_emulator/devices")}
    expected = {device_name(key_fields(o.key)["subnet-id"].rsplit(":", 1)[-1]) for o in run.good if o.chf_count}
    assert {f["device_name"] for f in flows} == expected
    for name in expected:
        assert devices[name]["plan_id"] in (11467, "11467")
        assert devices[name]["cloud_region"] in ("us-south", "eu-de")


def test_good_objects_are_deleted_and_bad_ones_stay(run):
    assert run.bucket_keys() == run.bad_keys
    counts = run.counts()
    assert counts["objects_deleted"] == len(run.good)


def test_objects_are_deleted_only_after_their_last_flow_was_accepted(run):
    codec = Codec("ledger")
    ledger = {}
    for key, value, ts_ms in read_topic(run.env, f"{run.run_id}.ledger"):
        record = codec.decode(value)
        ledger[record["key"]] = (record, ts_ms / 1000.0)
    assert set(ledger) == {o.key for o in run.good}
    verdict = compare(run.good, kentik(run.env, "/_emulator/flows"))
    for obj in run.good:
        record, written_at = ledger[obj.key]
        assert record["deleted"] is True and record["chf"] == obj.chf_count and record["flows"] == obj.flow_count
        if obj.chf_count:
            assert verdict.last_accept_by_object[obj.key] <= record["delivered_at"] / 1000.0


def test_bad_objects_are_quarantined_with_stage_and_reason(run):
    codec = Codec("deadletter")
    letters = {}
    for key, value, _ in read_topic(run.env, f"{run.run_id}.deadletter"):
        record = codec.decode(value)
        letters.setdefault(record["key"], []).append(record)
    assert set(letters) == run.bad_keys
    by_key = {o.key: o for o in run.objects}
    for key, records in letters.items():
        assert len(records) == 1, f"{key} dead-lettered {len(records)} times"
        record = records[0]
        assert record["stage"] and len(record["reason"]) > 15
        expected_stage = by_key[key].expected_stage
        if expected_stage:
            assert record["stage"] == expected_stage, (by_key[key].variant, record)


def test_republishing_every_object_sends_nothing_twice(run):
    from confluent_kafka import Producer

    before = len(kentik(run.env, "/_emulator/flows"))
    skipped_before = run.counts().get("objects_skipped", 0)
    codec = Codec("object_ref")
    producer = Producer({"bootstrap.servers": run.env["BLUEFLOW_KAFKA_BOOTSTRAP"]})
    for obj in run.objects:  # a replay of the objects topic: good (already deleted) and bad alike
        etag = hashlib.md5(obj.body).hexdigest()
        ref = {"bucket": run.env["BLUEFLOW_BUCKET"], "key": obj.key, "etag": etag, "size": len(obj.body),
               "last_modified": 0, "published_at": 0, "republish": False}
        producer.produce(f"{run.run_id}.objects", key=obj.key.encode(), value=codec.encode(ref))
    producer.flush(30)
    assert wait_for(lambda: run.counts().get("objects_skipped", 0) >= skipped_before + len(run.objects),
                    timeout_s=60), run.counts()
    after = kentik(run.env, "/_emulator/flows")
    assert len(after) == before
    letters = read_topic(run.env, f"{run.run_id}.deadletter")
    assert len(letters) == len(run.bad_keys)
