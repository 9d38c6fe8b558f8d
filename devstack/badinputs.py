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
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, NamedTuple

import orjson

from devstack import generator as g

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

def _base(world: Any, rng: random.Random, start: datetime, flows: int = 3) -> g.Sample:
    return g.sample(world, rng, start=start, flows=flows)


def _doc_bytes(doc: Any) -> bytes:
    return orjson.dumps(doc)


def _body_variant(world, rng, start, name: str, mutate: Callable[[dict, random.Random], Any],
                  *, flows: int = 3) -> BadInput:
    """A valid key and metadata, with the parsed document mutated (mutate may return a replacement)."""
    s = _base(world, rng, start, flows)
    doc = s.doc
    meta = g.header_metadata(doc)
    replaced = mutate(doc, rng)
    if replaced is not None:
        doc = replaced
    k = CATALOGUE[name]
    return BadInput(s.key(), g.gzip_bytes(_doc_bytes(doc)), meta, k.expected_stage, k.description)


def _flow_variant(world, rng, start, name: str, field: str, value: Any, *, delete: bool = False) -> BadInput:
    def mutate(doc, r):
        fl = doc["flow_logs"][r.randrange(len(doc["flow_logs"]))]
        if delete:
            del fl[field]
        else:
            fl[field] = value
    return _body_variant(world, rng, start, name, mutate, flows=4)


def _raw_body(world, rng, start, name: str, body_fn: Callable[[g.Sample, random.Random], bytes]) -> BadInput:
    s = _base(world, rng, start)
    k = CATALOGUE[name]
    return BadInput(s.key(), body_fn(s, rng), g.header_metadata(s.doc), k.expected_stage, k.description)


def _good_variant(world, rng, start, name: str, *, flows: int = 5, encode_key: bool = True,
                  mutate: Callable[[dict, random.Random], None] | None = None,
                  body_fn: Callable[[bytes], bytes] | None = None, content_encoding: str | None = None) -> BadInput:
    s = _base(world, rng, start, flows)
    if mutate is not None:
        mutate(s.doc, rng)
    raw = _doc_bytes(s.doc)
    body = body_fn(raw) if body_fn is not None else g.gzip_bytes(raw)
    k = CATALOGUE[name]
    return BadInput(s.key(encode=encode_key), body, g.header_metadata(s.doc), STAGE_OK, k.description,
                    list(s.doc["flow_logs"]), content_encoding)


# ------------------------------------------------------------------------------------------- decompress stage

@kind("not_gzip", STAGE_DECOMPRESS, "body is neither gzip nor JSON (random binary bytes)")
def not_gzip(world, rng, *, start=g.DEFAULT_START):
    return _raw_body(world, rng, start, "not_gzip",
                     lambda s, r: b"PK\x03\x04" + bytes(r.getrandbits(8) for _ in range(600)))


@kind("truncated_gzip", STAGE_DECOMPRESS, "gzip stream cut off part-way (incomplete upload)")
def truncated_gzip(world, rng, *, start=g.DEFAULT_START):
    def body(s, r):
        full = g.gzip_bytes(_doc_bytes(s.doc))
        return full[: max(12, int(len(full) * r.uniform(0.3, 0.8)))]
    return _raw_body(world, rng, start, "truncated_gzip", body)


@kind("zero_byte", STAGE_DECOMPRESS, "0-byte object with a flow-log key")
def zero_byte(world, rng, *, start=g.DEFAULT_START):
    return _raw_body(world, rng, start, "zero_byte", lambda s, r: b"")


@kind("gzip_trailing_garbage", STAGE_DECOMPRESS, "valid gzip member followed by non-zero junk bytes")
def gzip_trailing_garbage(world, rng, *, start=g.DEFAULT_START):
    return _raw_body(world, rng, start, "gzip_trailing_garbage",
                     lambda s, r: g.gzip_bytes(_doc_bytes(s.doc)) + b"GARBAGE\x01\x02\x03-not-gzip")


@kind("corrupt_gzip", STAGE_DECOMPRESS, "gzip header intact but the deflate data is corrupted")
def corrupt_gzip(world, rng, *, start=g.DEFAULT_START):
    def body(s, r):
        full = bytearray(g.gzip_bytes(_doc_bytes(s.doc)))
        for i in range(12, min(len(full) - 8, 40)):
            full[i] ^= 0xA5
        return bytes(full)
    return _raw_body(world, rng, start, "corrupt_gzip", body)


# ------------------------------------------------------------------------------------------------- json stage

@kind("gzip_non_json", STAGE_JSON, "gzip of plain text that is not JSON")
def gzip_non_json(world, rng, *, start=g.DEFAULT_START):
    return _raw_body(world, rng, start, "gzip_non_json",
                     lambda s, r: g.gzip_bytes(b"this is a log line, not JSON\nsecond line\n"))


@kind("gzip_json_lines", STAGE_JSON, "gzip of JSON lines (one flow per line) instead of one document")
def gzip_json_lines(world, rng, *, start=g.DEFAULT_START):
    return _raw_body(world, rng, start, "gzip_json_lines",
                     lambda s, r: g.gzip_bytes(b"\n".join(orjson.dumps(f) for f in s.doc["flow_logs"])))


@kind("non_utf8", STAGE_JSON, "JSON document containing bytes that are not valid UTF-8")
def non_utf8(world, rng, *, start=g.DEFAULT_START):
    def body(s, r):
        raw = _doc_bytes(s.doc).replace(b'"state":"ok"', b'"state":"ok\xff\xfe\xc3"', 1)
        return g.gzip_bytes(raw)
    return _raw_body(world, rng, start, "non_utf8", body)


@kind("deeply_nested", STAGE_JSON, "10,000 nested arrays inside flow_logs (parser recursion limit)")
def deeply_nested(world, rng, *, start=g.DEFAULT_START):
    def body(s, r):
        head = dict(s.doc)
        head["flow_logs"] = []
        raw = _doc_bytes(head)
        assert raw.endswith(b"[]}")
        return g.gzip_bytes(raw[:-3] + b"[" + b"[" * 10_000 + b"]" * 10_000 + b"]}")
    return _raw_body(world, rng, start, "deeply_nested", body)


@kind("double_gzip", STAGE_JSON, "gzip of a gzip (decompresses once to gzip bytes, not JSON)")
def double_gzip(world, rng, *, start=g.DEFAULT_START):
    return _raw_body(world, rng, start, "double_gzip", lambda s, r: g.gzip_bytes(g.gzip_bytes(_doc_bytes(s.doc))))


@kind("truncated_json", STAGE_JSON, "complete gzip of a JSON document cut off mid-way")
def truncated_json(world, rng, *, start=g.DEFAULT_START):
    def body(s, r):
        raw = _doc_bytes(s.doc)
        return g.gzip_bytes(raw[: int(len(raw) * 0.6)])
    return _raw_body(world, rng, start, "truncated_json", body)


# --------------------------------------------------------------------------------------------- validate stage

@kind("json_array", STAGE_VALIDATE, "JSON array at the top level instead of an object")
def json_array(world, rng, *, start=g.DEFAULT_START):
    return _body_variant(world, rng, start, "json_array", lambda d, r: list(d["flow_logs"]))


@kind("missing_flow_logs", STAGE_VALIDATE, "document without the flow_logs field")
def missing_flow_logs(world, rng, *, start=g.DEFAULT_START):
    def mutate(d, r):
        del d["flow_logs"]
    return _body_variant(world, rng, start, "missing_flow_logs", mutate)


@kind("flow_logs_not_list", STAGE_VALIDATE, "flow_logs is an object, not an array")
def flow_logs_not_list(world, rng, *, start=g.DEFAULT_START):
    def mutate(d, r):
        d["flow_logs"] = {"0": d["flow_logs"][0]}
    return _body_variant(world, rng, start, "flow_logs_not_list", mutate)


@kind("flow_not_object", STAGE_VALIDATE, "one element of flow_logs is a string, not an object")
def flow_not_object(world, rng, *, start=g.DEFAULT_START):
    def mutate(d, r):
        d["flow_logs"].insert(r.randrange(len(d["flow_logs"]) + 1), "10.240.0.4 -> 161.26.0.10:53")
    return _body_variant(world, rng, start, "flow_not_object", mutate)


@kind("string_port", STAGE_VALIDATE, "target_port is the string \"443\"")
def string_port(world, rng, *, start=g.DEFAULT_START):
    return _flow_variant(world, rng, start, "string_port", "target_port", "443")


@kind("negative_bytes", STAGE_VALIDATE, "bytes_from_initiator is negative")
def negative_bytes(world, rng, *, start=g.DEFAULT_START):
    return _flow_variant(world, rng, start, "negative_bytes", "bytes_from_initiator", -1234)


@kind("port_out_of_range", STAGE_VALIDATE, "initiator_port is 70000 (> 65535)")
def port_out_of_range(world, rng, *, start=g.DEFAULT_START):
    return _flow_variant(world, rng, start, "port_out_of_range", "initiator_port", 70000)


@kind("float_packets", STAGE_VALIDATE, "packets_from_initiator is the number 12.5")
def float_packets(world, rng, *, start=g.DEFAULT_START):
    return _flow_variant(world, rng, start, "float_packets", "packets_from_initiator", 12.5)


@kind("bool_bytes", STAGE_VALIDATE, "bytes_from_target is true (a boolean where an integer belongs)")
def bool_bytes(world, rng, *, start=g.DEFAULT_START):
    return _flow_variant(world, rng, start, "bool_bytes", "bytes_from_target", True)


@kind("bad_ip", STAGE_VALIDATE, "initiator_ip is 10.240.0.300 (not an IPv4 address)")
def bad_ip(world, rng, *, start=g.DEFAULT_START):
    return _flow_variant(world, rng, start, "bad_ip", "initiator_ip", "10.240.0.300")


@kind("ipv6_ip", STAGE_VALIDATE, "target_ip is an IPv6 address (only IPv4 is logged)")
def ipv6_ip(world, rng, *, start=g.DEFAULT_START):
    def mutate(d, r):
        fl = d["flow_logs"][0]
        fl["target_ip"] = "2001:db8::1"
        fl["ether_type"] = "IPv6"
    return _body_variant(world, rng, start, "ipv6_ip", mutate)


@kind("null_ip", STAGE_VALIDATE, "target_ip is null")
def null_ip(world, rng, *, start=g.DEFAULT_START):
    return _flow_variant(world, rng, start, "null_ip", "target_ip", None)


@kind("invalid_timestamp", STAGE_VALIDATE, "start_time is 2024-13-45T99:00:00Z")
def invalid_timestamp(world, rng, *, start=g.DEFAULT_START):
    return _flow_variant(world, rng, start, "invalid_timestamp", "start_time", "2024-13-45T99:00:00Z")


@kind("unknown_direction", STAGE_VALIDATE, "direction is \"X\" (expected I or O)")
def unknown_direction(world, rng, *, start=g.DEFAULT_START):
    return _flow_variant(world, rng, start, "unknown_direction", "direction", "X")


@kind("unknown_action", STAGE_VALIDATE, "action is \"dropped\" (expected accepted or rejected)")
def unknown_action(world, rng, *, start=g.DEFAULT_START):
    return _flow_variant(world, rng, start, "unknown_action", "action", "dropped")


@kind("missing_flow_field", STAGE_VALIDATE, "a flow lacks the required target_port field")
def missing_flow_field(world, rng, *, start=g.DEFAULT_START):
    return _flow_variant(world, rng, start, "missing_flow_field", "target_port", None, delete=True)


@kind("wrong_version", STAGE_VALIDATE, "version is the number 2 instead of a version string")
def wrong_version(world, rng, *, start=g.DEFAULT_START):
    def mutate(d, r):
        d["version"] = 2
    return _body_variant(world, rng, start, "wrong_version", mutate)


@kind("bad_capture_time", STAGE_VALIDATE, "capture_start_time is \"yesterday\"")
def bad_capture_time(world, rng, *, start=g.DEFAULT_START):
    def mutate(d, r):
        d["capture_start_time"] = "yesterday"
    return _body_variant(world, rng, start, "bad_capture_time", mutate)


@kind("negative_flow_count", STAGE_VALIDATE, "number_of_flow_logs is -1")
def negative_flow_count(world, rng, *, start=g.DEFAULT_START):
    def mutate(d, r):
        d["number_of_flow_logs"] = -1
    return _body_variant(world, rng, start, "negative_flow_count", mutate)


# -------------------------------------------------------------------------------------------------- key stage

def _key_variant(world, rng, start, name: str, key_fn: Callable[[g.Sample], str],
                 body_fn: Callable[[g.Sample], bytes] | None = None) -> BadInput:
    s = _base(world, rng, start)
    body = body_fn(s) if body_fn is not None else g.gzip_bytes(_doc_bytes(s.doc))
    k = CATALOGUE[name]
    return BadInput(key_fn(s), body, g.header_metadata(s.doc), k.expected_stage, k.description)


@kind("v0_key", STAGE_KEY, "pre-2021 ibm_vpc_flowlogs_v0/ key layout without name= segments")
def v0_key(world, rng, *, start=g.DEFAULT_START):
    def key(s: g.Sample) -> str:
        c = s.ctx
        stamp = g.stream_id_for(s.capture_start)
        return (f"ibm_vpc_flowlogs_v0/{c.account}/{c.region}/{c.vpc.id}/{c.subnet.id}/{c.instance.id}/{c.nic.id}/"
                f"{stamp[:8]}/{stamp[9:11]}/{g.stream_id_for(s.stream_start)}/{s.seq:08d}.gz")
    return _key_variant(world, rng, start, "v0_key", key)


@kind("foreign_readme", STAGE_KEY, "README.txt at the bucket root (not a flow log)")
def foreign_readme(world, rng, *, start=g.DEFAULT_START):
    return _key_variant(world, rng, start, "foreign_readme", lambda s: f"README-{s.seq}.txt",
                        lambda s: b"This bucket receives IBM VPC flow logs.\n")


@kind("foreign_prefix", STAGE_KEY, "other/thing.json.gz: gzip JSON under a foreign prefix")
def foreign_prefix(world, rng, *, start=g.DEFAULT_START):
    return _key_variant(world, rng, start, "foreign_prefix", lambda s: f"other/thing-{s.seq}.json.gz",
                        lambda s: g.gzip_bytes(b'{"hello":"world"}'))


@kind("folder_marker", STAGE_KEY, "0-byte 'folder' marker key ending in '/' (console-created)")
def folder_marker(world, rng, *, start=g.DEFAULT_START):
    def key(s: g.Sample) -> str:
        return s.key().rsplit("/", 1)[0] + "/"
    return _key_variant(world, rng, start, "folder_marker", key, lambda s: b"")


@kind("v1_key_missing_segment", STAGE_KEY, "v1 key without its vnic-id= segment")
def v1_key_missing_segment(world, rng, *, start=g.DEFAULT_START):
    def key(s: g.Sample) -> str:
        return "/".join(p for p in s.key().split("/") if not p.startswith("vnic-id="))
    return _key_variant(world, rng, start, "v1_key_missing_segment", key)


@kind("bad_record_type", STAGE_KEY, "v1 key with record-type=both (expected ingress, egress or all)")
def bad_record_type(world, rng, *, start=g.DEFAULT_START):
    def key(s: g.Sample) -> str:
        return s.key().replace(f"/record-type={s.record_type}/", "/record-type=both/")
    return _key_variant(world, rng, start, "bad_record_type", key)


# ------------------------------------------------------------------------------------------ tricky but valid

@kind("predecompressed_body", STAGE_OK, "plain JSON body under a .gz key with Content-Encoding: gzip "
      "(a client already decompressed it); gzip is detected by magic bytes", good=True)
def predecompressed_body(world, rng, *, start=g.DEFAULT_START):
    return _good_variant(world, rng, start, "predecompressed_body", body_fn=lambda raw: raw,
                         content_encoding="gzip")


@kind("content_encoding_gzip", STAGE_OK, "normal gzip body stored with Content-Encoding: gzip", good=True)
def content_encoding_gzip(world, rng, *, start=g.DEFAULT_START):
    return _good_variant(world, rng, start, "content_encoding_gzip", content_encoding="gzip")


@kind("multi_member_gzip", STAGE_OK, "document split across two concatenated gzip members (valid gzip)",
      good=True)
def multi_member_gzip(world, rng, *, start=g.DEFAULT_START):
    def body(raw: bytes) -> bytes:
        cut = len(raw) // 2
        return g.gzip_bytes(raw[:cut]) + g.gzip_bytes(raw[cut:])
    return _good_variant(world, rng, start, "multi_member_gzip", body_fn=body)


@kind("uppercase_state", STAGE_OK, "state is \"OK\" (as IBM's docs write it)", good=True)
def uppercase_state(world, rng, *, start=g.DEFAULT_START):
    return _good_variant(world, rng, start, "uppercase_state", mutate=lambda d, r: d.__setitem__("state", "OK"))


@kind("skip_data_state", STAGE_OK, "state is \"skip data\" (flows were lost in this interval)", good=True)
def skip_data_state(world, rng, *, start=g.DEFAULT_START):
    return _good_variant(world, rng, start, "skip_data_state",
                         mutate=lambda d, r: d.__setitem__("state", "skip data"))


@kind("flow_count_mismatch", STAGE_OK, "number_of_flow_logs disagrees with the array (do not trust it)",
      good=True)
def flow_count_mismatch(world, rng, *, start=g.DEFAULT_START):
    return _good_variant(world, rng, start, "flow_count_mismatch",
                         mutate=lambda d, r: d.__setitem__("number_of_flow_logs", len(d["flow_logs"]) + 7))


@kind("raw_colon_key", STAGE_OK, "key with CRNs not percent-encoded (raw ':' and '/')", good=True)
def raw_colon_key(world, rng, *, start=g.DEFAULT_START):
    return _good_variant(world, rng, start, "raw_colon_key", encode_key=False)


@kind("empty_times", STAGE_OK, "every record has \"\" start_time/end_time (fall back to capture times)",
      good=True)
def empty_times(world, rng, *, start=g.DEFAULT_START):
    def mutate(d, r):
        for fl in d["flow_logs"]:
            fl["start_time"] = fl["end_time"] = ""
    return _good_variant(world, rng, start, "empty_times", mutate=mutate)


@kind("extra_fields", STAGE_OK, "unknown extra fields in the header and in records (forward compatible)",
      good=True)
def extra_fields(world, rng, *, start=g.DEFAULT_START):
    def mutate(d, r):
        d["collector_version"] = "2.1"
        for fl in d["flow_logs"]:
            fl["tcp_flags"] = 18
    return _good_variant(world, rng, start, "extra_fields", mutate=mutate)


@kind("huge_object", STAGE_OK, "far larger than normal (~50 MB of valid JSON): must be streamed",
      good=True, default=False)
def huge_object(world, rng, *, start=g.DEFAULT_START, size_mb: float = 50, keep_flows: bool = False):
    """Valid object of about size_mb MB of JSON, compressed incrementally (flows kept only on request)."""
    import zlib
    s = _base(world, rng, start, 1)
    wc = g.world_context(world)
    ce = s.capture_start + g.INTERVAL_S
    comp = zlib.compressobj(g.GZIP_LEVEL, zlib.DEFLATED, 31)
    head = dict(s.doc)
    head["flow_logs"] = []
    target = int(size_mb * 1024 * 1024)
    # number_of_flow_logs is unknown until the end: estimate (~560 bytes/flow) - the reader must not trust it
    head["number_of_flow_logs"] = max(1, target // 560)
    raw_head = orjson.dumps(head)
    parts = [comp.compress(raw_head[:-3] + b"[")]
    size, n, chf, kept = len(raw_head), 0, 0, []
    while size < target:
        batch = g.make_flows(rng, wc, s.ctx, s.record_type, s.capture_start, ce, 500)
        chunk = b",".join(orjson.dumps(f) for f in batch)
        if n:
            chunk = b"," + chunk
        parts.append(comp.compress(chunk))
        size += len(chunk)
        n += len(batch)
        chf += g.chf_count(batch)
        if keep_flows:
            kept.extend(batch)
    parts.append(comp.compress(b"]}"))
    parts.append(comp.flush())
    meta = g.header_metadata(head)
    return BadInput(s.key(), b"".join(parts), meta, STAGE_OK,
                    CATALOGUE["huge_object"].description + f" ({n} flows)", kept, None, n, chf)


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


def make_object(name: str, world: Any, rng: random.Random, *, start: datetime = g.DEFAULT_START,
                keep_flows: bool = True, **opts: Any) -> g.GeneratedObject:
    """A catalogue entry as a GeneratedObject (kind = its name for bad ones, 'good' for tricky-good ones)."""
    bi = make(name, world, rng, start=start, **opts)
    good = CATALOGUE[name].good
    flows = list(bi.flows)
    n = bi.flow_count if bi.flow_count is not None else len(flows)
    chf = bi.chf if bi.chf is not None else g.chf_count(flows)
    return g.GeneratedObject(
        key=bi.key, body=bi.body, metadata=bi.metadata,
        flows=(flows if keep_flows else None) if good else [],
        kind="good" if good else name, variant=name, expected_stage=bi.expected_stage,
        reason=bi.description, content_encoding=bi.content_encoding,
        flow_count=n if good else 0, chf_count=chf if good else 0)


def all_entries(world: Any, seed: int = 1, *, start: datetime = g.DEFAULT_START,
                include_good: bool = True) -> list[tuple[Kind, BadInput]]:
    """Every default entry once (bad, then tricky-good), deterministic for the seed."""
    names = list(BAD_KINDS) + (list(TRICKY_GOOD_KINDS) if include_good else [])
    return [(CATALOGUE[n], make(n, world, random.Random(f"blueflow-catalogue:{seed}:{n}"), start=start))
            for n in names]
