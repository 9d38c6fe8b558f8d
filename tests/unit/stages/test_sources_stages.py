"""Several sources through the real stage shells (broker-free driver): each source's objects go to its own
Kentik account, plan and export and are deleted from its own bucket; the same key in two buckets is two
objects; one source whose COS fails neither holds nor fails the other; fairness across sources."""
from __future__ import annotations

import asyncio
import itertools

import pytest

from devstack.synth import generator
from devstack.synth.worldgen import build_world
from tests.unit.formats.test_avro import older_writer
from streams.formats.records import ObjectRef, Progress, scoped_key
from streams.config.sources import Source
from streams.stages import poll
from streams.stages.poll import Due, PublishLedger, fair_order
from devstack.harness.driver import Driver

A = Source("acct-a", "bucket-a", endpoint="a.example", hmac_access_key="ak", hmac_secret_key="as",
           kentik_email="a@x", kentik_token="ta", plan_id=11, export_id=101)
B = Source("acct-b", "bucket-b", endpoint="b.example", hmac_access_key="bk", hmac_secret_key="bs",
           kentik_email="b@x", kentik_token="tb", plan_id=22, export_id=202)


@pytest.fixture(scope="module")
def objects():
    return generator.generate_objects(build_world(seed=1), objects=6, seed=3, mean_flows=80, empty_share=0.0)


def two_sources() -> Driver:
    return Driver(sources=(A, B))


def ref(d: Driver, source: Source, key: str) -> ObjectRef:
    etag, body = d.coses[source.name].objects[key]
    return ObjectRef(bucket=source.bucket, key=key, etag=etag, size=len(body), source=source.name)


def run_through(d: Driver, refs) -> None:
    for r in refs:
        d.parse(r)
    d.enrich_all()
    for raw in d.kflow_messages():
        d.sink(raw)


def test_each_sources_flows_reach_its_own_kentik_plan_and_export_and_nothing_crosses(objects):
    d = two_sources()
    same = objects[0]
    d.coses["acct-a"].put(same.key, same.body)
    d.coses["acct-b"].put(same.key, same.body)  # the same key (and ETag) in both buckets: two objects
    d.coses["acct-b"].put(objects[1].key, objects[1].body)
    run_through(d, [ref(d, A, same.key), ref(d, B, same.key), ref(d, B, objects[1].key)])

    assert not d.coses["acct-a"].objects and not d.coses["acct-b"].objects
    assert {p for _, p, _ in d.kentiks["acct-a"].resolved} == {11}
    assert {(p, e) for _, p, e in d.kentiks["acct-b"].resolved} == {(22, 202)}
    posted_a = sum(1 for _ in d.kentiks["acct-a"].posts)
    posted_b = sum(1 for _ in d.kentiks["acct-b"].posts)
    chunks = lambda o: -(-o.flow_count // 50)  # noqa: E731 - the driver's 50 flows per chunk
    assert (posted_a, posted_b) == (chunks(same), chunks(same) + chunks(objects[1]))
    ledger = {(e.source, e.key): e for e in d.ledger()}
    assert set(ledger) == {("acct-a", same.key), ("acct-b", same.key), ("acct-b", objects[1].key)}
    assert all(e.deleted for e in ledger.values())
    assert d.topics.ledger.messages[0][0].decode() == scoped_key("acct-a", same.key)


def test_a_record_of_a_source_no_longer_configured_is_left_alone(objects):
    d = two_sources()
    d.coses["acct-a"].put(objects[0].key, objects[0].body)
    gone = ObjectRef(bucket="bucket-c", key=objects[0].key, etag="e", source="acct-c")
    d.parse(gone)
    assert not d.topics.flows.messages and not d.deadletters() and d.coses["acct-a"].objects


def test_records_of_a_writer_without_sources_decode_as_the_implicit_source():
    old = older_writer("object_ref", "source", "group").encode(
        {"bucket": "b", "key": "k", "etag": "e", "size": 1, "last_modified": 2, "published_at": 3, "republish": False,
         "force": False})
    decoded = ObjectRef.decode(old)
    assert (decoded.source, decoded.skey) == ("", "k")
    assert Driver().ctx.sources.get(decoded.source).name == "default"


def test_one_sources_cos_failing_does_not_hold_the_others_listing_or_make_the_worker_unhealthy(objects):
    d = two_sources()
    d.coses["acct-a"].put(objects[0].key, objects[0].body)
    d.coses["acct-b"].put(objects[1].key, objects[1].body)
    d.coses["acct-b"].down = True
    ledgers = {s.name: PublishLedger(600) for s in (A, B)}
    asyncio.run(poll._poll_once(d.ctx, ledgers))
    published = [ObjectRef.decode(v) for _, v in d.topics.objects.messages]
    assert [(r.source, r.key) for r in published] == [("acct-a", objects[0].key)]
    assert "bucket-b" in d.ctx.failures.problems()["acct-b"] and not d.ctx.health.fatal
    d.coses["acct-b"].down = False  # it answers again: everything in its bucket is published
    asyncio.run(poll._poll_once(d.ctx, ledgers))
    published = [ObjectRef.decode(v) for _, v in d.topics.objects.messages]
    assert [(r.source, r.key) for r in published[1:]] == [("acct-b", objects[1].key)]
    assert d.ctx.failures.problems() == {}


def fake_clock(step_s: float | None = None, start: float = 0.0):
    from streams.stages.retry import COS

    step_s = COS.give_up_s / 2 if step_s is None else step_s  # a few failed attempts before giving up
    ticks = itertools.count()
    return lambda: start + next(ticks) * step_s


def test_a_source_whose_cos_keeps_failing_leaves_its_object_waiting_and_the_next_one_flows(objects):
    d = two_sources()
    d.ctx.failures.clock = fake_clock()
    d.coses["acct-b"].put(objects[1].key, objects[1].body)
    d.coses["acct-a"].put(objects[0].key, objects[0].body)
    d.coses["acct-b"].down = True
    d.parse(ref(d, B, objects[1].key))  # gives up after COS.give_up_s of failures instead of for ever
    calls = d.coses["acct-b"].requests
    assert 1 < calls < 10 and not d.topics.flows.messages and not d.deadletters()
    d.parse(ref(d, B, objects[1].key))  # still failing: one attempt (the probe), then it waits
    assert d.coses["acct-b"].requests == calls + 1
    d.parse(ref(d, B, objects[1].key))  # probed moments ago: not even tried, it waits in the bucket
    assert d.coses["acct-b"].requests == calls + 1 and not d.topics.flows.messages
    run_through(d, [ref(d, A, objects[0].key)])
    assert not d.coses["acct-a"].objects and [e.source for e in d.ledger()] == ["acct-a"]
    assert not d.ctx.health.fatal and not d.ctx.health.failures


def test_a_delete_that_keeps_failing_is_deferred_and_finished_later_without_sending_twice(objects):
    d = two_sources()
    d.ctx.failures.clock = fake_clock()
    obj = objects[2]
    d.coses["acct-b"].put(obj.key, obj.body)
    r = ref(d, B, obj.key)
    d.parse(r)
    d.enrich_all()
    raws = d.kflow_messages()
    d.coses["acct-b"].fail_deletes = 10 ** 6
    for raw in raws:
        d.sink(raw)
    posts = len(d.kentiks["acct-b"].posts)
    assert posts == len(raws) and obj.key in d.coses["acct-b"].objects and not d.ledger()
    [(key, value)] = d.topics.progress.messages[-1:]
    record = Progress.decode(value)
    assert key.decode() == r.skey and sorted(record.done) == list(range(len(raws)))
    d.coses["acct-b"].fail_deletes = 0
    d.ctx.failures.succeeded(B)
    run_through(d, [r])  # listed again: parsed, every chunk skipped, then deleted and ledgered
    assert len(d.kentiks["acct-b"].posts) == posts
    assert obj.key not in d.coses["acct-b"].objects and [e.deleted for e in d.ledger()] == [True]


def test_a_slow_listing_does_not_hold_back_the_other_sources_publication(objects, monkeypatch):
    """A failing source's listing can take seconds (the SDK retrying 503s): the others are published meanwhile."""
    d = two_sources()
    d.coses["acct-a"].put(objects[0].key, objects[0].body)
    d.coses["acct-b"].put(objects[1].key, objects[1].body)
    real, published_while_b_listed = poll._list, []

    async def slow_b(ctx, source, ledger):
        if source.name == "acct-b":
            await asyncio.sleep(poll.LISTING_GRACE_S * 3)
            published_while_b_listed.append(len(d.topics.objects.messages))
        return await real(ctx, source, ledger)

    monkeypatch.setattr(poll, "_list", slow_b)
    asyncio.run(poll._poll_once(d.ctx, {s.name: PublishLedger(600) for s in (A, B)}))
    assert published_while_b_listed == [1]  # acct-a's object went out before acct-b's listing was in
    assert [ObjectRef.decode(v).source for _, v in d.topics.objects.messages] == ["acct-a", "acct-b"]


def due(n: int, prefix: str) -> list[Due]:
    return [Due(f"{prefix}{i}", "e", 1, 0, False) for i in range(n)]


def test_fair_order_interleaves_sources_and_keeps_each_within_its_budget():
    order, held = fair_order({"big": due(5, "b"), "small": due(2, "s")}, {"big": 3, "small": 10})
    assert [(s, d.key) for s, d in order] == [("big", "b0"), ("small", "s0"), ("big", "b1"), ("small", "s1"),
                                              ("big", "b2")]
    assert held == {"big": 2}
    order, held = fair_order({"one": due(3, "o")}, {})
    assert [d.key for _, d in order] == ["o0", "o1", "o2"] and held == {}
    stuck = [Due("old", "e", 1, 0, True)]  # published long ago, still there: always published again
    order, held = fair_order({"full": stuck + due(2, "f")}, {"full": 0})
    assert [d.key for _, d in order] == ["old"] and held == {"full": 2}


def test_budget_counts_published_objects_not_yet_finished(objects):
    d = two_sources()
    d.settings = d.ctx.rt.settings = d.settings.__class__(**{**d.settings.__dict__, "source_budget": 2})
    for o in objects[:5]:
        d.coses["acct-a"].put(o.key, o.body)
    d.coses["acct-b"].put(objects[5].key, objects[5].body)
    ledgers = {s.name: PublishLedger(600) for s in (A, B)}
    assert asyncio.run(poll._poll_once(d.ctx, ledgers)) is True  # acct-a was held back
    first = [ObjectRef.decode(v) for _, v in d.topics.objects.messages]
    assert [r.source for r in first] == ["acct-a", "acct-b", "acct-a"]
    asyncio.run(poll._poll_once(d.ctx, ledgers))  # nothing finished yet: no room for more of acct-a
    assert len(d.topics.objects.messages) == 3
    run_through(d, first)  # two of acct-a finish (and are deleted): room for two more
    asyncio.run(poll._poll_once(d.ctx, ledgers))
    later = [ObjectRef.decode(v) for _, v in d.topics.objects.messages[3:]]
    assert [r.source for r in later] == ["acct-a", "acct-a"]


def test_vpc_metadata_is_fetched_once_per_account_and_regions_with_keys_per_source():
    from streams.config.settings import Settings
    from streams.stages.leader import metadata_accounts

    settings = Settings.from_env({"IBM_VPC_API_KEY": "global", "BLUEFLOW_REGIONS": "us-south,us-east"})
    same = Source("same", "b1", regions=("us-south",))  # the global key, regions already covered
    other = Source("other", "b2", vpc_api_key="acct-b-key", regions=("eu-de",))
    wider = Source("wider", "b3", regions=("us-south", "jp-tok"))
    accounts = metadata_accounts(settings, [same, other, wider])
    assert [(a.label, a.ibm_vpc_api_key, a.region_list) for a in accounts] == [
        ("", "global", ["us-south", "us-east"]), ("other", "acct-b-key", ["eu-de"]),
        ("wider", "global", ["us-south", "jp-tok"])]
    assert [a.label for a in metadata_accounts(Settings.from_env({}), [other])] == ["other"]


def test_status_shows_each_sources_backlog_and_a_failing_source_as_its_own_error(monkeypatch):
    from dataclasses import replace

    from streams.ops import source_status
    from streams.stages import runtime
    from streams.config.settings import Settings

    d = two_sources()
    d.coses["acct-a"].put("k1", b"x" * 10)
    d.coses["acct-a"].put("k2", b"y" * 5)
    d.coses["acct-b"].down = True
    monkeypatch.setattr(runtime, "cos_client_for", lambda s, settings: d.coses[s.name])
    settings = replace(Settings.from_env({}), sources=(A, B))
    quarantined = {("k2", d.coses["acct-a"].objects["k2"][0])}
    found = source_status.source_backlogs(settings, quarantined)
    assert found["acct-a"] == {"bucket": "bucket-a", "objects": 2, "bytes": 15, "pending": 1, "quarantined": 1,
                               "oldest_pending_age_s": found["acct-a"]["oldest_pending_age_s"]}
    assert found["acct-b"]["bucket"] == "bucket-b" and "ServiceUnavailable" in found["acct-b"]["error"]
    assert list(source_status.source_backlogs(Settings.from_env({}), set())) == ["default"]  # the flags' one


def test_one_sources_refused_kentik_token_holds_neither_the_others_nor_the_workers_health(objects):
    d = two_sources()
    d.ctx.failures.clock = fake_clock()
    d.coses["acct-a"].put(objects[3].key, objects[3].body)
    d.coses["acct-b"].put(objects[4].key, objects[4].body)
    d.kentiks["acct-b"].answers = [401] * 1000
    refs = [ref(d, B, objects[4].key), ref(d, A, objects[3].key)]
    run_through(d, refs)
    assert [e.source for e in d.ledger()] == ["acct-a"] and not d.coses["acct-a"].objects
    assert objects[4].key in d.coses["acct-b"].objects  # not accepted: not deleted, waits for its next publish
    assert len(d.kentiks["acct-b"].posts) < 6 and "HTTP 401" in d.ctx.failures.problems()["acct-b"]
    assert not d.ctx.health.fatal and not d.deadletters()
    d.kentiks["acct-b"].answers = []  # the token is fixed; the leader publishes the stuck object again
    d.ctx.failures.clock = fake_clock(start=3600)  # an hour later: the next delivery is the probe
    before = len(d.kentiks["acct-b"].posts)
    d.ctx.in_flight.clear()
    run_through(d, [ObjectRef(**{**refs[0].to_avro(), "republish": True})])
    chunks = -(-objects[4].flow_count // 50)
    assert len(d.kentiks["acct-b"].posts) - before == chunks  # every chunk once, none twice
    assert [e.source for e in d.ledger()] == ["acct-a", "acct-b"] and not d.coses["acct-b"].objects
    assert d.ctx.failures.problems() == {}


def test_groups_are_of_one_source_and_each_source_keeps_its_own_keep_and_kentik(objects):
    from dataclasses import replace

    keep_b = replace(B, keep_objects=True)
    d = Driver(sources=(A, keep_b), BLUEFLOW_CHUNK_FLOWS="2000")
    for obj in objects[:3]:
        d.coses["acct-a"].put(obj.key, obj.body)
    for obj in objects[3:]:
        d.coses["acct-b"].put(obj.key, obj.body)
    ledgers = {s.name: PublishLedger(600) for s in (A, keep_b)}
    asyncio.run(poll._poll_once(d.ctx, ledgers))
    published = [ObjectRef.decode(v) for _, v in d.topics.objects.messages]
    assert [(r.source, len(r.members())) for r in published] == [("acct-a", 3), ("acct-b", 3)]
    assert all(m.source == r.source for r in published for m in r.members())
    for r in published:
        d.parse(r)
    d.enrich_all()
    raws = d.kflow_messages()
    assert len(raws) == 2  # one message per group: objects of one source never share a message
    for raw in raws:
        d.sink(raw)
    ledger = {(e.source, e.key): e for e in d.ledger()}
    assert set(ledger) == {("acct-a", o.key) for o in objects[:3]} | {("acct-b", o.key) for o in objects[3:]}
    assert all(e.deleted == (e.source == "acct-a") for e in ledger.values())
    assert not d.coses["acct-a"].objects and len(d.coses["acct-b"].objects) == 3  # B keeps its objects
    assert {p for _, p, _ in d.kentiks["acct-a"].resolved} == {11}
    assert {(p, e) for _, p, e in d.kentiks["acct-b"].resolved} == {(22, 202)}
    assert d.kentiks["acct-a"].posts and d.kentiks["acct-b"].posts
