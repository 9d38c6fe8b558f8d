"""One bad object never holds back the good ones of its group (issue 28): for every bad-input kind of the fault
suite, and for a header count that fits no Avro long, one bad object among good ones in one `objects` message →
every good flow delivered and every good object deleted, the bad one dead-lettered alone under its own key with
the real reason. A failure of a message that no object can be blamed for splits the group and tries the objects
one by one. Broker-free (devstack/harness/driver.py), through the agent's guard (streams/stages/topology.py)."""
from __future__ import annotations

import asyncio
import gzip
import random

import json
import pytest

from devstack.synth import badinputs
from devstack.synth import generator, traffic
from devstack.synth.worldgen import build_world
from streams.formats.flowlog import flowcheck
from streams.formats.batches import FlowChunk
from streams.formats.flowlog.flowencode import ObjectFlows, encode_packed, packed
from streams.stages import parse
from devstack.harness.driver import Driver

HUGE = 1 << 70  # number_of_flow_logs of the poison header (issue 28)


@pytest.fixture(scope="module")
def world():
    return build_world(seed=1)


@pytest.fixture(scope="module")
def good(world):
    made = generator.generate_objects(world, objects=30, seed=5, mean_flows=12, empty_share=0.0)
    objects = [o for o in made if o.kind == "good" and 0 < o.flow_count < 20][:6]
    assert len(objects) == 6
    return objects


def run_group(d: Driver, keys: list[str]) -> None:
    """Parse the group `keys` as one objects message, enrich and deliver everything it gave."""
    group = d.group(keys)
    d.pipe("objects", group.encode(), group.skey.encode(), guarded=True)
    for key, value in d.topics.flows.drain():
        d.pipe("flows", value, key, guarded=True)
    for key, value in d.topics.kflow.drain():
        d.pipe("kflow", value, key, guarded=True)


def assert_isolated(d: Driver, good, bad_key: str) -> list:
    """Every good object delivered (ledgered with all its flows) and deleted; only the bad one dead-lettered,
    under its own key; it stays in the bucket."""
    ledger = {e.key: e for e in d.ledger()}
    assert set(ledger) == {o.key for o in good}
    assert all(ledger[o.key].flows == o.flow_count and ledger[o.key].deleted for o in good)
    assert set(d.cos.objects) == {bad_key}
    letters = d.deadletters()
    assert [letter.key for letter in letters] == [bad_key]
    return letters


def poison_body(world, count: int = HUGE) -> tuple[str, bytes, int]:
    """A valid object whose header claims `count` flows."""
    sample = traffic.sample(world, random.Random(9), flows=4)
    doc = dict(sample.doc, number_of_flow_logs=count)
    return sample.key(), gzip.compress(json.dumps(doc).encode()), len(doc["flow_logs"])


@pytest.mark.parametrize("kind", badinputs.BAD_KINDS)
def test_one_bad_object_of_every_kind_is_dead_lettered_alone(kind, world, good):
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    bad = badinputs.make(kind, world, random.Random(3))
    for o in good:
        d.cos.put(o.key, o.body)
    d.cos.put(bad.key, bad.body)
    keys = [good[0].key, good[1].key, bad.key, *(o.key for o in good[2:])]  # the bad one is not the group key
    run_group(d, keys)
    [letter] = assert_isolated(d, good, bad.key)
    assert letter.stage in {bad.expected_stage, "parse"} and letter.reason


def test_header_count_beyond_a_long_is_dead_lettered_alone_naming_the_field(world, good):
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    key, body, _ = poison_body(world)
    for o in good:
        d.cos.put(o.key, o.body)
    d.cos.put(key, body)
    run_group(d, [good[0].key, key, *(o.key for o in good[1:])])
    [letter] = assert_isolated(d, good, key)
    assert letter.stage == "validate" and "number_of_flow_logs" in letter.reason and str(HUGE) in letter.reason


def test_an_object_whose_message_cannot_be_encoded_is_set_apart(world, good, monkeypatch):
    """The defect of issue 28 itself: validation lets the count through (as it did), the packed message of the
    group cannot be encoded; only the object that caused it is dead-lettered."""
    monkeypatch.setattr(flowcheck, "MAX_HEADER_COUNT", HUGE * 2)
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    key, body, _ = poison_body(world)
    for o in good:
        d.cos.put(o.key, o.body)
    d.cos.put(key, body)
    run_group(d, [good[0].key, key, *(o.key for o in good[1:])])
    [letter] = assert_isolated(d, good, key)
    assert letter.stage == "parse" and "could not be encoded" in letter.reason


def test_an_object_of_several_chunks_that_cannot_be_encoded_sends_nothing(world, good, monkeypatch):
    monkeypatch.setattr(flowcheck, "MAX_HEADER_COUNT", HUGE * 2)
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2")  # the poison object (4 flows) has two chunks
    key, body, _ = poison_body(world)
    for o in good:
        d.cos.put(o.key, o.body)
    d.cos.put(key, body)
    run_group(d, [key, *(o.key for o in good)])
    assert_isolated(d, good, key)
    assert d.kentik.posts


def test_encode_packed_blames_only_the_object_that_fails(world, good):
    d = Driver()
    objects = []
    for o in good[:4]:
        d.cos.put(o.key, o.body)
        objects.append(parse.download_and_parse(d.ctx, d.ref(o.key)))
    poison = ObjectFlows(objects[1].ref, dict(objects[1].header, number_of_flow_logs=HUGE), objects[1].flow_count,
                         objects[1].columns)
    messages, bad = encode_packed([objects[0], poison, objects[2], objects[3]], 2000)
    assert [(obj.ref.key, "could not be encoded" in why) for obj, why in bad] == [(poison.ref.key, True)]
    [message] = messages
    parts = FlowChunk.decode(message).parts
    assert [p.key for p in parts] == [objects[i].ref.key for i in (0, 2, 3)]
    assert [p.start for p in parts] == [0, objects[0].flow_count, objects[0].flow_count + objects[2].flow_count]
    assert messages == [packed([objects[0], objects[2], objects[3]]).encode()]


class RefusingTopic:
    """The `flows` topic of a broker that refuses any message carrying `key` (e.g. too large): a failure of
    the message, which names no object."""

    def __init__(self, topic, key: str):
        self.topic, self.key = topic, key

    async def send(self, key: bytes, value: bytes, force: bool = False):
        if any(p.key == self.key for p in FlowChunk.decode(value).parts):
            raise RuntimeError("MessageSizeTooLarge: the request included a message larger than the broker takes")
        return await self.topic.send(key, value, force)

    def drain(self):
        return self.topic.drain()


def test_a_message_failure_splits_the_group_and_blames_the_object_alone(good):
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    for o in good:
        d.cos.put(o.key, o.body)
    culprit = good[3].key
    d.topics.flows = RefusingTopic(d.topics.flows, culprit)
    run_group(d, [o.key for o in good])
    delivered = [o for o in good if o.key != culprit]
    [letter] = assert_isolated(d, delivered, culprit)
    assert letter.stage == "parse" and "MessageSizeTooLarge" in letter.reason


def test_a_post_of_several_objects_refused_is_handed_over_object_by_object(good):
    """Kentik refuses (400) the POST of a device's objects, then, object by object, only the culprit's: the
    others of that device are delivered and deleted, the culprit alone dead-lettered."""
    from connectors.kentik import PostResult

    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    for o in good:
        d.cos.put(o.key, o.body)
    d.parse(d.group([o.key for o in good]))
    d.enrich_all()
    [raw] = d.kflow_messages()
    by_device: dict[str, list[str]] = {}
    for part in d.kflow_chunks([raw])[0].parts:
        by_device.setdefault(part.device_name, []).append(part.key)
    device, keys = max(by_device.items(), key=lambda item: len(item[1]))
    if len(keys) < 2:
        pytest.skip("the generated group has no device with several objects")
    culprit = keys[1]
    refusals = 3  # deliver() tries a permanent refusal this many times
    script = ([400] * refusals + [status for key in keys for status in
                                  ([400] * refusals if key == culprit else [200])])
    original = d.kentik.post_flows_result

    def post(dev, body):
        if dev.name == device:
            return PostResult(script.pop(0), None, "bad record")
        return original(dev, body)

    d.kentik.post_flows_result = post
    d.sink(raw)
    assert not script
    [letter] = d.deadletters()
    assert letter.key == culprit and letter.stage == "sink" and "HTTP 400" in letter.reason
    assert set(d.cos.objects) == {culprit}
    assert {e.key for e in d.ledger()} == {o.key for o in good} - {culprit}


def test_the_leaders_failing_listing_is_reported_with_an_empty_bucket():
    """Issue 21: with nothing pending and COS down, the leader's listing keeps failing; health must know it
    (readiness names it with its cause after --unhealthy_after), and a listing that works again clears it."""
    from streams.stages import poll
    from streams.stages.poll import LISTING_STEP

    d = Driver(BLUEFLOW_POLL_INTERVAL="0.1")
    d.cos.down = True

    async def some_polls():
        try:
            await asyncio.wait_for(poll.poll_loop(d.ctx), timeout=0.5)
        except asyncio.TimeoutError:
            pass

    asyncio.run(some_polls())
    [failing] = d.ctx.health.retrying()
    assert failing["step"] == LISTING_STEP and failing["dependency"] == "cos" and failing["attempts"] >= 2
    assert "flowlogs" in failing["reason"] and "ServiceUnavailable" in failing["reason"]
    assert not d.ctx.health.pending
    d.cos.down = False
    asyncio.run(some_polls())
    assert d.ctx.health.retrying() == []


def test_kafka_unreachable_blames_no_object(good):
    """A broker that times out is not an object's fault: nothing is dead-lettered by parse (the agent's guard
    handles the message as before), whereas a message the broker refuses for its size splits the group."""
    from aiokafka import errors

    from streams.stages.parse import kafka_unavailable

    assert kafka_unavailable(errors.KafkaTimeoutError()) and kafka_unavailable(errors.NotLeaderForPartitionError())
    assert kafka_unavailable(errors.KafkaConnectionError()) and kafka_unavailable(asyncio.TimeoutError())
    assert not kafka_unavailable(errors.MessageSizeTooLargeError()) and not kafka_unavailable(ValueError())
    d = Driver(BLUEFLOW_CHUNK_FLOWS="2000")
    for o in good:
        d.cos.put(o.key, o.body)

    class Down:
        async def send(self, key, value, force=False):
            raise errors.KafkaTimeoutError()

    d.topics.flows = Down()
    group = d.group([o.key for o in good])
    with pytest.raises(errors.KafkaTimeoutError):
        d.pipe("objects", group.encode(), group.skey.encode())
    assert d.deadletters() == [] and len(d.cos.objects) == len(good)
