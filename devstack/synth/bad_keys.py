"""Objects whose key is wrong (the key stage must skip or dead-letter them), and odd but valid objects that
must be delivered: already-decompressed bodies, multi-member gzip, raw colons in the key, empty times, extra
fields, a huge (~50 MB) object that must be streamed."""
from __future__ import annotations

from typing import Callable

import orjson

from devstack.synth import layout, traffic, vnics
from devstack.synth.badkinds import CATALOGUE, STAGE_KEY, STAGE_OK, BadInput, base, doc_bytes, good_variant, kind

# -------------------------------------------------------------------------------------------------- key stage

def key_variant(world, rng, start, name: str, key_fn: Callable[[traffic.Sample], str],
                body_fn: Callable[[traffic.Sample], bytes] | None = None) -> BadInput:
    s = base(world, rng, start)
    body = body_fn(s) if body_fn is not None else layout.gzip_bytes(doc_bytes(s.doc))
    k = CATALOGUE[name]
    return BadInput(key_fn(s), body, layout.header_metadata(s.doc), k.expected_stage, k.description)


@kind("v0_key", STAGE_KEY, "pre-2021 ibm_vpc_flowlogs_v0/ key layout without name= segments")
def v0_key(world, rng, *, start=layout.DEFAULT_START):
    def key(s: traffic.Sample) -> str:
        c = s.ctx
        stamp = layout.stream_id_for(s.capture_start)
        return (f"ibm_vpc_flowlogs_v0/{c.account}/{c.region}/{c.vpc.id}/{c.subnet.id}/{c.instance.id}/{c.nic.id}/"
                f"{stamp[:8]}/{stamp[9:11]}/{layout.stream_id_for(s.stream_start)}/{s.seq:08d}.gz")
    return key_variant(world, rng, start, "v0_key", key)


@kind("foreign_readme", STAGE_KEY, "README.txt at the bucket root (not a flow log)")
def foreign_readme(world, rng, *, start=layout.DEFAULT_START):
    return key_variant(world, rng, start, "foreign_readme", lambda s: f"README-{s.seq}.txt",
                       lambda s: b"This bucket receives IBM VPC flow logs.\n")


@kind("foreign_prefix", STAGE_KEY, "other/thing.json.gz: gzip JSON under a foreign prefix")
def foreign_prefix(world, rng, *, start=layout.DEFAULT_START):
    return key_variant(world, rng, start, "foreign_prefix", lambda s: f"other/thing-{s.seq}.json.gz",
                       lambda s: layout.gzip_bytes(b'{"hello":"world"}'))


@kind("folder_marker", STAGE_KEY, "0-byte 'folder' marker key ending in '/' (console-created)")
def folder_marker(world, rng, *, start=layout.DEFAULT_START):
    def key(s: traffic.Sample) -> str:
        return s.key().rsplit("/", 1)[0] + "/"
    return key_variant(world, rng, start, "folder_marker", key, lambda s: b"")


@kind("v1_key_missing_segment", STAGE_KEY, "v1 key without its vnic-id= segment")
def v1_key_missing_segment(world, rng, *, start=layout.DEFAULT_START):
    def key(s: traffic.Sample) -> str:
        return "/".join(p for p in s.key().split("/") if not p.startswith("vnic-id="))
    return key_variant(world, rng, start, "v1_key_missing_segment", key)


@kind("bad_record_type", STAGE_KEY, "v1 key with record-type=both (expected ingress, egress or all)")
def bad_record_type(world, rng, *, start=layout.DEFAULT_START):
    def key(s: traffic.Sample) -> str:
        return s.key().replace(f"/record-type={s.record_type}/", "/record-type=both/")
    return key_variant(world, rng, start, "bad_record_type", key)


# ------------------------------------------------------------------------------------------ tricky but valid

@kind("predecompressed_body", STAGE_OK, "plain JSON body under a .gz key with Content-Encoding: gzip "
      "(a client already decompressed it); gzip is detected by magic bytes", good=True)
def predecompressed_body(world, rng, *, start=layout.DEFAULT_START):
    return good_variant(world, rng, start, "predecompressed_body", body_fn=lambda raw: raw,
                        content_encoding="gzip")


@kind("content_encoding_gzip", STAGE_OK, "normal gzip body stored with Content-Encoding: gzip", good=True)
def content_encoding_gzip(world, rng, *, start=layout.DEFAULT_START):
    return good_variant(world, rng, start, "content_encoding_gzip", content_encoding="gzip")


@kind("multi_member_gzip", STAGE_OK, "document split across two concatenated gzip members (valid gzip)",
      good=True)
def multi_member_gzip(world, rng, *, start=layout.DEFAULT_START):
    def body(raw: bytes) -> bytes:
        cut = len(raw) // 2
        return layout.gzip_bytes(raw[:cut]) + layout.gzip_bytes(raw[cut:])
    return good_variant(world, rng, start, "multi_member_gzip", body_fn=body)


@kind("uppercase_state", STAGE_OK, "state is \"OK\" (as IBM's docs write it)", good=True)
def uppercase_state(world, rng, *, start=layout.DEFAULT_START):
    return good_variant(world, rng, start, "uppercase_state", mutate=lambda d, r: d.__setitem__("state", "OK"))


@kind("skip_data_state", STAGE_OK, "state is \"skip data\" (flows were lost in this interval)", good=True)
def skip_data_state(world, rng, *, start=layout.DEFAULT_START):
    return good_variant(world, rng, start, "skip_data_state",
                        mutate=lambda d, r: d.__setitem__("state", "skip data"))


@kind("flow_count_mismatch", STAGE_OK, "number_of_flow_logs disagrees with the array (do not trust it)",
      good=True)
def flow_count_mismatch(world, rng, *, start=layout.DEFAULT_START):
    return good_variant(world, rng, start, "flow_count_mismatch",
                        mutate=lambda d, r: d.__setitem__("number_of_flow_logs", len(d["flow_logs"]) + 7))


@kind("raw_colon_key", STAGE_OK, "key with CRNs not percent-encoded (raw ':' and '/')", good=True)
def raw_colon_key(world, rng, *, start=layout.DEFAULT_START):
    return good_variant(world, rng, start, "raw_colon_key", encode_key=False)


@kind("empty_times", STAGE_OK, "every record has \"\" start_time/end_time (fall back to capture times)",
      good=True)
def empty_times(world, rng, *, start=layout.DEFAULT_START):
    def mutate(d, r):
        for fl in d["flow_logs"]:
            fl["start_time"] = fl["end_time"] = ""
    return good_variant(world, rng, start, "empty_times", mutate=mutate)


@kind("extra_fields", STAGE_OK, "unknown extra fields in the header and in records (forward compatible)",
      good=True)
def extra_fields(world, rng, *, start=layout.DEFAULT_START):
    def mutate(d, r):
        d["collector_version"] = "2.1"
        for fl in d["flow_logs"]:
            fl["tcp_flags"] = 18
    return good_variant(world, rng, start, "extra_fields", mutate=mutate)


@kind("huge_object", STAGE_OK, "far larger than normal (~50 MB of valid JSON): must be streamed",
      good=True, default=False)
def huge_object(world, rng, *, start=layout.DEFAULT_START, size_mb: float = 50, keep_flows: bool = False):
    """Valid object of about size_mb MB of JSON, compressed incrementally (flows kept only on request)."""
    import zlib
    s = base(world, rng, start, 1)
    wc = vnics.world_context(world)
    ce = s.capture_start + layout.INTERVAL_S
    comp = zlib.compressobj(layout.GZIP_LEVEL, zlib.DEFLATED, 31)
    head = dict(s.doc)
    head["flow_logs"] = []
    target = int(size_mb * 1024 * 1024)
    # number_of_flow_logs is unknown until the end: estimate (~560 bytes/flow) - the reader must not trust it
    head["number_of_flow_logs"] = max(1, target // 560)
    raw_head = orjson.dumps(head)
    parts = [comp.compress(raw_head[:-3] + b"[")]
    size, n, chf, kept = len(raw_head), 0, 0, []
    while size < target:
        batch = traffic.make_flows(rng, wc, s.ctx, s.record_type, s.capture_start, ce, 500)
        chunk = b",".join(orjson.dumps(f) for f in batch)
        if n:
            chunk = b"," + chunk
        parts.append(comp.compress(chunk))
        size += len(chunk)
        n += len(batch)
        chf += layout.chf_count(batch)
        if keep_flows:
            kept.extend(batch)
    parts.append(comp.compress(b"]}"))
    parts.append(comp.flush())
    meta = layout.header_metadata(head)
    return BadInput(s.key(), b"".join(parts), meta, STAGE_OK,
                    CATALOGUE["huge_object"].description + f" ({n} flows)", kept, None, n, chf)
