"""Packed columns of the flows/kflow messages (streams/formats/columns.py): round trips, the numpy types the
consumers get, messages of an older writer schema still read (and replayed), and inconsistent columns refused
with a reason."""
from __future__ import annotations

import numpy as np
import pytest

from streams.formats.avro import AvroDecodeError, Codec
from streams.formats.flowlog.flowcheck import FLOW_FIELDS
from streams.formats.kflow.kflow import INT_COLUMNS
from streams.formats.columns import (FLOW_INT_TYPES, FLOW_STRING_COLUMNS, KFLOW_INT_TYPES, as_list, pack,
                             pack_flow_columns, pack_kflow_columns)
from streams.formats.batches import FlowChunk, FlowPart, KflowChunk, KflowPart
from streams.ops.replay import mark_replay
from tests.unit.formats.test_avro import COLUMNS, HEADER, REF, older_writer



def lists(columns: dict) -> dict:
    """Every column as a list (numpy columns converted), to compare columns with plain values."""
    return {name: as_list(column) for name, column in columns.items()}


KCOLUMNS = {"timestamp": [1715677805, 1715677806], "src_addr": [3405803821, 4294967295],
            "dst_addr": [183517188, 0], "src_port": [51812, 443], "dst_port": [443, 51812], "protocol": [6, 6],
            "in_bytes": [18234, 0], "in_pkts": [61, 0], "out_bytes": [0, 2 ** 62 + 5], "out_pkts": [0, 9],
            "strings": ["a", "", "ü"], "custom_idx": [0] * 10 + [1] * 9 + [2] * 19}
PARTS = [{"key": REF["key"], "etag": "abc123", "size": 612, "last_modified": 1, "header": HEADER, "chunk": 0,
          "chunks": 1, "start": 0, "flow_count": 2}]
KPARTS = [{"key": REF["key"], "etag": "abc123", "size": 612, "last_modified": 1, "device_name": "ibm_0727_b3",
           "subnet_id": "0727-b3", "region": "us-south", "zone": "us-south-2", "chunk": 0, "chunks": 1,
           "source_flows": 1, "start": 0, "flow_count": 2}]


KFLOW = {"bucket": REF["bucket"], "flow_count": 2, "replay": False, "source": "acct-a"}


def flow_chunk(columns=COLUMNS, count=2) -> FlowChunk:
    return FlowChunk(REF["bucket"], count, columns, [FlowPart(**{**PARTS[0], "flow_count": count})],
                     source="acct-a")


def kflow_chunk(columns=KCOLUMNS) -> KflowChunk:
    return KflowChunk(**KFLOW, columns=columns, parts=[KflowPart(**KPARTS[0])])


def test_column_types_cover_the_parser_and_the_chf_encoder_columns():
    assert (*FLOW_STRING_COLUMNS, *FLOW_INT_TYPES) == FLOW_FIELDS
    assert INT_COLUMNS == tuple(KFLOW_INT_TYPES)


def test_flow_chunk_round_trip_gives_numpy_integers_and_string_lists():
    out = FlowChunk.decode(flow_chunk().encode())
    assert lists(out.columns) == COLUMNS
    for name, dtype in FLOW_INT_TYPES.items():
        col = out.columns[name]
        assert isinstance(col, np.ndarray) and col.dtype == np.dtype(dtype)
        assert not col.flags.writeable and not col.flags.owndata  # a view of the message, no copy
    assert type(out.columns["start_time"]) is list and out.columns["direction"] == ["I", "O"]
    assert out.columns["cumulative_bytes_from_target"][1] == 2 ** 40


def test_string_columns_are_joined_by_nul_and_integers_packed_little_endian():
    packed = pack_flow_columns(COLUMNS)
    assert packed["start_time"] == "2024-05-14T09:10:05Z\0" and packed["direction"] == "I\0O"
    assert packed["initiator_port"] == (51812).to_bytes(2, "little") + (36919).to_bytes(2, "little")
    assert packed["was_terminated"] == b"\x00\x01"
    one_empty = FlowChunk.decode(flow_chunk({k: v[1:] for k, v in COLUMNS.items()}, 1).encode())
    assert one_empty.columns["start_time"] == [""] and one_empty.columns["direction"] == ["O"]
    with pytest.raises(ValueError, match="'action' has a value with a NUL"):
        flow_chunk({**COLUMNS, "action": ["accepted", "re\0jected"]}).encode()


def test_numpy_and_list_inputs_encode_alike_and_empty_chunk_has_every_column():
    as_numpy = {k: np.asarray(v, FLOW_INT_TYPES[k]) if k in FLOW_INT_TYPES else v for k, v in COLUMNS.items()}
    assert flow_chunk(as_numpy).encode() == flow_chunk().encode()
    numpy_scalars = {k: list(v) if k in FLOW_INT_TYPES else v for k, v in as_numpy.items()}  # e.g. np.bool_
    assert flow_chunk(numpy_scalars).encode() == flow_chunk().encode()
    empty = FlowChunk.decode(flow_chunk({}, 0).encode())
    assert set(empty.columns) == set(COLUMNS) and all(len(v) == 0 for v in empty.columns.values())


def test_kflow_chunk_round_trip_and_slice_for_the_chf_encoder():
    chunk = kflow_chunk()
    out = KflowChunk.decode(chunk.encode())
    assert lists(out.columns) == KCOLUMNS
    assert all(out.columns[n].dtype == np.dtype(t) for n, t in KFLOW_INT_TYPES.items())
    assert out.columns["custom_idx"].dtype == np.uint16  # 3 strings
    part = lists(out.slice(1, 2))
    assert part["flow_count"] == 1 and part["out_bytes"] == [2 ** 62 + 5] and part["custom_idx"] == [2] * 19


def test_out_of_range_value_is_refused_with_the_column_name():
    with pytest.raises(ValueError, match="'src_port'"):
        kflow_chunk({**KCOLUMNS, "src_port": [-1, 0]}).encode()
    with pytest.raises(ValueError, match="'protocol' has a value out of range for <u1"):
        kflow_chunk({**KCOLUMNS, "protocol": np.array([6, 256])}).encode()
    assert pack(np.array([6, 255]), "<u1") == b"\x06\xff"  # a wider array whose values fit


def test_custom_idx_widens_past_65536_strings():
    strings = [str(i) for i in range(70_000)]
    cols = {**KCOLUMNS, "strings": strings, "custom_idx": [69_999] * 19 + [0] * 19}
    out = KflowChunk.decode(kflow_chunk(cols).encode())
    assert out.columns["custom_idx"].dtype == np.uint32 and out.columns["custom_idx"][0] == 69_999


def test_flows_written_by_an_older_writer_schema_still_decode():
    raw = older_writer("flow_batch", "replay", "source").encode(
        {"bucket": REF["bucket"], "flow_count": 2, "columns": pack_flow_columns(COLUMNS), "parts": PARTS})
    out = FlowChunk.decode(raw)
    assert lists(out.columns) == COLUMNS
    assert out.columns["bytes_from_target"].dtype == np.int64 and out.header == HEADER
    assert (out.source, out.replay) == ("", False)
    assert [(p.key, p.start, p.flow_count) for p in out.parts] == [(REF["key"], 0, 2)]


def test_kflow_written_by_an_older_writer_schema_still_decodes():
    raw = older_writer("kflow_batch", "replay", "source").encode(
        {"bucket": REF["bucket"], "flow_count": 2, **pack_kflow_columns(KCOLUMNS), "parts": KPARTS})
    out = KflowChunk.decode(raw)
    assert lists(out.columns) == KCOLUMNS and out.flow_count == 2
    assert out.columns["timestamp"].dtype == np.int64 and out.columns["custom_idx"].dtype == np.uint16
    assert [(p.key, p.device_name, p.flow_count) for p in out.parts] == [(REF["key"], "ibm_0727_b3", 2)]
    assert isinstance(out.parts[0], KflowPart) and (out.source, out.replay) == ("", False)


@pytest.mark.parametrize("schema,record", [
    ("flow_batch", {"bucket": REF["bucket"], "flow_count": 2, "columns": pack_flow_columns(COLUMNS), "parts": PARTS}),
    ("kflow_batch", {"bucket": REF["bucket"], "flow_count": 2, **pack_kflow_columns(KCOLUMNS), "parts": KPARTS}),
])
def test_replay_of_an_older_writer_schema_re_encodes_it_in_the_current_one(schema, record):
    codec = Codec(schema)
    raw, _ = mark_replay(codec, older_writer(schema, "replay").encode({**record, "source": ""}))
    assert raw[2:10] == codec.fingerprint  # written with the current schema
    chunk = (FlowChunk if schema == "flow_batch" else KflowChunk).decode(raw)
    assert chunk.replay is True
    assert lists(chunk.columns) == (COLUMNS if schema == "flow_batch" else KCOLUMNS)
    assert mark_replay(codec, raw) == (None, codec.decode(raw))  # already marked: skipped


def test_inconsistent_columns_are_a_decode_error_with_a_reason():
    good = flow_chunk().to_avro()
    short = {**good, "columns": {**good["columns"], "target_port": b"\x01\x00"}}
    with pytest.raises(AvroDecodeError, match="'target_port' has 2 bytes, expected 2 values of 2 bytes"):
        FlowChunk.decode(Codec("flow_batch").encode(short))
    extra = {**good, "columns": {**good["columns"], "action": "accepted\0rejected\0accepted"}}
    with pytest.raises(AvroDecodeError, match="'action' has 3 values, expected 2"):
        FlowChunk.decode(Codec("flow_batch").encode(extra))
    kgood = kflow_chunk().to_avro()
    with pytest.raises(AvroDecodeError, match="'custom_idx' has"):
        KflowChunk.decode(Codec("kflow_batch").encode({**kgood, "custom_idx": pack_kflow_columns(
            {"custom_idx": [0] * 37})["custom_idx"]}))
