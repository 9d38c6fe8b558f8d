"""streams/formats/flowlog/flowencode.py: an object's flows messages made as it streams in — compact encoded chunks
held until the object is known good, the same messages as encoding the whole parsed object — and the parse stage's
use of it (a bad object delivers nothing, whatever comes before its fault)."""
from __future__ import annotations

import gzip

import orjson
import pytest

from devstack.synth import generator, layout
from devstack.synth.worldgen import build_world
from tests.unit.formats.test_columns import lists
from streams.formats.flowlog.flowencode import object_messages, pack, read_object
from streams.formats.flowlog.flowlog import FlowLogError, Limits
from tests.unit.formats.flowlog.flowdoc import parse_object_bytes
from streams.formats.batches import FlowChunk
from streams.formats.records import ObjectRef
from devstack.harness.driver import Driver

REF = ObjectRef("flowlogs", "ibm_vpc_flowlogs_v1/k.gz", "etag-1", 1234, 1715677802000, source="acct-a")


@pytest.fixture(scope="module")
def objs():
    made = generator.generate_objects(build_world(seed=1), objects=60, seed=5, mean_flows=60, empty_share=0.0)
    good = [o for o in made if o.kind == "good" and o.flow_count]
    return {"small": [o for o in good if o.flow_count < 40], "big": [o for o in good if o.flow_count > 130]}


def pieces(body: bytes, size: int = 997) -> list[bytes]:
    return [body[i:i + size] for i in range(0, len(body), size)]


def with_bad_flow(body: bytes, index: int) -> bytes:
    doc = orjson.loads(gzip.decompress(body))
    doc["flow_logs"][index]["start_time"] = 12  # not a timestamp string
    return layout.gzip_bytes(orjson.dumps(doc))


def test_splice_gives_the_bytes_of_encoding_the_whole_record(objs):
    doc = parse_object_bytes([objs["small"][0].body])
    for columns in (doc.columns, {}):
        chunk = FlowChunk.of(REF, doc.header, 2, 5, columns or None)
        spliced = chunk.encode_around(FlowChunk.encode_columns(chunk.columns))
        assert spliced == chunk.encode()
        back = FlowChunk.decode(spliced)
        assert (back.header, back.chunk, back.chunks, back.source) == (doc.header, 2, 5, "acct-a")
        assert {k: v for k, v in lists(back.columns).items() if v} == {k: v for k, v in chunk.columns.items() if v}


def test_object_of_several_chunks_is_held_encoded_then_one_message_per_chunk(objs):
    obj = objs["big"][0]
    whole = parse_object_bytes([obj.body])
    got = read_object(REF, pieces(obj.body), 50, Limits())
    total = -(-obj.flow_count // 50)
    assert got.columns is None and len(got.encoded) == total and got.flow_count == obj.flow_count
    assert all(isinstance(block, bytes) for _, block in got.encoded)
    messages = [FlowChunk.decode(m) for m in object_messages(got)]
    assert got.encoded == []  # the held bytes are let go as the messages are made
    assert [(m.chunk, m.chunks) for m in messages] == [(n, total) for n in range(total)]
    assert [m.flow_count for m in messages] == [50] * (total - 1) + [obj.flow_count - 50 * (total - 1)]
    for m in messages:
        assert m.header == whole.header and (m.key, m.etag, m.source) == (REF.key, REF.etag, "acct-a")
        [part] = m.parts
        assert (part.chunk, part.chunks, part.start, part.flow_count) == (m.chunk, total, 0, m.flow_count)
    for name, column in whole.columns.items():
        assert [v for m in messages for v in m.columns[name]] == column


def test_objects_of_one_chunk_keep_their_columns_and_are_packed_together(objs):
    small = objs["small"][:3]
    got = [read_object(REF, [o.body], 200, Limits()) for o in small]
    assert all(g.encoded == [] and len(g.columns["direction"]) == o.flow_count for g, o in zip(got, small))
    [message] = pack(got, 200)
    assert [p.start for p in message.parts] == [0, small[0].flow_count, small[0].flow_count + small[1].flow_count]
    assert message.flow_count == sum(o.flow_count for o in small)


def test_header_after_the_flows_is_in_every_message(objs):
    doc = orjson.loads(gzip.decompress(objs["big"][0].body))
    flows = doc.pop("flow_logs")
    body = layout.gzip_bytes(orjson.dumps({"flow_logs": flows, **doc}))  # header fields last
    got = read_object(REF, pieces(body), 50, Limits())
    messages = [FlowChunk.decode(m) for m in object_messages(got)]
    assert {m.header["capture_start_time"] for m in messages} == {doc["capture_start_time"]}


def test_bad_flow_after_many_good_chunks_rejects_the_whole_object(objs):
    obj = objs["big"][0]
    bad = with_bad_flow(obj.body, obj.flow_count - 1)
    with pytest.raises(FlowLogError) as streamed:
        read_object(REF, pieces(bad), 50, Limits())
    with pytest.raises(FlowLogError) as whole:
        parse_object_bytes([bad])
    assert (streamed.value.stage, streamed.value.reason) == (whole.value.stage, whole.value.reason)
    assert f"flow {obj.flow_count - 1}" in streamed.value.reason or str(obj.flow_count - 1) in streamed.value.reason


def test_over_the_size_limit_is_rejected_with_the_setting_named(objs):
    obj = objs["big"][0]
    with pytest.raises(FlowLogError) as exc:
        read_object(REF, pieces(obj.body), 50, Limits(max_object_bytes=10_000))
    assert exc.value.stage == "decompress" and "--max_object_bytes" in exc.value.reason


def test_dry_run_counts_without_holding_anything(objs):
    obj = objs["big"][0]
    got = read_object(REF, pieces(obj.body), 50, Limits(), keep=False)
    assert (got.flow_count, got.columns, got.encoded) == (obj.flow_count, None, [])


def test_stage_delivers_nothing_of_a_bad_object_and_everything_of_the_good_ones(objs):
    d = Driver()  # chunk_flows 50
    bad_obj, good = objs["big"][0], [objs["big"][1], *objs["small"][:3]]
    d.cos.put(bad_obj.key, with_bad_flow(bad_obj.body, bad_obj.flow_count - 1))
    for o in good:
        d.cos.put(o.key, o.body)
    d.parse(d.group(sorted([bad_obj.key, *(o.key for o in good)])))
    [letter] = d.deadletters()
    assert (letter.key, letter.stage) == (bad_obj.key, "validate")
    flows = d.flow_chunks()
    delivered = {}
    for f in flows:
        for p in f.parts:
            delivered[p.key] = delivered.get(p.key, 0) + p.flow_count
    assert delivered == {o.key: o.flow_count for o in good}
    big = [f for f in flows if f.key == good[0].key]
    assert sorted(f.chunk for f in big) == list(range(big[0].chunks)) and big[0].chunks > 1
