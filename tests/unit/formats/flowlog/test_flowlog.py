"""Unit tests for streams.formats.flowlog.flowlog: object keys, decompression, JSON parsing and validation."""
from __future__ import annotations

import copy
import gzip
import zlib

import orjson
import pytest

from streams.formats.flowlog.flowlog import (
    DEFAULT_MAX_OBJECT_BYTES, DEFAULT_MAX_VALUE_BYTES, FLOW_FIELDS, FlowLogError, FlowStream, parse_object_key,
)
from tests.unit.formats.flowlog.flowdoc import chunk_count, iter_chunks, parse_object_bytes

REAL_KEY = (
    "ibm_vpc_flowlogs_v1/account=713c783d9a507a53135fe6793c37cc74/region=us-south/vpc-id=crn%3Av1%3Abluemix"
    "%3Apublic%3Ais%3Aus-south%3Aa%2F713c783d9a507a53135fe6793c37cc74%3A%3Avpc%3Ar006-f6045065-8a82-44fc-ae1e-"
    "4817f499c9c6/subnet-id=crn%3Av1%3Abluemix%3Apublic%3Ais%3Aus-south-2%3Aa%2F713c783d9a507a53135fe6793c37cc7"
    "4%3A%3Asubnet%3A0727-b3eda4c5-63a5-430e-a2e0-26f22e0d1fdb/endpoint-type=vnics/instance-id=crn%3Av1%3Ablue"
    "mix%3Apublic%3Ais%3Aus-south-2%3Aa%2F713c783d9a507a53135fe6793c37cc74%3A%3Ainstance%3A0727_8a0f4f09-7b4a-"
    "4399-b7af-e96225f6ad4a/vnic-id=0727-c9ce1904-48ef-4c94-b41f-51c48ccfbee4/record-type=egress/year=2021/mont"
    "h=11/day=23/hour=20/stream-id=20211119T222459Z/00000006.gz"
)
ACCT = "713c783d9a507a53135fe6793c37cc74"
VPC_CRN = f"crn:v1:bluemix:public:is:us-south:a/{ACCT}::vpc:r006-f6045065-8a82-44fc-ae1e-4817f499c9c6"
SUBNET_CRN = f"crn:v1:bluemix:public:is:us-south-2:a/{ACCT}::subnet:0727-b3eda4c5-63a5-430e-a2e0-26f22e0d1fdb"
INSTANCE_CRN = f"crn:v1:bluemix:public:is:us-south-2:a/{ACCT}::instance:0727_8a0f4f09-7b4a-4399-b7af-e96225f6ad4a"

EXAMPLE = {
    "version": "0.0.1",
    "collector_crn": "crn:v1:bluemix:public:is:us-south:a/0123456789abcdef0123456789abcdef::flow-log-collector:"
                     "r006-1b2c3d4e-0000-4000-8000-000000000001",
    "attached_endpoint_type": "vnic",
    "network_interface_id": "0727-5e6f7a8b-0000-4000-8000-000000000002",
    "instance_crn": "crn:v1:bluemix:public:is:us-south-2:a/0123456789abcdef0123456789abcdef::instance:"
                    "0727_9c8d7e6f-0000-4000-8000-000000000003",
    "vpc_crn": "crn:v1:bluemix:public:is:us-south:a/0123456789abcdef0123456789abcdef::vpc:"
               "r006-4a5b6c7d-0000-4000-8000-000000000004",
    "capture_start_time": "2024-05-14T09:10:02Z", "capture_end_time": "2024-05-14T09:15:02Z",
    "state": "ok", "number_of_flow_logs": 2,
    "flow_logs": [
        {"start_time": "2024-05-14T09:10:05Z", "end_time": "2024-05-14T09:14:58Z",
         "connection_start_time": "2024-05-14T08:51:40Z", "direction": "I", "action": "accepted",
         "initiator_ip": "203.0.113.45", "target_ip": "10.240.64.4", "initiator_port": 51812, "target_port": 443,
         "transport_protocol": 6, "ether_type": "IPv4", "was_initiated": False, "was_terminated": False,
         "bytes_from_initiator": 18234, "packets_from_initiator": 61, "bytes_from_target": 402117,
         "packets_from_target": 298, "cumulative_bytes_from_initiator": 90211,
         "cumulative_packets_from_initiator": 312, "cumulative_bytes_from_target": 2210934,
         "cumulative_packets_from_target": 1604},
        {"start_time": "2024-05-14T09:11:20Z", "end_time": "2024-05-14T09:11:21Z",
         "connection_start_time": "2024-05-14T09:11:20Z", "direction": "O", "action": "accepted",
         "initiator_ip": "10.240.64.4", "target_ip": "161.26.0.10", "initiator_port": 36919, "target_port": 53,
         "transport_protocol": 17, "ether_type": "IPv4", "was_initiated": True, "was_terminated": True,
         "bytes_from_initiator": 144, "packets_from_initiator": 2, "bytes_from_target": 228,
         "packets_from_target": 2, "cumulative_bytes_from_initiator": 144, "cumulative_packets_from_initiator": 2,
         "cumulative_bytes_from_target": 228, "cumulative_packets_from_target": 2},
    ],
}


def doc(**changes):
    d = copy.deepcopy(EXAMPLE)
    d.update(changes)
    return d


def gz(obj) -> bytes:
    raw = obj if isinstance(obj, (bytes, bytearray)) else orjson.dumps(obj)
    return gzip.compress(raw)


def with_flow(i=1, **fields):
    d = doc()
    for k, v in fields.items():
        if v is KeyError:
            del d["flow_logs"][i][k]
        else:
            d["flow_logs"][i][k] = v
    return d


def fail(body, *chunks_kw, **kw) -> FlowLogError:
    with pytest.raises(FlowLogError) as ei:
        parse_object_bytes([body] if isinstance(body, bytes) else body, **kw)
    return ei.value


# ------------------------------------------------------------------------------------------ keys
def test_real_key_parses_every_field():
    k = parse_object_key(REAL_KEY)
    assert k.account == ACCT
    assert k.region == "us-south"
    assert k.vpc_crn == VPC_CRN
    assert k.subnet_crn == SUBNET_CRN
    assert k.instance_crn == INSTANCE_CRN
    assert k.endpoint_type == "vnics"
    assert k.vnic_id == "0727-c9ce1904-48ef-4c94-b41f-51c48ccfbee4"
    assert k.record_type == "egress"
    assert (k.year, k.month, k.day, k.hour) == (2021, 11, 23, 20)
    assert k.stream_id == "20211119T222459Z"
    assert k.sequence == 6
    assert k.vpc_id == "r006-f6045065-8a82-44fc-ae1e-4817f499c9c6"
    assert k.subnet_id == "0727-b3eda4c5-63a5-430e-a2e0-26f22e0d1fdb"
    assert k.instance_id == "0727_8a0f4f09-7b4a-4399-b7af-e96225f6ad4a"
    assert k.subnet_zone == "us-south-2"
    assert k.key == REAL_KEY


def test_raw_colon_key_variant():
    raw = REAL_KEY.replace("%3A", ":")
    assert parse_object_key(raw)[:18] == parse_object_key(REAL_KEY)[:18]


def test_raw_slash_inside_crn_is_glued_back():
    raw = REAL_KEY.replace("%3A", ":").replace("%2F", "/")
    k = parse_object_key(raw)
    assert k.vpc_crn == VPC_CRN and k.subnet_crn == SUBNET_CRN and k.instance_crn == INSTANCE_CRN
    assert k.subnet_zone == "us-south-2"


@pytest.mark.parametrize("key,words", [
    ("ibm_vpc_flowlogs_v0/2021/11/23/something.gz", "unsupported flow-log key layout"),
    ("other/app.log", "not a flow-log object"),
    ("", "empty"),
    (REAL_KEY.replace("/record-type=egress", ""), "record-type="),
    (REAL_KEY.replace("record-type=egress", "record-type=sideways"), "record-type 'sideways'"),
    (REAL_KEY.replace("00000006.gz", "00000006.json"), "sequence number"),
    (REAL_KEY.replace("month=11", "month=13"), "month='13'"),
    (REAL_KEY.replace("vnic-id=0727-c9ce1904-48ef-4c94-b41f-51c48ccfbee4", "vnic-id="), "empty 'vnic-id='"),
])
def test_bad_keys_are_rejected_with_reason(key, words):
    with pytest.raises(FlowLogError) as ei:
        parse_object_key(key)
    assert ei.value.stage == "key"
    assert words in ei.value.reason


# -------------------------------------------------------------------------------------- documents
def test_spec_example_document():
    d = parse_object_bytes([gz(EXAMPLE)])
    assert d.flow_count == 2
    assert d.version == "0.0.1" and d.state == "ok" and d.number_of_flow_logs == 2
    assert d.capture_start_time == "2024-05-14T09:10:02Z"
    assert d.network_interface_id == "0727-5e6f7a8b-0000-4000-8000-000000000002"
    assert set(d.columns) == set(FLOW_FIELDS)
    c = d.columns
    assert c["direction"] == ["I", "O"]
    assert c["initiator_ip"] == ["203.0.113.45", "10.240.64.4"]
    assert c["target_port"] == [443, 53]
    assert c["transport_protocol"] == [6, 17]
    assert c["was_initiated"] == [False, True]
    assert c["bytes_from_target"] == [402117, 228]
    assert c["cumulative_packets_from_target"] == [1604, 2]
    assert d.header["vpc_crn"] == EXAMPLE["vpc_crn"]
    assert not d.skipped_data


def test_already_decompressed_body_is_accepted():
    d = parse_object_bytes([orjson.dumps(EXAMPLE)])
    assert d.flow_count == 2 and d.columns["target_port"] == [443, 53]


@pytest.mark.parametrize("size", [1, 2, 7, 100])
def test_streaming_in_small_chunks(size):
    body = gz(EXAMPLE)
    chunks = [body[i:i + size] for i in range(0, len(body), size)]
    assert parse_object_bytes(iter(chunks)).columns == parse_object_bytes([body]).columns
    plain = orjson.dumps(EXAMPLE)
    assert parse_object_bytes(plain[i:i + size] for i in range(0, len(plain), size)).flow_count == 2


def test_empty_flow_logs_is_fine():
    d = parse_object_bytes([gz(doc(flow_logs=[], number_of_flow_logs=0))])
    assert d.flow_count == 0 and all(v == [] for v in d.columns.values())
    assert list(iter_chunks(d)) == [d.columns]


def test_empty_times_are_kept():
    d = parse_object_bytes([gz(with_flow(0, start_time="", end_time=""))])
    assert d.columns["start_time"] == ["", "2024-05-14T09:11:20Z"]
    assert d.columns["end_time"] == ["", "2024-05-14T09:11:21Z"]


def test_skip_data_state_is_kept():
    d = parse_object_bytes([gz(doc(state="skip data"))])
    assert d.state == "skip data" and d.skipped_data and d.flow_count == 2


def test_concatenated_gzip_members_and_zero_padding():
    raw = orjson.dumps(EXAMPLE)
    two = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    assert parse_object_bytes([two]).flow_count == 2
    assert parse_object_bytes([two[:-3], two[-3:]]).flow_count == 2
    assert parse_object_bytes([gz(EXAMPLE) + b"\x00" * 10]).flow_count == 2


def test_fractional_and_offset_timestamps_are_valid():
    d = parse_object_bytes([gz(with_flow(0, start_time="2024-05-14T09:10:05.123456789Z",
                                         end_time="2024-05-14T11:14:58+02:00"))])
    assert d.columns["start_time"][0] == "2024-05-14T09:10:05.123456789Z"


def test_iter_chunks_slices():
    flows = [copy.deepcopy(EXAMPLE["flow_logs"][i % 2]) for i in range(4500)]
    for i, f in enumerate(flows):
        f["initiator_port"] = i % 65536
    d = parse_object_bytes([gz(doc(flow_logs=flows))])
    parts = list(iter_chunks(d, max_flows=2000))
    assert [len(p["initiator_port"]) for p in parts] == [2000, 2000, 500]
    assert parts[2]["initiator_port"][0] == 4000
    assert chunk_count(4500, 2000) == 3 and chunk_count(0) == 1 and chunk_count(2000) == 1


# ----------------------------------------------------------------------------------- bad inputs
def test_zero_byte_object():
    e = fail(b"")
    assert e.stage == "decompress" and "empty (0 bytes)" in e.reason
    assert fail([]).stage == "decompress"


def test_not_gzip_and_not_json():
    e = fail(b"PK\x03\x04 this is a zip file")
    assert e.stage == "decompress" and "neither gzip" in e.reason and "50 4b 03 04" in e.reason


def test_truncated_gzip():
    body = gz(EXAMPLE)
    e = fail(body[: len(body) // 2])
    assert e.stage == "decompress" and "truncated gzip" in e.reason
    e = fail(body[:-4])  # only the size trailer is missing
    assert e.stage == "decompress" and "truncated" in e.reason


def test_corrupt_gzip():
    body = bytearray(gz(EXAMPLE))
    body[20:40] = b"\xff" * 20
    e = fail(bytes(body))
    assert e.stage == "decompress" and ("corrupt" in e.reason or "truncated" in e.reason)


def test_trailing_garbage_after_gzip():
    e = fail(gz(EXAMPLE) + b"garbage!")
    assert e.stage == "decompress" and "after the end of the gzip stream" in e.reason


def test_gzip_of_non_json():
    e = fail(gzip.compress(b"hello, I am not JSON"))
    assert e.stage == "json" and "not valid JSON" in e.reason


@pytest.mark.parametrize("body,words", [
    (b"[1, 2, 3]", "document is an array, expected a JSON object"),
    (b'"text"', "document is the string 'text', expected a JSON object"),
    (b'{"version": "0.0.1"}', "no 'flow_logs' field"),
    (b'{"version": "0.0.1", "flow_logs": {}}', "'flow_logs' is an object, expected an array"),
    (b'{"flow_logs": []}', "header field 'version' is missing"),
    (b'{"version": 1, "flow_logs": []}', "header field 'version' is the integer 1, expected a string"),
])
def test_document_shape_errors(body, words):
    e = fail(gzip.compress(body))
    assert e.stage == "validate"
    assert words in e.reason


def test_bad_header_types():
    e = fail(gz(doc(number_of_flow_logs="2")))
    assert e.stage == "validate" and "number_of_flow_logs" in e.reason
    e = fail(gz(doc(capture_start_time="yesterday")))
    assert e.stage == "validate" and "capture_start_time" in e.reason and "RFC 3339" in e.reason


@pytest.mark.parametrize("fields,reason", [
    ({"initiator_port": "443"}, "flow 1: initiator_port is the string '443', expected an integer 0-65535"),
    ({"target_port": 70000}, "flow 1: target_port is the integer 70000, expected an integer 0-65535"),
    ({"target_port": True}, "flow 1: target_port is the boolean true, expected an integer 0-65535"),
    ({"bytes_from_initiator": -5}, "flow 1: bytes_from_initiator is the integer -5, expected an integer >= 0"),
    ({"packets_from_target": 1.5}, "flow 1: packets_from_target is the number 1.5, expected an integer >= 0"),
    ({"transport_protocol": "tcp"}, "flow 1: transport_protocol is the string 'tcp', expected an integer 0-255"),
    ({"initiator_ip": "10.0.0.256"}, "flow 1: initiator_ip is the string '10.0.0.256', expected a dotted IPv4"),
    ({"target_ip": "fe80::1"}, "flow 1: target_ip is the string 'fe80::1', expected a dotted IPv4 address"),
    ({"target_ip": 167772161}, "flow 1: target_ip is the integer 167772161, expected a dotted IPv4 address"),
    ({"direction": "X"}, "flow 1: direction is the string 'X', expected 'I' or 'O'"),
    ({"action": "dropped"}, "flow 1: action is the string 'dropped', expected 'accepted' or 'rejected'"),
    ({"was_initiated": "true"}, "flow 1: was_initiated is the string 'true', expected true or false"),
    ({"start_time": "14/05/2024"}, "flow 1: start_time is the string '14/05/2024', expected an RFC 3339"),
    ({"connection_start_time": ""}, "flow 1: connection_start_time is an empty string, expected an RFC 3339"),
    ({"end_time": None}, "flow 1: end_time is null"),
    ({"action": ["accepted"]}, "flow 1: action is an array, expected 'accepted' or 'rejected'"),
    ({"target_ip": KeyError}, "flow 1: required field 'target_ip' is missing"),
])
def test_bad_flow_fields_name_flow_and_field(fields, reason):
    e = fail(gz(with_flow(1, **fields)))
    assert e.stage == "validate"
    assert e.reason.startswith(reason), e.reason


def test_flow_that_is_not_an_object():
    e = fail(gz(doc(flow_logs=[EXAMPLE["flow_logs"][0], [1, 2]])))
    assert e.stage == "validate" and e.reason == "flow 1 is an array, expected a JSON object"


def test_error_names_the_first_bad_flow_in_a_big_batch():
    flows = [copy.deepcopy(EXAMPLE["flow_logs"][0]) for _ in range(3000)]
    flows[17]["initiator_port"] = "443"
    flows[2500]["target_ip"] = "nope"
    e = fail(gz(doc(flow_logs=flows)))
    assert e.reason == "flow 17: initiator_port is the string '443', expected an integer 0-65535"


def test_empty_start_time_without_capture_start_time():
    d = with_flow(0, start_time="")
    d["capture_start_time"] = ""
    e = fail(gz(d))
    assert e.stage == "validate"
    assert e.reason == "flow 0: start_time is empty and the header has no capture_start_time to fall back to"


def test_decompressed_size_limit():
    bomb = gzip.compress(b" " * 5_000_000 + orjson.dumps(EXAMPLE))
    assert len(bomb) < 20_000
    e = fail(bomb, max_bytes=1_000_000)
    assert e.stage == "decompress" and "exceeds the limit of 1000000 bytes" in e.reason
    assert parse_object_bytes([bomb], max_bytes=6_000_000).flow_count == 2
    e = fail([b"{" + b" " * 2000, b" " * 2000], max_bytes=1000)
    assert e.stage == "decompress" and "limit" in e.reason
    assert DEFAULT_MAX_OBJECT_BYTES == 1 << 30  # 1 GiB decompressed by default (--max_object_bytes)


def test_zlib_wrapped_body_is_not_gzip():
    e = fail(zlib.compress(orjson.dumps(EXAMPLE)))
    assert e.stage == "decompress" and "neither gzip" in e.reason


# ------------------------------------------------------------------------------ streaming decode
def big_body(flows: int, *, extra: bytes = b"", level: int = 1) -> tuple[bytes, int]:
    """gzip of a valid document with `flows` copies of the example's records, compressed incrementally."""
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    head = orjson.dumps({k: v for k, v in EXAMPLE.items() if k != "flow_logs"})[:-1]
    recs = orjson.dumps(EXAMPLE["flow_logs"])[1:-1]
    parts = [comp.compress(head + extra + b',"flow_logs":[')]
    size = len(head) + len(extra) + 14
    for i in range(flows // 2):
        piece = (b"," if i else b"") + recs
        parts.append(comp.compress(piece))
        size += len(piece)
    parts.append(comp.compress(b"]}"))
    parts.append(comp.flush())
    return b"".join(parts), size + 2


def test_limit_reason_names_the_setting_and_zero_means_unlimited():
    body, size = big_body(2000)
    e = fail(body, max_bytes=size - 1)
    assert e.stage == "decompress"
    assert f"exceeds the limit of {size - 1} bytes" in e.reason
    assert "--max_object_bytes" in e.reason and "BLUEFLOW_MAX_OBJECT_BYTES" in e.reason
    assert parse_object_bytes([body], max_bytes=size).flow_count == 2000
    assert parse_object_bytes([body], max_bytes=0).flow_count == 2000


def test_memory_stays_bounded_while_streaming_a_large_object():
    import tracemalloc
    body, size = big_body(60_000)
    assert size > 30_000_000
    parts = [body[i:i + 65536] for i in range(0, len(body), 65536)]
    tracemalloc.start()
    try:
        stream = FlowStream(parts, chunk_flows=2000)
        sizes = [len(c["direction"]) for c in stream]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sizes == [2000] * 30 and stream.flow_count == 60_000 and stream.chunks == 30
    assert stream.decompressed_size == size
    assert peak < 12_000_000, peak  # the decompressed text alone is > 30 MB


@pytest.mark.parametrize("where", ["header", "flow"])
def test_one_huge_value_is_refused_without_being_held(where):
    import tracemalloc
    huge = b'"' + b"x" * (40 << 20) + b'"'
    if where == "header":
        raw = b'{"version":"0.0.1","comment":' + huge + b',"flow_logs":[]}'
    else:
        raw = b'{"version":"0.0.1","flow_logs":[' + orjson.dumps(EXAMPLE["flow_logs"][0]) + b',{"note":' + huge + b"}]}"
    body = gzip.compress(raw, 1)
    del raw, huge
    tracemalloc.start()
    try:
        e = fail(body)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert e.stage == "validate"
    what = "header field 'comment'" if where == "header" else "flow record 1"
    assert e.reason.startswith(f"{what} is a JSON value larger than the limit of {DEFAULT_MAX_VALUE_BYTES} bytes")
    assert peak < 8_000_000, peak


def test_chunks_are_yielded_before_the_end_and_the_header_may_follow_flow_logs():
    flows = [dict(EXAMPLE["flow_logs"][i % 2], start_time="") for i in range(5000)]
    d = {"flow_logs": flows, **{k: v for k, v in EXAMPLE.items() if k != "flow_logs"}}
    body = gz(d)
    stream = FlowStream([body[i:i + 1000] for i in range(0, len(body), 1000)], chunk_flows=2000)
    it = iter(stream)
    first = next(it)
    assert len(first["direction"]) == 2000 and stream.header is None  # provisional until the end
    rest = list(it)
    assert [len(c["direction"]) for c in rest] == [2000, 1000]
    assert stream.header == parse_object_bytes([body]).header and stream.chunks == 3
    d["capture_start_time"] = ""  # now the empty start_times cannot be filled in: error at the end
    stream = FlowStream([gz(d)], chunk_flows=2000)
    it = iter(stream)
    assert len(next(it)["direction"]) == 2000
    with pytest.raises(FlowLogError) as ei:
        list(it)
    assert ei.value.reason == "flow 0: start_time is empty and the header has no capture_start_time to fall back to"


def test_braces_and_escapes_inside_strings_do_not_confuse_the_scanner():
    d = doc()
    for i, fl in enumerate(d["flow_logs"]):
        fl["note"] = ["}", '"}]{', "\\}", "{\"a\":[1]}"][i % 4]
        fl["nested"] = {"x": [1, {"y": "}"}]}
    raw = orjson.dumps(d).replace(b'"10.240.64.4"', b'"\\u0031\\u0030.240.64.4"')
    for size in (1, 13, 4096):
        chunks = [raw[i:i + size] for i in range(0, len(raw), size)]
        assert parse_object_bytes(chunks).columns == parse_object_bytes([gz(EXAMPLE)]).columns


def test_document_level_syntax_errors():
    raw = orjson.dumps(EXAMPLE)
    assert fail(gzip.compress(raw + b"{}")).stage == "json"
    assert "after the end" in fail(gzip.compress(raw + b"x")).reason
    e = fail(gzip.compress(raw[:-1] + b',"flow_logs":[]}'))
    assert e.stage == "validate" and "more than one 'flow_logs'" in e.reason
    assert fail(gzip.compress(b"  \n ")).stage == "json"
    assert fail(b"  \n ").stage == "decompress"
    big = b"[" + b"1," * (1 << 20) + b"1]"
    e = fail(gzip.compress(big))
    assert e.stage == "validate" and "not a JSON object" in e.reason


def test_a_json_error_after_a_bad_flow_wins_like_a_whole_document_parser():
    flows = [copy.deepcopy(EXAMPLE["flow_logs"][0]) for _ in range(3000)]
    flows[3]["target_port"] = "443"
    raw = orjson.dumps(doc(flow_logs=flows))
    e = fail(gzip.compress(raw[:-40]))
    assert e.stage == "json" and "not valid JSON" in e.reason
    assert fail(gzip.compress(raw)).reason.startswith("flow 3: target_port is the string '443'")


def test_a_decompress_error_after_a_json_error_wins():
    raw = b"{nonsense" + orjson.dumps(EXAMPLE)
    body = gzip.compress(raw)
    e = fail(body[:-12])
    assert e.stage == "decompress" and "truncated" in e.reason


def test_a_decompress_error_after_a_too_large_value_wins():
    raw = b'{"version":"0.0.1","comment":"' + b"x" * (3 << 20) + b'","flow_logs":[]}'
    assert fail(gzip.compress(raw)).stage == "validate"
    e = fail(gzip.compress(raw)[:-8])
    assert e.stage == "decompress" and "truncated" in e.reason


def test_member_names_are_json_strings_with_escapes():
    raw = orjson.dumps(EXAMPLE).replace(b'"flow_logs"', b'"flow\\u005flogs"').replace(b'"state"', b'"st\\u0061te"')
    d = parse_object_bytes([gzip.compress(raw)])
    assert d.flow_count == 2 and d.state == "ok"


def test_gunzip_hands_out_bounded_pieces():
    from streams.formats.flowlog.gunzip import PIECE, Inflater
    bomb = gzip.compress(b" " * (20 * PIECE))
    inflater = Inflater([bomb])
    sizes = [len(p) for p in inflater]
    assert max(sizes) <= PIECE and sum(sizes) == 20 * PIECE == inflater.size and inflater.gzip


@pytest.mark.parametrize("first", ['"target_port": "x"', '"direction": "X"'])
def test_a_repeated_field_names_the_field_and_the_record(first):
    """Issue 28: the typed decoder refused the record, the walking check (last value wins) did not, and the
    reason named neither field nor record ("flow record 0 or one of the 0 after it failed validation")."""
    raw = orjson.dumps(EXAMPLE)
    record = orjson.dumps(EXAMPLE["flow_logs"][1])
    repeated = b"{" + first.encode() + b"," + record[1:]
    e = fail(gz(raw.replace(record, repeated)))
    name = first.split(":")[0].strip('"')
    assert e.stage == "validate" and e.reason == f"flow 1: field '{name}' appears more than once in the record"


def test_repeated_field_finds_the_first_record_with_a_member_twice():
    from streams.formats.flowlog.flowdecode import repeated_field

    batch = b'[{"a": 1, "b": {"c": 1, "c": 2}}, {"a": 1, "b": 2, "a": 3}]'
    assert repeated_field(batch, offset=10) == (11, "flow 11: field 'a' appears more than once in the record")
    assert repeated_field(b'[{"a": 1}, {"b": 2}]') is None and repeated_field(b"not json") is None
