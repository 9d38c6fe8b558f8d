"""The streaming decoder gives exactly what the whole-document parser gave (devstack/harness/legacy_flowlog.py).

Same columns, header and counts for every generated object (read in odd-sized download chunks), the same
chunks from `FlowStream` as from `iter_chunks`, and the same stage (and, for validation, the same
reason) for every entry of the bad-input catalogue and for thousands of randomly damaged documents.
"""
from __future__ import annotations

import random

import orjson
import pytest

from devstack.synth import badinputs
from devstack.synth import generator, layout, traffic
from devstack.synth.worldgen import build_world
from streams.formats.flowlog import flowlog as new
from devstack.harness import legacy_flowlog as old
from tests.unit.formats.flowlog import flowdoc


@pytest.fixture(scope="module")
def world():
    return build_world(seed=1)


def pieces(body: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(body):
        n = rng.choice((1, 7, 100, 4096, 65536, 1 << 20))
        out.append(body[i:i + n])
        i += n
    return out or [b""]


def outcome(parse_object_bytes, error: type, body: bytes, chunks: list[bytes]):
    try:
        doc = parse_object_bytes(chunks)
    except error as exc:
        return ("error", exc.stage, exc.reason)
    return ("ok", doc.header, doc.columns, doc.flow_count, doc.decompressed_size)


def assert_same(body: bytes, rng: random.Random, what: str = "") -> tuple:
    was = outcome(old.parse_object_bytes, old.FlowLogError, body, [body])
    now = outcome(flowdoc.parse_object_bytes, new.FlowLogError, body, pieces(body, rng))
    assert was[:2] == now[:2], (what, was[:3], now[:3])
    if was[0] == "ok":
        assert was == now, what
    elif was[1] == "validate":
        assert was[2] == now[2], what
    return now


def test_generated_objects_decode_identically(world):
    rng = random.Random(5)
    objs = generator.generate_objects(world, objects=120, seed=11, mean_flows=150)
    objs += generator.generate_objects(world, objects=3, seed=12, mean_flows=6000, empty_share=0)
    assert sum(o.flow_count for o in objs) > 20_000
    for obj in objs:
        assert assert_same(obj.body, rng, obj.key)[0] == "ok"


def test_streamed_chunks_equal_iter_chunks(world):
    rng = random.Random(6)
    objs = generator.generate_objects(world, objects=4, seed=13, mean_flows=3000, empty_share=0)
    objs += generator.generate_objects(world, objects=30, seed=14, mean_flows=5, empty_share=0.5)
    for obj in objs:
        for size in (1, 700, 2000):
            doc = old.parse_object_bytes([obj.body])
            stream = new.FlowStream(pieces(obj.body, rng), chunk_flows=size)
            got = list(stream)
            assert got == list(old.iter_chunks(doc, size))
            assert stream.chunks == len(got) == old.chunk_count(doc.flow_count, size)
            assert stream.header == doc.header and stream.flow_count == doc.flow_count


def test_huge_object_decodes_identically(world):
    bi = badinputs.make("huge_object", world, random.Random(3), size_mb=3)
    now = assert_same(bi.body, random.Random(7))
    assert now[3] == bi.flow_count


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_catalogue_same_stage_and_reason(world, seed):
    rng = random.Random(seed)
    for kind, bi in badinputs.all_entries(world, seed=seed):
        now = assert_same(bi.body, rng, kind.name)
        assert (now[1] if now[0] == "error" else "") == kind.expected_stage or kind.expected_stage == "key"


# ------------------------------------------------------------------------------------ random damage
BAD_VALUES = ["443", -1, 70000, 1.5, True, None, "", "10.0.0.256", "fe80::1", "X", [], {}, "2024-13-45T99:00:00Z",
              18446744073709551615, "accepted", 0, "2024-05-14T09:10:05Z"]


def mutate(doc: dict, rng: random.Random) -> bytes:
    d = orjson.loads(orjson.dumps(doc))
    flows = d["flow_logs"]
    choice = rng.randrange(12)
    if choice == 0 and flows:
        fl = rng.choice(flows)
        fl[rng.choice(list(fl))] = rng.choice(BAD_VALUES)
    elif choice == 1 and flows:
        del rng.choice(flows)[rng.choice(new.FLOW_FIELDS)]
    elif choice == 2:
        d[rng.choice(new.HEADER_FIELDS)] = rng.choice(BAD_VALUES)
    elif choice == 3 and flows:
        flows.insert(rng.randrange(len(flows) + 1), rng.choice(BAD_VALUES))
    elif choice == 4:
        for fl in flows:
            fl["note"] = rng.choice(['}', 'a}{b', '"}]', '\\}', '}\n{', '{"x":[1,{}]}'])
    elif choice == 5:  # header after flow_logs, maybe with start_time "" that needs it
        for fl in flows[: rng.randrange(len(flows) + 1)]:
            fl["start_time"] = ""
        d = {"flow_logs": d.pop("flow_logs"), **d}
        if rng.random() < 0.5:
            d["capture_start_time"] = ""
    elif choice == 6:
        d["flow_logs"] = rng.choice([None, {}, "x", 3, [[[]]]])
    elif choice == 7:
        return orjson.dumps(d, option=orjson.OPT_INDENT_2)
    raw = orjson.dumps(d)
    if choice == 8:
        return raw[: rng.randrange(len(raw) + 1)]
    if choice == 9:
        i = rng.randrange(len(raw))
        return raw[:i] + bytes([rng.choice(b'{}[]",: x\\0')]) + raw[i + 1:]
    if choice == 10:
        return raw + rng.choice([b" ", b"\n", b"x", b"{}", b",", b"]"])
    if choice == 11:
        return raw.replace(b'"10.', b'"\\u0031\\u0030.', rng.randrange(1, 4))  # escaped IPs are still IPs
    return raw


def test_randomly_damaged_documents(world):
    rng = random.Random(2024)
    base = [traffic.sample(world, rng, flows=n).doc for n in (0, 1, 3, 40, 900)]
    stages = set()
    for i in range(1500):
        raw = mutate(rng.choice(base), rng)
        body = layout.gzip_bytes(raw) if i % 3 else raw
        now = assert_same(body, rng, raw[:300])
        stages.add(now[1] if now[0] == "error" else "ok")
    assert stages >= {"ok", "json", "validate", "decompress"}
