"""The numpy translate gives exactly what the list-based one gave (tests/unit/formats/flowlog/legacy_translate.py): same integer
columns, same string dictionary in the same order, same custom indexes, same counts and labels — for generated
objects of a whole world (with and without metadata), for odd batches (unknown directions, empty times, bad IPs,
no target traffic), and whether the integer columns arrive as lists or as numpy arrays.
"""
from __future__ import annotations

import random

import numpy as np
import orjson
import pytest

from connectors.vpc import build_snapshot
from devstack.synth import generator
from devstack.synth.worldgen import build_world
from streams.formats.flowlog.flowlog import FLOW_FIELDS, parse_object_key
from tests.unit.formats.flowlog.flowdoc import parse_object_bytes
from streams.state.ipindex import IpIndex
from streams.formats.translate import INT_COLUMNS, Segment, translate_batch, translate_segments

from tests.unit.formats.flowlog import legacy_translate as old
from tests.unit.formats.flowlog.test_translate import HEADER, INDEX, KEY_INFO, flow, plain

@pytest.fixture(scope="module")
def world():
    return build_world(seed=3)


@pytest.fixture(scope="module")
def world_index(world):
    from devstack.standins.vpc_render import Renderer
    snaps = [build_snapshot(r, Renderer(world, r, "http://x/" + r + "/v1").collections()) for r in world.regions]
    return IpIndex.from_snapshots(snaps)


def as_numpy(columns: dict) -> dict:
    """Flow columns with the integer ones as numpy int64 arrays, as the Avro decoder may hand them over."""
    return {k: np.asarray(v, dtype=np.int64) if v and isinstance(v[0], int) else v for k, v in columns.items()}


def assert_same(key_info, header, columns, index):
    want = old.translate_batch(key_info, header, columns, index)
    got = translate_batch(key_info, header, columns, index)
    assert plain(got) == want
    assert plain(translate_batch(key_info, header, as_numpy(columns), index)) == want
    assert got["src_addr"].dtype == np.uint32 and got["timestamp"].dtype == np.int64


@pytest.mark.parametrize("use_index", [True, False])
def test_generated_objects_translate_identically(world, world_index, use_index):
    objs = list(generator.iter_objects(world, objects=40, seed=11, mean_flows=300, keep_flows=False))
    checked = 0
    for obj in objs:
        doc = parse_object_bytes([obj.body])
        if not doc.flow_count:
            continue
        assert_same(parse_object_key(obj.key), doc.header, doc.columns, world_index if use_index else None)
        checked += doc.flow_count
    assert checked > 2000


def test_random_odd_batches_translate_identically():
    rng = random.Random(7)
    ips = ["10.240.64.4", "10.240.128.7", "10.240.128.99", "150.240.1.9", "161.26.0.10", "", "not-an-ip", "::1"]
    times = ["", "2024-05-14T09:11:20Z", "2024-05-14T09:12:00.750Z", "2024-05-14T09:14:59Z"]
    for _ in range(200):
        n = rng.choice((1, 2, 5, 40))
        flows = [flow(direction=rng.choice("OOIIX"), ini=rng.choice(ips), tgt=rng.choice(ips),
                      start=rng.choice(times), end=rng.choice(times), action=rng.choice(("accepted", "rejected")),
                      bfi=rng.choice((0, 1, 2 ** 40)), pfi=rng.choice((0, 3)), bft=rng.choice((0, 0, 300)),
                      pft=rng.choice((0, 0, 2)), iport=rng.randrange(65536), tport=rng.randrange(65536),
                      proto=rng.choice((1, 6, 17))) for _ in range(n)]
        cols = {name: [f[name] for f in flows] for name in FLOW_FIELDS}
        assert_same(KEY_INFO, HEADER, cols, rng.choice((INDEX, None)))


def test_empty_batch_identical():
    cols = {name: [] for name in FLOW_FIELDS}
    got = translate_batch(KEY_INFO, HEADER, cols, INDEX)
    assert plain(got) == old.translate_batch(KEY_INFO, HEADER, cols, INDEX)
    assert got["flow_count"] == 0 and all(len(got[c]) == 0 for c in INT_COLUMNS)


def test_header_only_document_shape():
    d = {"version": "0.0.1", **HEADER, "flow_logs": [flow(start=""), flow(direction="I", bft=0, pft=0)]}
    doc = parse_object_bytes([orjson.dumps(d)])
    assert_same(KEY_INFO, doc.header, doc.columns, INDEX)


def _records(batch: dict, count: int) -> list[tuple]:
    """Each CHF of a translated batch as (integer values..., its 19 custom strings)."""
    strings, idx = batch["strings"], np.asarray(batch["custom_idx"])
    return [tuple(int(batch[c][i]) for c in INT_COLUMNS) + tuple(strings[j] for j in idx[19 * i:19 * i + 19])
            for i in range(count)]


@pytest.mark.parametrize("use_index", [True, False])
def test_objects_translated_together_give_each_object_s_records_in_its_own_range(world, world_index, use_index):
    """A message of several objects translated in one pass: per object the same CHF, in the same order, as
    translating that object alone — also for empty times, which stand for each object's own capture time."""
    objs = [o for o in generator.iter_objects(world, objects=12, seed=5, mean_flows=80, keep_flows=False)]
    docs = [(parse_object_key(o.key), parse_object_bytes([o.body])) for o in objs]
    index = world_index if use_index else None
    rng = random.Random(3)
    segments, columns = [], {name: [] for name in FLOW_FIELDS}
    for i, (info, doc) in enumerate(docs):
        cols = {name: list(np.asarray(doc.columns[name]).tolist()) if not isinstance(doc.columns[name], list)
                else list(doc.columns[name]) for name in FLOW_FIELDS}
        for t in ("start_time", "end_time"):  # some empty times, each object with its own capture window
            cols[t] = ["" if rng.random() < 0.2 else v for v in cols[t]]
        header = {"capture_start_time": f"2024-05-14T09:{10 + i:02d}:00Z",
                  "capture_end_time": f"2024-05-14T09:{15 + i:02d}:00Z"}
        segments.append(Segment(info, header, doc.flow_count))
        for name in FLOW_FIELDS:
            columns[name] += cols[name]
    got, counts, _ = translate_segments(segments, columns, index)
    start, row = 0, 0
    assert sum(counts) == len(got["timestamp"]) and len(segments) > 5
    for seg, count in zip(segments, counts):
        alone = translate_batch(seg.key_info, seg.header, {k: v[row:row + seg.count] for k, v in columns.items()},
                                index)
        assert alone["flow_count"] == count
        together = {c: got[c][start:start + count] for c in INT_COLUMNS}
        together.update(strings=got["strings"], custom_idx=got["custom_idx"][19 * start:19 * (start + count)])
        assert _records(together, count) == _records(alone, count)
        start, row = start + count, row + seg.count
