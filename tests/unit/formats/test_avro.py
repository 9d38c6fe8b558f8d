"""Unit tests for streams.formats.avro: framings, fingerprints, errors and schema evolution."""
from __future__ import annotations

import copy
import json
import struct

import pytest
from fastavro.schema import fingerprint as fa_fingerprint
from fastavro.schema import to_parsing_canonical_form

from schemas import SCHEMA_DIR
from streams.formats.avro import (
    _BY_FP, _BY_REGISTRY_ID, SCHEMA_NAMES, AvroDecodeError, Codec, _Known, fingerprint, load_schema,
)
from streams.formats.columns import pack_flow_columns, pack_kflow_columns
from streams.formats.flowlog.flowlog import FLOW_FIELDS, HEADER_FIELDS

REF = {"bucket": "flowlogs", "key": "ibm_vpc_flowlogs_v1/a/b/00000001.gz", "etag": "abc123", "size": 612,
       "last_modified": 1715677802000, "published_at": 1715677900000, "republish": False,
       "force": False, "source": "acct-a", "group": []}

HEADER = {"version": "0.0.1", "collector_crn": "crn:c", "attached_endpoint_type": "vnic",
          "network_interface_id": "0727-n", "instance_crn": "crn:i", "vpc_crn": "crn:v",
          "capture_start_time": "2024-05-14T09:10:02Z", "capture_end_time": "2024-05-14T09:15:02Z",
          "state": "skip data", "number_of_flow_logs": 2}
COLUMNS = {
    "start_time": ["2024-05-14T09:10:05Z", ""], "end_time": ["2024-05-14T09:14:58Z", ""],
    "connection_start_time": ["2024-05-14T08:51:40Z", "2024-05-14T09:11:20Z"], "direction": ["I", "O"],
    "action": ["accepted", "rejected"], "initiator_ip": ["203.0.113.45", "10.240.64.4"],
    "target_ip": ["10.240.64.4", "161.26.0.10"], "initiator_port": [51812, 36919], "target_port": [443, 53],
    "transport_protocol": [6, 17], "was_initiated": [False, True], "was_terminated": [False, True],
    "bytes_from_initiator": [18234, 144], "packets_from_initiator": [61, 2],
    "bytes_from_target": [402117, 228], "packets_from_target": [298, 2],
    "cumulative_bytes_from_initiator": [90211, 144], "cumulative_packets_from_initiator": [312, 2],
    "cumulative_bytes_from_target": [2210934, 2 ** 40], "cumulative_packets_from_target": [1604, 2],
}
SAMPLES = {
    "object_ref": REF,
    "flow_batch": {"bucket": REF["bucket"], "flow_count": 2, "columns": pack_flow_columns(COLUMNS),
                   "parts": [{**{k: REF[k] for k in ("key", "etag", "size", "last_modified")}, "header": HEADER,
                              "chunk": 0, "chunks": 1, "start": 0, "flow_count": 2}],
                   "replay": False, "source": "acct-a"},
    "kflow_batch": {"bucket": REF["bucket"], "flow_count": 1, "replay": False, "source": "",
                    "parts": [{**{k: REF[k] for k in ("key", "etag", "size", "last_modified")},
                               "device_name": "ibm_0727_b3", "subnet_id": "0727-b3", "region": "us-south",
                               "zone": "us-south-2", "chunk": 0, "chunks": 1, "source_flows": 1, "start": 0,
                               "flow_count": 1}], **pack_kflow_columns({
                        "timestamp": [1715677805], "src_addr": [3405803821], "dst_addr": [183517188],
                        "src_port": [51812], "dst_port": [443], "protocol": [6], "in_bytes": [18234],
                        "in_pkts": [61], "out_bytes": [0], "out_pkts": [0], "strings": ["a", ""],
                        "custom_idx": [0] * 10 + [1] * 9})},
    "deadletter": {"bucket": "flowlogs", "key": "k", "etag": "e", "stage": "validate",
                   "reason": "flow 17: initiator_port is the string '443', expected an integer 0-65535",
                   "at": 1715677900000, "size": 10, "source": "acct-b"},
    "ledger": {"bucket": "flowlogs", "key": "k", "etag": "e", "flows": 2, "chf": 4, "device_name": "ibm_x",
               "delivered_at": 1715677900000, "deleted": True, "source": "acct-a"},
    "vpc_metadata": {"region": "us-south", "fetched_at": 1700000000.5, "json": '{"vpcs": []}'},
}


def register_schema(schema) -> bytes:
    """Make an extra (e.g. older) writer schema known to decoders; returns its fingerprint."""
    return Codec(json.loads(schema) if isinstance(schema, str) else schema).fingerprint


def register_registry_id(schema_id: int, schema) -> None:
    """Tell decoders which schema a Confluent registry id stands for."""
    _BY_REGISTRY_ID[schema_id] = _Known(schema)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_round_trip_single_object_and_confluent(name):
    rec = SAMPLES[name]
    c = Codec(name)
    data = c.encode(rec)
    assert data[:2] == b"\xc3\x01" and data[2:10] == c.fingerprint
    assert c.decode(data) == rec
    cf = Codec(name, registry_id=4242 + SCHEMA_NAMES.index(name))
    framed = cf.encode(rec)
    assert framed[0] == 0 and struct.unpack(">I", framed[1:5])[0] == 4242 + SCHEMA_NAMES.index(name)
    assert framed[5:] == data[10:]
    assert c.decode(framed) == rec  # a single-object reader also reads Confluent framing
    assert cf.decode(data) == rec   # and vice versa


def test_schemas_use_blueflow_namespace_and_match_the_parser():
    for name in SCHEMA_NAMES:
        s = json.loads((SCHEMA_DIR / f"{name}.avsc").read_text())
        assert s["type"] == "record" and s["namespace"] == "blueflow"
    fb = load_schema("flow_batch")
    fields = {f["name"]: f for f in fb["fields"]}
    assert [f["name"] for f in fields["columns"]["type"]["fields"]] == list(FLOW_FIELDS)
    part = {f["name"]: f for f in fields["parts"]["type"]["items"]["fields"]}
    assert [f["name"] for f in part["header"]["type"]["fields"]] == list(HEADER_FIELDS)
    cols = {f["name"]: f["type"] for f in fields["columns"]["type"]["fields"]}
    assert cols["start_time"] == cols["target_ip"] == "string"  # packed: values joined by NUL
    assert cols["initiator_port"] == cols["was_initiated"] == cols["bytes_from_target"] == "bytes"
    kb = {f["name"]: f["type"] for f in load_schema("kflow_batch")["fields"]}
    for col in ("timestamp", "src_addr", "dst_addr", "src_port", "dst_port", "protocol", "in_bytes", "in_pkts",
                "out_bytes", "out_pkts", "custom_idx"):
        assert kb[col] == "bytes"
    assert kb["strings"]["items"] == "string"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_fingerprint_matches_fastavro(name):
    raw = load_schema(name)
    ours = fingerprint(raw)
    theirs = fa_fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO")
    assert ours.hex() == theirs
    assert Codec(name).fingerprint == ours
    assert _BY_FP[ours].fullname == f"blueflow.{raw['name']}"  # a decoder knows it


def test_crc64_avro_known_vector_from_fastavro_not_a_hand_written_crc():
    # Avro spec / Java SchemaNormalization.parsingFingerprint64 of the schema "int": 0x7275D51A3F395C8F
    assert fingerprint("int") == (0x7275D51A3F395C8F).to_bytes(8, "little") == bytes.fromhex("8f5c393f1ad57572")
    import streams.formats.avro as avro

    assert not hasattr(avro, "crc64_avro") and not hasattr(avro, "_FP_TABLE")  # fastavro's fingerprint is used


def test_unknown_fingerprint_bad_magic_truncation():
    c = Codec("object_ref")
    data = c.encode(REF)
    with pytest.raises(AvroDecodeError, match="unknown schema fingerprint 0102030405060708"):
        c.decode(b"\xc3\x01" + bytes(range(1, 9)) + data[10:])
    with pytest.raises(AvroDecodeError, match="bad magic"):
        c.decode(b"\x7b\x22" + data[2:])
    with pytest.raises(AvroDecodeError, match="truncated"):
        c.decode(data[:-3])
    with pytest.raises(AvroDecodeError, match="truncated"):
        c.decode(data[:6])
    with pytest.raises(AvroDecodeError, match="empty"):
        c.decode(b"")
    with pytest.raises(AvroDecodeError, match="unexpected bytes"):
        c.decode(data + b"\x00")
    with pytest.raises(AvroDecodeError, match="unknown schema registry id 999999"):
        c.decode(b"\x00" + struct.pack(">I", 999999) + data[10:])


def test_other_schema_is_not_silently_misread():
    ledger = Codec("ledger").encode(SAMPLES["ledger"])
    with pytest.raises(AvroDecodeError, match="cannot be read as object_ref"):
        Codec("object_ref").decode(ledger)


def older_writer(name: str, *without: str) -> Codec:
    """A codec of a synthetic older writer schema: the current schema of `name` before fields `without` (each
    added later with a default) were added."""
    old = copy.deepcopy(load_schema(name))
    old["fields"] = [f for f in old["fields"] if f["name"] not in without]
    return Codec(old)


def test_schema_evolution_added_field_with_default():
    old = copy.deepcopy(load_schema("object_ref"))
    old["fields"] = [f for f in old["fields"] if f["name"] != "republish"]
    old_codec = Codec(old)  # a writer that predates the "republish" field
    assert old_codec.fingerprint != Codec("object_ref").fingerprint
    data = old_codec.encode({k: v for k, v in REF.items() if k != "republish"})
    assert Codec("object_ref").decode(data) == {**REF, "republish": False}


def test_register_older_schema_and_registry_ids():
    old = copy.deepcopy(load_schema("deadletter"))
    old["fields"] = [f for f in old["fields"] if f["name"] != "size"]
    from fastavro import parse_schema, schemaless_writer
    from io import BytesIO
    bio = BytesIO()
    rec = {k: v for k, v in SAMPLES["deadletter"].items() if k != "size"}
    schemaless_writer(bio, parse_schema(old), rec)
    fp = register_schema(json.dumps(old))
    assert Codec("deadletter").decode(b"\xc3\x01" + fp + bio.getvalue()) == {**rec, "size": 0}
    register_registry_id(77001, old)
    assert Codec("deadletter").decode(b"\x00" + struct.pack(">I", 77001) + bio.getvalue()) == {**rec, "size": 0}
    lookups = []

    def lookup(schema_id):
        lookups.append(schema_id)
        return json.dumps(old) if schema_id == 77002 else None

    c = Codec("deadletter", schema_lookup=lookup)
    assert c.decode(b"\x00" + struct.pack(">I", 77002) + bio.getvalue())["reason"] == rec["reason"]
    assert lookups == [77002]


def test_missing_fields_with_defaults_are_filled_on_encode():
    c = Codec("flow_batch")
    part = {**SAMPLES["flow_batch"]["parts"][0], "header": {}, "flow_count": 0}
    rec = {**SAMPLES["flow_batch"], "parts": [part], "columns": pack_flow_columns({}), "flow_count": 0}
    out = c.decode(c.encode(rec))
    header = out["parts"][0]["header"]
    assert header["state"] == "" and header["number_of_flow_logs"] == 0
    assert out["columns"]["direction"] == "" and out["columns"]["was_terminated"] == b""
