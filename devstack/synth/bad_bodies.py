"""Bad objects whose body is wrong, by the stage that must dead-letter them: not gzip or broken gzip
(decompress), not JSON or not UTF-8 (json), JSON of the wrong shape or with impossible values (validate)."""
from __future__ import annotations

import orjson

from devstack.synth import layout
from devstack.synth.badkinds import (STAGE_DECOMPRESS, STAGE_JSON, STAGE_VALIDATE, body_variant, doc_bytes,
                                     flow_variant, kind, raw_body)

# ------------------------------------------------------------------------------------------- decompress stage

@kind("not_gzip", STAGE_DECOMPRESS, "body is neither gzip nor JSON (random binary bytes)")
def not_gzip(world, rng, *, start=layout.DEFAULT_START):
    return raw_body(world, rng, start, "not_gzip",
                    lambda s, r: b"PK\x03\x04" + bytes(r.getrandbits(8) for _ in range(600)))


@kind("truncated_gzip", STAGE_DECOMPRESS, "gzip stream cut off part-way (incomplete upload)")
def truncated_gzip(world, rng, *, start=layout.DEFAULT_START):
    def body(s, r):
        full = layout.gzip_bytes(doc_bytes(s.doc))
        return full[: max(12, int(len(full) * r.uniform(0.3, 0.8)))]
    return raw_body(world, rng, start, "truncated_gzip", body)


@kind("zero_byte", STAGE_DECOMPRESS, "0-byte object with a flow-log key")
def zero_byte(world, rng, *, start=layout.DEFAULT_START):
    return raw_body(world, rng, start, "zero_byte", lambda s, r: b"")


@kind("gzip_trailing_garbage", STAGE_DECOMPRESS, "valid gzip member followed by non-zero junk bytes")
def gzip_trailing_garbage(world, rng, *, start=layout.DEFAULT_START):
    return raw_body(world, rng, start, "gzip_trailing_garbage",
                    lambda s, r: layout.gzip_bytes(doc_bytes(s.doc)) + b"GARBAGE\x01\x02\x03-not-gzip")


@kind("corrupt_gzip", STAGE_DECOMPRESS, "gzip header intact but the deflate data is corrupted")
def corrupt_gzip(world, rng, *, start=layout.DEFAULT_START):
    def body(s, r):
        full = bytearray(layout.gzip_bytes(doc_bytes(s.doc)))
        for i in range(12, min(len(full) - 8, 40)):
            full[i] ^= 0xA5
        return bytes(full)
    return raw_body(world, rng, start, "corrupt_gzip", body)


# ------------------------------------------------------------------------------------------------- json stage

@kind("gzip_non_json", STAGE_JSON, "gzip of plain text that is not JSON")
def gzip_non_json(world, rng, *, start=layout.DEFAULT_START):
    return raw_body(world, rng, start, "gzip_non_json",
                    lambda s, r: layout.gzip_bytes(b"this is a log line, not JSON\nsecond line\n"))


@kind("gzip_json_lines", STAGE_JSON, "gzip of JSON lines (one flow per line) instead of one document")
def gzip_json_lines(world, rng, *, start=layout.DEFAULT_START):
    return raw_body(world, rng, start, "gzip_json_lines",
                    lambda s, r: layout.gzip_bytes(b"\n".join(orjson.dumps(f) for f in s.doc["flow_logs"])))


@kind("non_utf8", STAGE_JSON, "JSON document containing bytes that are not valid UTF-8")
def non_utf8(world, rng, *, start=layout.DEFAULT_START):
    def body(s, r):
        raw = doc_bytes(s.doc).replace(b'"state":"ok"', b'"state":"ok\xff\xfe\xc3"', 1)
        return layout.gzip_bytes(raw)
    return raw_body(world, rng, start, "non_utf8", body)


@kind("deeply_nested", STAGE_JSON, "10,000 nested arrays inside flow_logs (parser recursion limit)")
def deeply_nested(world, rng, *, start=layout.DEFAULT_START):
    def body(s, r):
        head = dict(s.doc)
        head["flow_logs"] = []
        raw = doc_bytes(head)
        assert raw.endswith(b"[]}")
        return layout.gzip_bytes(raw[:-3] + b"[" + b"[" * 10_000 + b"]" * 10_000 + b"]}")
    return raw_body(world, rng, start, "deeply_nested", body)


@kind("double_gzip", STAGE_JSON, "gzip of a gzip (decompresses once to gzip bytes, not JSON)")
def double_gzip(world, rng, *, start=layout.DEFAULT_START):
    return raw_body(world, rng, start, "double_gzip", lambda s, r: layout.gzip_bytes(layout.gzip_bytes(doc_bytes(s.doc))))


@kind("truncated_json", STAGE_JSON, "complete gzip of a JSON document cut off mid-way")
def truncated_json(world, rng, *, start=layout.DEFAULT_START):
    def body(s, r):
        raw = doc_bytes(s.doc)
        return layout.gzip_bytes(raw[: int(len(raw) * 0.6)])
    return raw_body(world, rng, start, "truncated_json", body)


# --------------------------------------------------------------------------------------------- validate stage

@kind("json_array", STAGE_VALIDATE, "JSON array at the top level instead of an object")
def json_array(world, rng, *, start=layout.DEFAULT_START):
    return body_variant(world, rng, start, "json_array", lambda d, r: list(d["flow_logs"]))


@kind("missing_flow_logs", STAGE_VALIDATE, "document without the flow_logs field")
def missing_flow_logs(world, rng, *, start=layout.DEFAULT_START):
    def mutate(d, r):
        del d["flow_logs"]
    return body_variant(world, rng, start, "missing_flow_logs", mutate)


@kind("flow_logs_not_list", STAGE_VALIDATE, "flow_logs is an object, not an array")
def flow_logs_not_list(world, rng, *, start=layout.DEFAULT_START):
    def mutate(d, r):
        d["flow_logs"] = {"0": d["flow_logs"][0]}
    return body_variant(world, rng, start, "flow_logs_not_list", mutate)


@kind("flow_not_object", STAGE_VALIDATE, "one element of flow_logs is a string, not an object")
def flow_not_object(world, rng, *, start=layout.DEFAULT_START):
    def mutate(d, r):
        d["flow_logs"].insert(r.randrange(len(d["flow_logs"]) + 1), "10.240.0.4 -> 161.26.0.10:53")
    return body_variant(world, rng, start, "flow_not_object", mutate)


@kind("string_port", STAGE_VALIDATE, "target_port is the string \"443\"")
def string_port(world, rng, *, start=layout.DEFAULT_START):
    return flow_variant(world, rng, start, "string_port", "target_port", "443")


@kind("negative_bytes", STAGE_VALIDATE, "bytes_from_initiator is negative")
def negative_bytes(world, rng, *, start=layout.DEFAULT_START):
    return flow_variant(world, rng, start, "negative_bytes", "bytes_from_initiator", -1234)


@kind("port_out_of_range", STAGE_VALIDATE, "initiator_port is 70000 (> 65535)")
def port_out_of_range(world, rng, *, start=layout.DEFAULT_START):
    return flow_variant(world, rng, start, "port_out_of_range", "initiator_port", 70000)


@kind("float_packets", STAGE_VALIDATE, "packets_from_initiator is the number 12.5")
def float_packets(world, rng, *, start=layout.DEFAULT_START):
    return flow_variant(world, rng, start, "float_packets", "packets_from_initiator", 12.5)


@kind("bool_bytes", STAGE_VALIDATE, "bytes_from_target is true (a boolean where an integer belongs)")
def bool_bytes(world, rng, *, start=layout.DEFAULT_START):
    return flow_variant(world, rng, start, "bool_bytes", "bytes_from_target", True)


@kind("bad_ip", STAGE_VALIDATE, "initiator_ip is 10.240.0.300 (not an IPv4 address)")
def bad_ip(world, rng, *, start=layout.DEFAULT_START):
    return flow_variant(world, rng, start, "bad_ip", "initiator_ip", "10.240.0.300")


@kind("ipv6_ip", STAGE_VALIDATE, "target_ip is an IPv6 address (only IPv4 is logged)")
def ipv6_ip(world, rng, *, start=layout.DEFAULT_START):
    def mutate(d, r):
        fl = d["flow_logs"][0]
        fl["target_ip"] = "2001:db8::1"
        fl["ether_type"] = "IPv6"
    return body_variant(world, rng, start, "ipv6_ip", mutate)


@kind("null_ip", STAGE_VALIDATE, "target_ip is null")
def null_ip(world, rng, *, start=layout.DEFAULT_START):
    return flow_variant(world, rng, start, "null_ip", "target_ip", None)


@kind("invalid_timestamp", STAGE_VALIDATE, "start_time is 2024-13-45T99:00:00Z")
def invalid_timestamp(world, rng, *, start=layout.DEFAULT_START):
    return flow_variant(world, rng, start, "invalid_timestamp", "start_time", "2024-13-45T99:00:00Z")


@kind("unknown_direction", STAGE_VALIDATE, "direction is \"X\" (expected I or O)")
def unknown_direction(world, rng, *, start=layout.DEFAULT_START):
    return flow_variant(world, rng, start, "unknown_direction", "direction", "X")


@kind("unknown_action", STAGE_VALIDATE, "action is \"dropped\" (expected accepted or rejected)")
def unknown_action(world, rng, *, start=layout.DEFAULT_START):
    return flow_variant(world, rng, start, "unknown_action", "action", "dropped")


@kind("missing_flow_field", STAGE_VALIDATE, "a flow lacks the required target_port field")
def missing_flow_field(world, rng, *, start=layout.DEFAULT_START):
    return flow_variant(world, rng, start, "missing_flow_field", "target_port", None, delete=True)


@kind("wrong_version", STAGE_VALIDATE, "version is the number 2 instead of a version string")
def wrong_version(world, rng, *, start=layout.DEFAULT_START):
    def mutate(d, r):
        d["version"] = 2
    return body_variant(world, rng, start, "wrong_version", mutate)


@kind("bad_capture_time", STAGE_VALIDATE, "capture_start_time is \"yesterday\"")
def bad_capture_time(world, rng, *, start=layout.DEFAULT_START):
    def mutate(d, r):
        d["capture_start_time"] = "yesterday"
    return body_variant(world, rng, start, "bad_capture_time", mutate)


@kind("negative_flow_count", STAGE_VALIDATE, "number_of_flow_logs is -1")
def negative_flow_count(world, rng, *, start=layout.DEFAULT_START):
    def mutate(d, r):
        d["number_of_flow_logs"] = -1
    return body_variant(world, rng, start, "negative_flow_count", mutate)
