"""The stages end to end without a broker (devstack/harness/driver.py): what is posted to Kentik, deleted,
ledgered and dead-lettered, in which order — for chunk orders, duplicates, re-assigned partitions,
overwritten objects, replays, refusals and the keep/dry-run modes."""
from __future__ import annotations

import random
from dataclasses import replace

import pytest

from devstack.synth import generator
from devstack.synth.worldgen import build_world
from tests.unit.formats.test_columns import lists
from streams.formats.batches import KflowChunk
from devstack.harness.driver import Driver


@pytest.fixture(scope="module")
def objects():
    objs = generator.generate_objects(build_world(seed=1), objects=40, seed=3, mean_flows=140, empty_share=0.0)
    big = [o for o in objs if o.flow_count > 160]
    assert big, "the generator should give objects of several chunks at 50 flows per chunk"
    return {"big": big[0], "small": min(objs, key=lambda o: o.flow_count)}


def parsed(d: Driver, obj) -> tuple[str, list[bytes]]:
    """Put `obj` in the bucket, run parse and enrich; return its key and its kflow messages."""
    d.cos.put(obj.key, obj.body)
    d.parse(d.ref(obj.key))
    d.enrich_all()
    return obj.key, d.kflow_messages()


def kinds(effects, *names) -> list:
    return [e for e in effects if e[0] in names]


def test_one_delete_after_every_chunk_was_accepted_in_any_order_with_duplicates(objects):
    d = Driver()
    key, raws = parsed(d, objects["big"])
    chunks = d.kflow_chunks(raws)
    assert len(raws) >= 4 and sum(c.source_flows for c in chunks) == objects["big"].flow_count
    shuffled = raws + raws[:2]
    random.Random(5).shuffle(shuffled)
    for raw in shuffled:
        d.sink(raw)
    effects = kinds(d.effects, "post", "delete", "ledger")
    assert [e[0] for e in effects] == ["post"] * len(raws) + ["delete", "ledger"]
    assert key not in d.cos.objects
    [entry] = d.ledger()
    assert (entry.flows, entry.chf, entry.deleted) == (objects["big"].flow_count, objects["big"].chf_count, True)
    assert d.topics.progress.messages[-1] == (key.encode(), None)  # tombstone after the ledger record


def test_no_delete_while_a_chunk_is_missing(objects):
    d = Driver()
    key, raws = parsed(d, objects["big"])
    for raw in raws[:-1] + raws[:-1]:
        d.sink(raw)
    assert key in d.cos.objects and not d.ledger() and not kinds(d.effects, "delete")


def test_worker_taking_over_mid_object_sends_only_the_missing_chunks(objects):
    a = Driver()
    key, raws = parsed(a, objects["big"])
    for raw in raws[:2]:
        a.sink(raw)
    b = a.other()
    a.share_progress_with(b)
    posts_before = len(kinds(a.effects, "post"))
    for raw in raws:  # the new owner of the partition gets every uncommitted chunk again
        b.sink(raw)
    assert len(kinds(a.effects, "post")) - posts_before == len(raws) - 2
    assert key not in b.cos.objects and len(b.ledger()) == 1


def test_object_overwritten_in_flight_is_kept_and_its_new_version_processed(objects):
    d = Driver()
    key, raws = parsed(d, objects["big"])
    for raw in raws[:-1]:
        d.sink(raw)
    new_etag = d.cos.put(key, objects["small"].body)  # the object is overwritten before its last chunk
    d.sink(raws[-1])
    assert d.cos.objects[key][0] == new_etag and not kinds(d.effects, "delete")
    [entry] = d.ledger()
    assert entry.deleted is False
    d.parse(d.ref(key))  # the poller lists the new ETag: processed as the new version
    d.enrich_all()
    for raw in d.kflow_messages():
        d.sink(raw)
    assert key not in d.cos.objects and [e.deleted for e in d.ledger()] == [False, True]


def test_object_changed_between_listing_and_download_is_skipped(objects):
    d = Driver()
    d.cos.put(objects["big"].key, objects["big"].body)
    stale = d.ref(objects["big"].key)
    d.cos.put(objects["big"].key, objects["small"].body)
    d.parse(stale)
    assert not d.topics.flows.messages and not d.deadletters()


def test_refused_chunk_is_dead_lettered_and_the_object_kept(objects):
    d = Driver()
    key, raws = parsed(d, objects["big"])
    d.kentik.answers = [200, 400, 400, 400]
    for raw in raws:
        d.sink(raw)
    [letter] = d.deadletters()
    assert (letter.key, letter.stage) == (key, "sink") and "HTTP 400" in letter.reason
    assert key in d.cos.objects and not d.ledger()


@pytest.mark.parametrize("mode", ["BLUEFLOW_KEEP_OBJECTS", "BLUEFLOW_DRY_RUN"])
def test_keep_and_dry_run_never_delete(objects, mode):
    d = Driver(**{mode: "true"})
    key, raws = parsed(d, objects["small"])
    for raw in raws:
        d.sink(raw)
    assert key in d.cos.objects and not kinds(d.effects, "delete")
    if mode == "BLUEFLOW_DRY_RUN":
        assert not raws and not kinds(d.effects, "post")  # list and parse only
    else:
        assert [e.deleted for e in d.ledger()] == [False] and kinds(d.effects, "post")


def test_replayed_chunks_are_sent_again_without_delete_or_ledger(objects):
    d = Driver()
    key, raws = parsed(d, objects["small"])
    for raw in raws:
        d.sink(raw)
    posts = len(kinds(d.effects, "post"))
    d.cos.put(key, objects["small"].body)
    for chunk in d.kflow_chunks(raws):
        chunk.replay = True
        d.sink(chunk.encode())
    assert len(kinds(d.effects, "post")) == posts + len(raws)
    assert key in d.cos.objects and len(d.ledger()) == 1


def test_delete_failures_are_retried_and_reported_to_health(objects):
    d = Driver()
    key, raws = parsed(d, objects["small"])
    d.cos.fail_deletes = 3
    for raw in raws:
        d.sink(raw)
    assert key not in d.cos.objects and len(d.ledger()) == 1
    assert d.ctx.health.failures == {}  # cleared by the success


def test_undecodable_message_is_dead_lettered():
    d = Driver()
    d.sink(b"\x00garbage")
    [letter] = d.deadletters()
    assert letter.stage == "decode" and "kflow message could not be decoded" in letter.reason


def test_kflow_chunk_round_trip_keeps_columns(objects):
    d = Driver()
    _, raws = parsed(d, objects["big"])
    chunk = KflowChunk.decode(raws[0])
    again = KflowChunk.decode(chunk.encode())
    assert replace(again, columns={}) == replace(chunk, columns={}) and lists(again.columns) == lists(chunk.columns)
    assert again.flow_count == len(again.columns["timestamp"]) > 0


def test_undecodable_flows_message_is_dead_lettered_with_its_kafka_key():
    from streams.stages import enrich

    d = Driver()
    d.pipe("flows", b"\xc3\x01garbage", b"some/key.gz")
    [letter] = d.deadletters()
    assert (letter.key, letter.stage) == ("some/key.gz", "decode")
    assert "flows message could not be decoded" in letter.reason and not d.topics.kflow.messages


def test_the_driver_runs_the_stages_the_topology_wires_and_breaks_when_it_changes(objects, monkeypatch):
    """The driver takes its stages from the topology's table (topology.agents from stage_topics.STAGES), as
    Kafka Streams' TopologyTestDriver takes a Topology: a change of the wiring changes what the tests run."""
    from streams.formats.stage_topics import STAGES
    from streams.stages import topology

    d = Driver()
    assert [(a.name, a.source, a.handle) for a in d.agents] == \
        [(a.name, STAGES[a.name].reads, a.handle) for a in topology.agents()]
    calls = []

    async def recorded(ctx, value, key, held=None):  # a topology whose sink stage is another handler: it runs
        calls.append(key)

    monkeypatch.setattr(topology, "AGENTS", tuple(replace(a, handle=recorded) if a.name == "sink" else a
                                                  for a in topology.AGENTS))
    d = Driver()
    key, raws = parsed(d, objects["small"])
    d.sink(raws[0])
    assert calls == [b"k"] and not d.ledger() and key in d.cos.objects
    # a topology in which enrich reads `objects` too: no one stage reads it, the driver refuses the message
    monkeypatch.setattr(topology, "AGENTS", tuple(replace(a, source="objects") if a.name == "enrich" else a
                                                  for a in topology.AGENTS))
    with pytest.raises(LookupError, match="2 stages reading 'objects'"):
        Driver().parse(d.ref(key))
    # and one without an enrich stage: the flows are never translated
    monkeypatch.setattr(topology, "AGENTS", tuple(a for a in topology.AGENTS if a.name != "enrich"))
    with pytest.raises(LookupError, match="0 stages reading 'flows'"):
        parsed(Driver(), objects["small"])
