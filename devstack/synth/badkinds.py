"""The bad-input catalogue's registry and builders: `BadInput` (one object: key, body, metadata, the stage
that must dead-letter it, why), `Kind` and the `@kind` decorator that registers a maker in `CATALOGUE`, and
the builders the makers share (a valid sample object with its body, one flow or its key changed).
Stages use the reader's vocabulary (streams/formats/flowlog/flowlog.py): "key", "decompress", "json", "validate"; "" means
the object is valid and its flows are owed downstream. The makers: bad_bodies.py, bad_keys.py; the
catalogue's use: badinputs.py."""
from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, NamedTuple

import orjson

from devstack.synth import layout, traffic

STAGE_KEY = "key"
STAGE_DECOMPRESS = "decompress"
STAGE_JSON = "json"
STAGE_VALIDATE = "validate"
STAGE_OK = ""


class BadInput(NamedTuple):
    key: str
    body: bytes
    metadata: dict[str, str]
    expected_stage: str
    description: str
    flows: tuple[dict, ...] | list[dict] = ()     # flows owed (only for valid kinds)
    content_encoding: str | None = None
    flow_count: int | None = None                 # when flows are not kept (huge_object): flows owed
    chf: int | None = None                        # when flows are not kept: kflow records owed


Maker = Callable[..., BadInput]


@dataclass(frozen=True)
class Kind:
    name: str
    make: Maker
    expected_stage: str
    description: str
    good: bool = False        # tricky-but-valid: must be delivered, not dead-lettered
    default: bool = True      # part of BAD_KINDS / TRICKY_GOOD_KINDS (False: lazy/expensive)


CATALOGUE: dict[str, Kind] = {}


def kind(name: str, stage: str, description: str, *, good: bool = False, default: bool = True):
    def register(fn: Maker) -> Maker:
        if name in CATALOGUE:
            raise ValueError(f"duplicate bad kind {name}")
        CATALOGUE[name] = Kind(name, fn, stage, description, good, default)
        return fn
    return register


# ----------------------------------------------------------------------------------------------------- helpers

def base(world: Any, rng: random.Random, start: datetime, flows: int = 3) -> traffic.Sample:
    return traffic.sample(world, rng, start=start, flows=flows)


def doc_bytes(doc: Any) -> bytes:
    return orjson.dumps(doc)


def body_variant(world, rng, start, name: str, mutate: Callable[[dict, random.Random], Any],
                 *, flows: int = 3) -> BadInput:
    """A valid key and metadata, with the parsed document mutated (mutate may return a replacement)."""
    s = base(world, rng, start, flows)
    doc = s.doc
    meta = layout.header_metadata(doc)
    replaced = mutate(doc, rng)
    if replaced is not None:
        doc = replaced
    k = CATALOGUE[name]
    return BadInput(s.key(), layout.gzip_bytes(doc_bytes(doc)), meta, k.expected_stage, k.description)


def flow_variant(world, rng, start, name: str, field: str, value: Any, *, delete: bool = False) -> BadInput:
    def mutate(doc, r):
        fl = doc["flow_logs"][r.randrange(len(doc["flow_logs"]))]
        if delete:
            del fl[field]
        else:
            fl[field] = value
    return body_variant(world, rng, start, name, mutate, flows=4)


def raw_body(world, rng, start, name: str, body_fn: Callable[[traffic.Sample, random.Random], bytes]) -> BadInput:
    s = base(world, rng, start)
    k = CATALOGUE[name]
    return BadInput(s.key(), body_fn(s, rng), layout.header_metadata(s.doc), k.expected_stage, k.description)


def good_variant(world, rng, start, name: str, *, flows: int = 5, encode_key: bool = True,
                 mutate: Callable[[dict, random.Random], None] | None = None,
                 body_fn: Callable[[bytes], bytes] | None = None, content_encoding: str | None = None) -> BadInput:
    s = base(world, rng, start, flows)
    if mutate is not None:
        mutate(s.doc, rng)
    raw = doc_bytes(s.doc)
    body = body_fn(raw) if body_fn is not None else layout.gzip_bytes(raw)
    k = CATALOGUE[name]
    return BadInput(s.key(encode=encode_key), body, layout.header_metadata(s.doc), STAGE_OK, k.description,
                    list(s.doc["flow_logs"]), content_encoding)
