"""Catalogue of bad (and tricky-but-valid) flow-log objects the reader must survive.

Data-driven: `CATALOGUE` maps a kind name to a `Kind` (maker function, expected stage, description, whether
it is actually valid). A maker is `(world, rng, *, start) -> BadInput(key, body, metadata, expected_stage,
description, flows, content_encoding)`. Stages use the reader's vocabulary (streams/formats/flowlog/flowlog.py):
"key", "decompress", "json", "validate"; "" means the object is valid and its flows are owed downstream.

- `BAD_KINDS`: the default bad set (each must be dead-lettered, never deleted).
- `TRICKY_GOOD_KINDS`: odd but valid objects (e.g. already-decompressed body with Content-Encoding: gzip).
- `LAZY_KINDS`: expensive ones only made on request (`huge_object`, ~50 MB of valid flows by default).
"""
from __future__ import annotations

import random
from datetime import datetime
from typing import Any

from devstack.synth import bad_bodies, bad_keys, layout  # noqa: F401 - importing them registers their kinds
from devstack.synth.badkinds import CATALOGUE, BadInput, Kind

# ------------------------------------------------------------------------------------------------- public API

BAD_KINDS: tuple[str, ...] = tuple(k.name for k in CATALOGUE.values() if not k.good and k.default)
TRICKY_GOOD_KINDS: tuple[str, ...] = tuple(k.name for k in CATALOGUE.values() if k.good and k.default)
LAZY_KINDS: tuple[str, ...] = tuple(k.name for k in CATALOGUE.values() if not k.default)


def make(name: str, world: Any, rng: random.Random, **opts: Any) -> BadInput:
    """Build one catalogue entry (unknown name: KeyError listing the known ones)."""
    try:
        k = CATALOGUE[name]
    except KeyError:
        raise KeyError(f"unknown bad-input kind {name!r}; known: {', '.join(CATALOGUE)}") from None
    return k.make(world, rng, **opts)


def make_object(name: str, world: Any, rng: random.Random, *, start: datetime = layout.DEFAULT_START,
                keep_flows: bool = True, **opts: Any) -> layout.GeneratedObject:
    """A catalogue entry as a GeneratedObject (kind = its name for bad ones, 'good' for tricky-good ones)."""
    bi = make(name, world, rng, start=start, **opts)
    good = CATALOGUE[name].good
    flows = list(bi.flows)
    n = bi.flow_count if bi.flow_count is not None else len(flows)
    chf = bi.chf if bi.chf is not None else layout.chf_count(flows)
    return layout.GeneratedObject(
        key=bi.key, body=bi.body, metadata=bi.metadata,
        flows=(flows if keep_flows else None) if good else [],
        kind="good" if good else name, variant=name, expected_stage=bi.expected_stage,
        reason=bi.description, content_encoding=bi.content_encoding,
        flow_count=n if good else 0, chf_count=chf if good else 0)


def all_entries(world: Any, seed: int = 1, *, start: datetime = layout.DEFAULT_START,
                include_good: bool = True) -> list[tuple[Kind, BadInput]]:
    """Every default entry once (bad, then tricky-good), deterministic for the seed."""
    names = list(BAD_KINDS) + (list(TRICKY_GOOD_KINDS) if include_good else [])
    return [(CATALOGUE[n], make(n, world, random.Random(f"blueflow-catalogue:{seed}:{n}"), start=start))
            for n in names]
