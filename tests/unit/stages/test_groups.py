"""Groups of objects through the stages without a broker (devstack/harness/driver.py): one `objects` message
for many objects, flows/kflow messages spanning objects, one POST per device per message, batched deletes —
and the rule that an object is deleted only after every one of its flows was accepted and only if it is still
the version read."""
from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

import pytest

from devstack.synth import generator
from devstack.synth.worldgen import build_world
from tests.unit.formats.test_columns import lists
from tests.unit.formats.test_avro import older_writer
from streams.formats.batches import FlowChunk, KflowChunk
from streams.formats.avro import Codec
from streams.formats.records import ObjectRef
from devstack.harness.driver import Driver

CHUNK = 50  # the driver's chunk_flows


@pytest.fixture(scope="module")
def objs():
    """Good objects of several subnets: small ones (< CHUNK flows) and big ones (several chunks)."""
    made = generator.generate_objects(build_world(seed=1), objects=80, seed=11, mean_flows=40, empty_share=0.0)
    good = [o for o in made if o.kind == "good" and o.flow_count]
    small = [o for o in good if o.flow_count < CHUNK // 2]
    big = [o for o in good if o.flow_count > 2 * CHUNK]
    assert len(small) >= 8 and big, "the generator should give small and big objects"
    return {"small": small, "big": big}


def put_all(d: Driver, objects) -> list[str]:
    for o in objects:
        d.cos.put(o.key, o.body)
    return sorted(o.key for o in objects)


def through_enrich(d: Driver, keys: list[str]) -> list[bytes]:
    """Parse the group `keys` as one objects message and enrich its flows; the kflow messages."""
    d.parse(d.group(keys))
    d.enrich_all()
    return d.kflow_messages()


def kinds(effects, *names) -> list:
    return [e for e in effects if e[0] in names]


def deletes(d: Driver) -> list[str]:
    return [e[1] for e in d.effects if e[0] == "delete"]


def part_keys(raw: bytes) -> set[str]:
    return {p.key for p in KflowChunk.decode(raw).parts}


def test_messages_hold_each_objects_identity_once(objs):
    """objects: the first object in the record's own fields, the others in `group`; flows and kflow: only in
    `parts` (no top-level copy of the first part)."""
    d = Driver()
    keys = put_all(d, objs["small"][:3])
    message = ObjectRef.decode(d.group(keys).encode())
    assert message.key == keys[0] and [m["key"] for m in message.group] == keys[1:]
    assert [(m.key, m.etag, m.size) for m in message.members()] == \
        [(k, d.ref(k).etag, d.ref(k).size) for k in keys]
    assert all(m.group == [] for m in message.members())
    d.parse(message)
    [(_, flows)] = d.topics.flows.messages
    d.enrich_all()
    [kflow] = d.kflow_messages()
    for name, raw in (("flow_batch", flows), ("kflow_batch", kflow)):
        record = Codec(name).decode(raw)
        assert not {"key", "etag", "size", "chunk"} & set(record)
        assert sorted(p["key"] for p in record["parts"]) == keys


def test_small_group_is_one_flows_one_kflow_message_and_one_post_per_device(objs):
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    group = objs["small"][:10]
    keys = put_all(d, group)
    raws = through_enrich(d, keys)
    assert len(d.topics.flows.messages) == 0 and len(raws) == 1  # drained: exactly one of each was sent
    [chunk] = d.kflow_chunks(raws)
    assert sorted(p.key for p in chunk.parts) == keys
    assert sum(p.source_flows for p in chunk.parts) == sum(o.flow_count for o in group)
    d.sink(raws[0])
    devices = {p.device_name for p in chunk.parts}
    assert len(d.kentik.posts) == len(devices) and {name for name, _ in d.kentik.posts} == devices
    assert sorted(deletes(d)) == keys and not d.cos.objects
    ledger = d.ledger()
    assert sorted(e.key for e in ledger) == keys and all(e.deleted for e in ledger)
    by_key = {o.key: o for o in group}
    assert all((e.flows, e.chf) == (by_key[e.key].flow_count, by_key[e.key].chf_count) for e in ledger)
    assert d.cos.calls.count("delete_objects") == 1 and d.cos.calls.count("head") == 0


def test_messages_span_objects_with_per_object_ranges(objs):
    d = Driver()
    group = [objs["small"][0], objs["big"][0], *objs["small"][1:6]]
    keys = put_all(d, group)
    d.parse(d.group(keys))
    flows = d.flow_chunks()
    assert any(len({p.key for p in f.parts}) > 1 for f in flows), "some message carries several objects"
    d.enrich_all()  # every message of the group has the group's Kafka key: one partition, one worker
    assert {k for k, _ in d.topics.kflow.messages} == {keys[0].encode()}
    for f in flows:
        assert f.flow_count <= CHUNK and sum(p.flow_count for p in f.parts) == f.flow_count
        assert [p.start for p in f.parts] == [sum(q.flow_count for q in f.parts[:i]) for i in range(len(f.parts))]
        again = FlowChunk.decode(f.encode())
        assert replace(again, columns={}) == replace(f, columns={}) and lists(again.columns) == lists(f.columns)
    per_object = Counter()
    for f in flows:
        for p in f.parts:
            per_object[p.key] += p.flow_count
            assert f.rows(p)["direction"] == f.columns["direction"][p.start:p.start + p.flow_count]
    assert per_object == {o.key: o.flow_count for o in group}


def test_objects_of_a_group_complete_in_any_chunk_order_with_duplicates(objs):
    d = Driver()
    group = [*objs["small"][:4], objs["big"][0], *objs["small"][4:8]]
    keys = put_all(d, group)
    raws = through_enrich(d, keys)
    assert len(raws) >= 4
    shuffled = raws + raws[:2]
    random.Random(7).shuffle(shuffled)
    for i, raw in enumerate(shuffled):
        seen = set().union(*(part_keys(r) for r in shuffled[:i + 1]))
        complete = {k for k in keys if all(r in shuffled[:i + 1] for r in raws if k in part_keys(r))}
        d.sink(raw)
        assert set(deletes(d)) == complete and complete <= seen
    assert sorted(deletes(d)) == keys and len(d.ledger()) == len(keys)  # each object deleted and ledgered once
    big = objs["big"][0]
    [entry] = [e for e in d.ledger() if e.key == big.key]
    assert (entry.flows, entry.chf) == (big.flow_count, big.chf_count)


def test_object_whose_chunk_is_missing_is_kept_while_the_others_are_deleted(objs):
    d = Driver()
    group = [objs["small"][0], objs["big"][0], *objs["small"][1:6]]
    keys = put_all(d, group)
    raws = through_enrich(d, keys)
    def spans(raw):  # several objects, one of them cut into several chunks
        parts = KflowChunk.decode(raw).parts
        return len({p.key for p in parts}) > 1, any(p.chunks > 1 for p in parts)

    spanning = max(raws, key=spans)
    assert spans(spanning)[0]
    for raw in raws:
        if raw is not spanning:
            d.sink(raw)
    assert set(d.cos.objects) == part_keys(spanning)  # only the objects with flows in the missing message stay
    assert {e.key for e in d.ledger()} == set(keys) - part_keys(spanning)


def test_object_overwritten_mid_group_is_kept_and_the_others_deleted(objs):
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    keys = put_all(d, objs["small"][:6])
    raws = through_enrich(d, keys)
    victim = keys[2]
    new_etag = d.cos.put(victim, objs["small"][7].body)
    for raw in raws:
        d.sink(raw)
    assert list(d.cos.objects) == [victim] and d.cos.objects[victim][0] == new_etag
    assert {e.key: e.deleted for e in d.ledger()} == {k: k != victim for k in keys}
    d.parse(d.group([victim]))  # the poller lists the new ETag: processed as the new version
    d.enrich_all()
    for raw in d.kflow_messages():
        d.sink(raw)
    assert not d.cos.objects


def test_worker_taking_over_mid_group_sends_only_what_is_missing(objs):
    a = Driver()
    group = [objs["big"][0], *objs["small"][:6]]
    keys = put_all(a, group)
    raws = through_enrich(a, keys)
    for raw in raws[:2]:
        a.sink(raw)
    done_by_a = set(deletes(a))
    b = a.other()
    a.share_progress_with(b)
    posted = Counter(name for name, _ in a.kentik.posts)
    for raw in raws:  # the new owner of the partition gets every uncommitted message again
        b.sink(raw)
    assert sorted(deletes(b)) == keys and not b.cos.objects
    assert Counter(e.key for e in a.ledger() + b.ledger()) == Counter(keys)  # one ledger record per object
    resent = Counter(name for name, _ in b.kentik.posts) - posted
    expected = Counter()
    for raw in raws[2:]:
        expected.update({p.device_name for p in KflowChunk.decode(raw).parts
                         if p.key not in done_by_a and p.flow_count})
    assert resent == expected  # nothing Kentik already accepted was sent again


def test_bad_object_in_a_group_is_quarantined_alone(objs):
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    keys = put_all(d, objs["small"][:5])
    bad = keys[1]
    d.cos.put(bad, b"\x1f\x8b not really gzip")
    raws = through_enrich(d, keys)
    for raw in raws:
        d.sink(raw)
    [letter] = d.deadletters()
    assert letter.key == bad and letter.stage and len(letter.reason) > 10
    assert list(d.cos.objects) == [bad] and sorted(e.key for e in d.ledger()) == sorted(set(keys) - {bad})


def test_a_device_refused_quarantines_only_its_objects(objs):
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    keys = put_all(d, objs["small"][:10])
    [raw] = through_enrich(d, keys)
    parts = KflowChunk.decode(raw).parts
    devices = list(dict.fromkeys(p.device_name for p in parts))
    assert len(devices) > 1, "the group should span several subnets"
    d.kentik.answers = [400, 400, 400]  # the first device's POST is refused for good
    d.sink(raw)
    refused = {p.key for p in parts if p.device_name == devices[0]}
    assert {letter.key for letter in d.deadletters()} == refused
    assert set(d.cos.objects) == refused and {e.key for e in d.ledger()} == set(keys) - refused


@pytest.mark.parametrize("mode", ["BLUEFLOW_KEEP_OBJECTS", "BLUEFLOW_DRY_RUN"])
def test_keep_and_dry_run_groups_never_delete(objs, mode):
    d = Driver(**{mode: "true"})
    keys = put_all(d, [objs["big"][0], *objs["small"][:4]])
    raws = through_enrich(d, keys)
    for raw in raws:
        d.sink(raw)
    assert sorted(d.cos.objects) == keys and not deletes(d)
    assert "delete_objects" not in d.cos.calls and "head" not in d.cos.calls
    if mode == "BLUEFLOW_DRY_RUN":
        assert not raws and not d.kentik.posts
    else:
        assert sorted(e.key for e in d.ledger()) == keys and not any(e.deleted for e in d.ledger())


def test_a_key_the_batch_reports_failed_is_retried_never_assumed_gone(objs):
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    keys = put_all(d, objs["small"][:6])
    [raw] = through_enrich(d, keys)
    d.cos.refuse_keys[keys[3]] = 2
    d.sink(raw)
    assert not d.cos.objects and sorted(deletes(d)) == keys
    assert all(e.deleted for e in d.ledger()) and d.cos.calls.count("delete_objects") == 3
    ledger_at = [i for i, e in enumerate(d.effects) if e[0] == "ledger"]
    assert min(ledger_at) > max(i for i, e in enumerate(d.effects) if e[0] == "delete")


def test_control_character_keys_are_deleted_one_by_one(objs):
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    plain = put_all(d, objs["small"][:3])
    head, _, tail = objs["small"][3].key.rpartition("/")
    odd = f"{head}\x1b[2J\x07/{tail}"
    d.cos.put(odd, objs["small"][3].body)
    [raw] = through_enrich(d, sorted(plain + [odd]))
    d.sink(raw)
    assert not d.cos.objects and d.cos.calls.count("delete") == 1 and d.cos.calls.count("delete_objects") == 1


def test_cos_requests_per_object_of_a_w1_like_group(objs):
    """GET per object + one listing (version check) + one DeleteObjects per message."""
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    group = objs["small"][:15]
    keys = put_all(d, group)
    for raw in through_enrich(d, keys):
        d.sink(raw)
    assert not d.cos.objects
    assert Counter(d.cos.calls) == {"get": 15, "list": 1, "delete_objects": 1}


def _older(name: str, record) -> bytes:
    """`record` as a synthetic older writer wrote it: a schema from before sources (no `source` field)."""
    values = record.to_avro()
    values.pop("source")
    return older_writer(name, "source").encode(values)


def test_records_of_an_older_writer_schema_are_read_and_delivered(objs):
    """Replay of (and lag on) records an older writer schema wrote (here: before sources): the evolution
    mechanism resolves them to the current schema, so old objects, flows and kflow messages still flow."""
    d = Driver()
    big = objs["big"][0]
    d.cos.put(big.key, big.body)
    old_ref = _older("object_ref", d.ref(big.key))
    assert old_ref[2:10] != d.ref(big.key).encode()[2:10]  # another writer schema (fingerprint)
    d.parse(ObjectRef.decode(old_ref))
    new_flows = d.flow_chunks()
    old_flows = [_older("flow_batch", f) for f in new_flows]
    decoded = [FlowChunk.decode(raw) for raw in old_flows]
    assert [(f.key, f.chunk, f.chunks, f.flow_count, f.source) for f in decoded] == \
        [(f.key, f.chunk, f.chunks, f.flow_count, "") for f in new_flows]
    d.topics.flows.drain()
    for raw in old_flows:
        d.pipe("flows", raw, big.key.encode())
    kraws = [_older("kflow_batch", k) for k in d.kflow_chunks(d.kflow_messages())]
    assert all(KflowChunk.decode(raw).source == "" for raw in kraws)
    for raw in reversed(kraws):
        d.sink(raw)
    [entry] = d.ledger()
    assert (entry.key, entry.flows, entry.chf, entry.deleted) == (big.key, big.flow_count, big.chf_count, True)


def test_413_splits_one_devices_post_and_the_group_still_completes(objs):
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    keys = put_all(d, objs["small"][:10])
    [raw] = through_enrich(d, keys)
    devices = {p.device_name for p in KflowChunk.decode(raw).parts}
    d.kentik.answers = [413]
    d.sink(raw)
    statuses = [e[1] for e in kinds(d.effects, "post")]
    assert statuses[0] == 413 and len(statuses) == len(devices) + 2  # the refused body went again in halves
    assert not d.cos.objects and sorted(e.key for e in d.ledger()) == keys


def test_a_groups_downloads_overlap_within_fetch_concurrency_and_keep_the_groups_order(objs):
    """The objects of one group are fetched up to `fetch_concurrency` at once (their COS round trips
    overlap), yet the flows messages carry them in the group's order, as when fetched one by one."""
    import threading
    import time

    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow_get(self, Bucket, Key, IfMatch=None):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.02)
        with lock:
            in_flight[0] -= 1
        return type(self).get_object(self, Bucket, Key, IfMatch)

    group = objs["small"][:9]
    order = {}
    for width in ("1", "3"):
        d = Driver(BLUEFLOW_CHUNK_FLOWS="2000", BLUEFLOW_FETCH_CONCURRENCY=width)
        keys = put_all(d, group)
        object.__setattr__(d.cos, "get_object", slow_get.__get__(d.cos))
        peak[0] = 0
        d.parse(d.group(keys))
        assert peak[0] == int(width)
        order[width] = [(p.key, p.start, p.flow_count) for m in d.flow_chunks() for p in m.parts]
        assert [k for k, _, _ in order[width]] == keys
    assert order["1"] == order["3"]
