"""Synthetic IBM VPC flow-log objects for a devstack World: good, empty, bad and tricky-good ones mixed.

Generation is pure and deterministic for a seed (`iter_objects` / `generate_objects`): keys and documents in
IBM's layout (layout.py), flows consistent with the World (traffic.py), empty objects and optional bad inputs
from the catalogue (badinputs.py) at seeded positions. Uploading is writer.py's (`blueflow-dev generate`).
"""
from __future__ import annotations

import os
import random
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Iterator, Sequence

import orjson

from devstack.synth import badinputs
from devstack.synth.layout import (DEFAULT_START, INTERVAL_S, GeneratedObject, chf_count, gzip_bytes, header_metadata,
                                   make_document, make_key)
from devstack.synth.traffic import flow_count_for, make_flows
from devstack.synth.vnics import NicContext, WorldContext, world_context

def _good_object(wc: WorldContext, c: NicContext, rt: str, interval: int, start_ts: int, rng: random.Random,
                 empty: bool, mean_flows: float, keep_flows: bool) -> tuple[GeneratedObject, bytes]:
    """The object (body still empty) and its uncompressed JSON document."""
    cs = start_ts + c.offset_s + interval * INTERVAL_S
    ce = cs + INTERVAL_S
    n = 0 if empty else flow_count_for(rng, mean_flows)
    flows = make_flows(rng, wc, c, rt, cs, ce, n) if n else []
    doc = make_document(c, cs, ce, flows)
    key = make_key(c, rt, cs, c.stream_start[rt], c.seq_start[rt] + interval)
    obj = GeneratedObject(key=key, body=b"", metadata=header_metadata(doc), flows=flows if keep_flows else None,
                          kind="empty" if empty else "good", flow_count=n, chf_count=chf_count(flows))
    return obj, orjson.dumps(doc)


def _with_body(obj: GeneratedObject, raw: bytes) -> GeneratedObject:
    obj.body = gzip_bytes(raw)
    return obj


def _plan(wc: WorldContext, objects: int) -> Iterator[tuple[NicContext, str, int]]:
    """Interval-major: every vNIC writes its ingress/egress pair (or one 'all') per 5-minute interval."""
    made = 0
    interval = 0
    while made < objects:
        for c in wc.nics:
            for rt in c.record_types:
                if made >= objects:
                    return
                yield c, rt, interval
                made += 1
        interval += 1


def iter_objects(world: Any, *, objects: int, seed: int, empty_share: float = 0.1, mean_flows: float = 150,
                 start: datetime = DEFAULT_START, bad: int = 0, tricky: int = 0, bad_kinds: Sequence[str] | None = None,
                 keep_flows: bool = True, compress_workers: int | None = None) -> Iterator[GeneratedObject]:
    """Yield `objects` flow-log objects (good + empty), plus `bad` bad and `tricky` tricky-good catalogue
    objects interleaved at seeded positions. Deterministic for (world, seed, arguments): gzip runs in a few
    threads (zlib releases the GIL) while the next documents are built, but results come out in order."""
    if start.tzinfo is None:
        start = start.replace(tzinfo=timezone.utc)
    start_ts = int(start.timestamp())
    wc = world_context(world)
    if not wc.nics:
        raise ValueError("world has no vNICs")
    names = list(bad_kinds) if bad_kinds is not None else list(badinputs.BAD_KINDS)
    extra: list[tuple[str, int]] = [(names[i % len(names)], i) for i in range(bad)] if names else []
    extra += [(badinputs.TRICKY_GOOD_KINDS[i % len(badinputs.TRICKY_GOOD_KINDS)], bad + i) for i in range(tricky)]
    total = objects + len(extra)
    place_rng = random.Random(f"blueflow-place:{seed}")
    slots = dict(zip(sorted(place_rng.sample(range(total), len(extra))), extra))
    plan = _plan(wc, objects)
    seen: set[str] = set()
    workers = compress_workers if compress_workers is not None else min(4, os.cpu_count() or 1)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bf-gzip") if workers > 1 else None
    ahead: deque = deque()
    try:
        for pos in range(total):
            if pos in slots:
                name, i = slots[pos]
                obj = badinputs.make_object(name, world, random.Random(f"blueflow-bad:{seed}:{i}"), start=start,
                                            keep_flows=keep_flows)
                if obj.key in seen:   # astronomically unlikely; keep keys unique anyway
                    obj = badinputs.make_object(name, world, random.Random(f"blueflow-bad2:{seed}:{i}"),
                                                start=start, keep_flows=keep_flows)
                item: Any = obj
            else:
                c, rt, interval = next(plan)
                rng = random.Random(f"blueflow-obj:{seed}:{pos}")
                empty = rng.random() < empty_share
                obj, raw = _good_object(wc, c, rt, interval, start_ts, rng, empty, mean_flows, keep_flows)
                item = pool.submit(_with_body, obj, raw) if pool is not None else _with_body(obj, raw)
            seen.add(obj.key)
            ahead.append(item)
            while len(ahead) > 2 * workers:
                first = ahead.popleft()
                yield first.result() if isinstance(first, Future) else first
        while ahead:
            first = ahead.popleft()
            yield first.result() if isinstance(first, Future) else first
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def generate_objects(world: Any, *, objects: int, seed: int, empty_share: float = 0.1, mean_flows: float = 150,
                     start: datetime = DEFAULT_START, bad: int = 0, tricky: int = 0,
                     bad_kinds: Sequence[str] | None = None) -> list[GeneratedObject]:
    return list(iter_objects(world, objects=objects, seed=seed, empty_share=empty_share, mean_flows=mean_flows,
                             start=start, bad=bad, tricky=tricky, bad_kinds=bad_kinds))
