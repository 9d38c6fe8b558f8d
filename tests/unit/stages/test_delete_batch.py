"""Finalize in batches across kflow messages (streams/stages/finalize/finalize.py) on the broker-free driver:
objects completed by several messages are deleted together once the oldest waited `delete_batch_seconds`,
each only after every one of its flows was accepted and only if it is still the version read."""
from __future__ import annotations

from collections import Counter

import pytest

from devstack.synth import generator
from devstack.synth.worldgen import build_world
from streams.stages.finalize.finalize import DeleteBatcher, due
from streams.formats.records import Progress
from streams.stages.finalize.held_ack import HeldAck
from devstack.harness.driver import Driver


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def small():
    made = generator.generate_objects(build_world(seed=1), objects=60, seed=12, mean_flows=30, empty_share=0.0)
    good = [o for o in made if o.kind == "good" and 0 < o.flow_count < 25]
    assert len(good) >= 12
    return good


def batched(clock: Clock, wait_s: float = 1.0) -> Driver:
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    d.ctx.deletes = DeleteBatcher(wait_s, clock=clock)
    return d


def sink_group(d: Driver, objects) -> list[str]:
    for o in objects:
        d.cos.put(o.key, o.body)
    keys = sorted(o.key for o in objects)
    d.parse(d.group(keys))
    d.enrich_all()
    for raw in d.kflow_messages():
        d.sink(raw)
    return keys


def deleted(d: Driver) -> list[str]:
    return [e[1] for e in d.effects if e[0] == "delete"]


@pytest.mark.parametrize("first, count, now, expected", [
    (10.0, 1, 10.5, False), (10.0, 1, 11.0, True), (10.0, 1000, 10.0, True), (10.0, 999, 10.9, False),
])
def test_due_when_the_oldest_waited_or_a_deleteobjects_is_full(first, count, now, expected):
    assert due(first, count, now, 1.0) is expected


def test_objects_of_several_messages_are_deleted_together_after_the_wait(small):
    clock = Clock()
    d = batched(clock)
    keys = sink_group(d, small[:6])
    clock.now += 0.5
    keys += sink_group(d, small[6:12])
    assert not deleted(d) and not d.ledger() and len(d.cos.objects) == 12  # held, nothing deleted yet
    assert len(d.kentik.posts) >= 2  # every flow was accepted before anything is deleted
    clock.now += 0.6
    d.run(d.ctx.deletes.flush(d.ctx))
    assert sorted(deleted(d)) == sorted(keys) and not d.cos.objects
    assert Counter(d.cos.calls) == {"get": 12, "list": 1, "delete_objects": 1}  # one check, one DeleteObjects
    assert sorted(e.key for e in d.ledger()) == sorted(keys) and all(e.deleted for e in d.ledger())
    ledger_at = [i for i, e in enumerate(d.effects) if e[0] == "ledger"]
    assert min(ledger_at) > max(i for i, e in enumerate(d.effects) if e[0] == "delete")
    assert not d.ctx.sink_progress and len(d.ctx.deletes) == 0


def test_a_batch_not_yet_due_waits_and_a_forced_flush_takes_it(small):
    clock = Clock()
    d = batched(clock)
    keys = sink_group(d, small[:4])
    d.run(d.ctx.deletes.flush(d.ctx))
    assert not deleted(d)
    d.run(d.ctx.deletes.flush(d.ctx, force=True))  # a clean stop
    assert sorted(deleted(d)) == keys


def test_an_object_overwritten_while_held_is_kept(small):
    clock = Clock()
    d = batched(clock)
    keys = sink_group(d, small[:4])
    d.cos.put(keys[1], b"a new version")
    clock.now += 2
    d.run(d.ctx.deletes.flush(d.ctx))
    assert sorted(deleted(d)) == [k for k in keys if k != keys[1]] and keys[1] in d.cos.objects
    assert {e.key: e.deleted for e in d.ledger()} == {k: k != keys[1] for k in keys}


def test_a_key_the_batch_reports_failed_is_retried_never_assumed_gone(small):
    clock = Clock()
    d = batched(clock)
    keys = sink_group(d, small[:5])
    d.cos.refuse_keys[keys[2]] = 1
    clock.now += 2
    d.run(d.ctx.deletes.flush(d.ctx))
    assert not d.cos.objects and sorted(deleted(d)) == keys and all(e.deleted for e in d.ledger())
    assert d.cos.calls.count("delete_objects") == 2


def sink_holding(d: Driver, objects, acked: list, raws: list | None = None,
                 forgotten: list | None = None) -> list[HeldAck]:
    """sink_group with each kflow message's ack held the way the topology's agent holds it (`raws`: gets the
    kflow messages; `forgotten`: the messages abandoned to their next owner)."""
    for o in objects:
        d.cos.put(o.key, o.body)
    d.parse(d.group(sorted(o.key for o in objects)))
    d.enrich_all()
    helds, messages = [], d.kflow_messages()
    if raws is not None:
        raws.extend(messages)
    for n, raw in enumerate(messages):
        held = HeldAck(lambda n=n: acked.append(n), lambda n=n: (forgotten if forgotten is not None else []).append(n))
        d.sink(raw, held)
        held.finish()
        helds.append(held)
    return helds


def test_a_message_is_acked_only_after_its_objects_were_deleted(small):
    clock, acked = Clock(), []
    d = batched(clock)
    helds = sink_holding(d, small[:6], acked)
    assert helds and not acked and not deleted(d)  # handled, accepted, held: a crash now redelivers them
    clock.now += 2
    d.run(d.ctx.deletes.flush(d.ctx))
    assert deleted(d) and sorted(acked) == list(range(len(helds)))


def test_a_batch_that_fails_keeps_its_messages_unacked_until_it_is_finalized(small, monkeypatch):
    from streams.stages.finalize import finalize

    clock, acked, real = Clock(), [], finalize.finalize_now
    d = batched(clock)
    helds = sink_holding(d, small[:4], acked)

    async def failing(*args, **kwargs):
        raise RuntimeError("COS down")

    monkeypatch.setattr(finalize, "finalize_now", failing)
    clock.now += 2
    d.run(d.ctx.deletes.flush(d.ctx))
    assert not acked and len(d.ctx.deletes) == 4
    monkeypatch.setattr(finalize, "finalize_now", real)
    d.run(d.ctx.deletes.flush(d.ctx, force=True))
    assert sorted(acked) == list(range(len(helds))) and not d.cos.objects


def test_without_batching_or_objects_to_finalize_a_message_is_acked_when_handled():
    acked = []
    held = HeldAck(lambda: acked.append(1))
    held.finish()
    held.finish()
    assert acked == [1]
    held = HeldAck(lambda: acked.append(2))
    held.hold()
    held.finish()
    assert acked == [1]
    held.release()
    assert acked == [1, 2]


def test_a_worker_that_dies_holding_a_batch_leaves_nothing_to_send_again(small):
    """The killed worker's kflow messages were never acked, so the next worker gets them again: every chunk
    they carry was accepted and is in `progress`, so it sends nothing and only finalizes (kill -9 measured
    741 duplicate flows in the fault suite before the completed objects' progress was shared)."""
    from streams.formats.records import Progress

    clock = Clock()
    a = batched(clock)
    for o in small[:6]:
        a.cos.put(o.key, o.body)
    keys = sorted(o.key for o in small[:6])
    a.parse(a.group(keys))
    a.enrich_all()
    raws = a.kflow_messages()
    for raw in raws:
        a.sink(raw)
    posts = len(a.kentik.posts)
    assert posts and not deleted(a)  # accepted, held for the batch; the worker dies now
    shared = [Progress.decode(v) for _, v in a.topics.progress.messages if v is not None]
    assert sorted(p.key for p in shared) == keys and all(len(p.done) == p.chunks for p in shared)
    b = a.other(BLUEFLOW_CHUNK_FLOWS="2000")
    b.ctx.deletes = DeleteBatcher(1.0, clock=clock)
    a.share_progress_with(b)
    for raw in raws:  # redelivered
        b.sink(raw)
    assert len(a.kentik.posts) == posts  # nothing sent twice
    clock.now += 2
    b.run(b.ctx.deletes.flush(b.ctx))
    assert sorted(deleted(b)) == keys and not b.cos.objects
    assert sorted(k.decode() for k, v in b.topics.progress.messages if v is None) == keys  # tombstoned


def test_without_batching_a_completed_object_writes_a_ledger_record_not_progress(small):
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    keys = sink_group(d, small[:3])
    assert sorted(deleted(d)) == keys and not d.topics.progress.messages


def test_a_rebalance_during_a_refused_delete_leaves_the_batch_to_the_next_owner(small):
    """COS refuses the batch's delete and Faust begins revoking the partitions (it waits for every unacked
    message, held ones included): the batch is dropped, not retried, its messages stay unacked, nothing is
    ledgered; the next owner gets the messages again, sends nothing twice and deletes the objects."""
    from streams.stages.retry import Pauser

    clock, acked = Clock(), []
    a = batched(clock)
    raws: list = []
    forgotten: list = []
    helds = sink_holding(a, small[:4], acked, raws, forgotten)
    keys = sorted(o.key for o in small[:4])
    posts = len(a.kentik.posts)
    a.cos.fail_deletes = 1
    rebalancing = []
    a.ctx.pause = Pauser(lambda: False, lambda: bool(rebalancing))
    rebalancing.append(True)
    clock.now += 2
    a.run(a.ctx.deletes.flush(a.ctx))
    assert helds and not acked and all(not h.acked for h in helds)
    assert sorted(forgotten) == list(range(len(helds)))  # Faust's consumer no longer waits for them
    helds[0].release()
    helds[0].finish()
    assert not acked  # abandoned: never acked, whatever else holds it
    assert len(a.ctx.deletes) == 0 and not a.ledger() and sorted(a.cos.objects) == keys
    assert a.ctx.health.problems(unhealthy_after=0) == []  # the next owner reports what it meets
    b = a.other(BLUEFLOW_CHUNK_FLOWS="2000")
    b.ctx.deletes = DeleteBatcher(1.0, clock=clock)
    a.share_progress_with(b)
    for raw in raws:
        b.sink(raw)
    clock.now += 2
    b.run(b.ctx.deletes.flush(b.ctx))
    assert len(a.kentik.posts) == posts and sorted(deleted(b)) == keys and not b.cos.objects


def test_a_rebalance_mid_delivery_keeps_what_kentik_accepted_so_the_next_owner_sends_only_the_rest(small):
    """A message whose devices are posted one by one: the first POST is accepted, the second is being retried
    (503) when the rebalance begins. The message is left unacked, the accepted chunks go to `progress`, and
    the next owner posts only the other device's rows, then deletes every object."""
    from streams.stages.retry import Pauser

    clock = Clock()
    a = batched(clock)
    objects = small[:6]
    for o in objects:
        a.cos.put(o.key, o.body)
    keys = sorted(o.key for o in objects)
    a.parse(a.group(keys))
    a.enrich_all()
    raws = a.kflow_messages()
    assert len(raws) == 1
    devices = {p.device_name for p in a.kflow_chunks(raws)[0].parts}
    assert len(devices) >= 2
    a.kentik.answers = [200, 503]
    a.ctx.pause = Pauser(lambda: False, lambda: len(a.kentik.posts) >= 2)  # the revoke began during POST 2
    a.pipe("kflow", raws[0], b"k", guarded=True, held=HeldAck(lambda: None))
    first = a.kentik.posts[0][0]
    assert [d for d, _ in a.kentik.posts] == [first, a.kentik.posts[1][0]] and not a.deadletters()
    shared = [Progress.decode(v) for _, v in a.topics.progress.messages if v is not None]
    assert shared and all(len(p.done) == p.chunks for p in shared)  # the first device's objects, accepted
    assert not deleted(a) and sorted(a.cos.objects) == keys
    b = a.other(BLUEFLOW_CHUNK_FLOWS="2000")
    b.ctx.deletes = DeleteBatcher(1.0, clock=clock)
    a.share_progress_with(b)
    b.sink(raws[0])
    later = [d for d, _ in a.kentik.posts[2:]]
    assert first not in later and len(later) == len(devices) - 1
    clock.now += 2
    b.run(b.ctx.deletes.flush(b.ctx))
    assert sorted(deleted(b)) == keys and not b.cos.objects
