"""The slow reference path of the kflow encoder (tests, debugging, the Kentik stand-in): the same PackedCHF
message built with pycapnp setters in the reference allocation order streams/formats/kflow/chf_segment.py follows (it
writes each distinct string once where this writes a text per custom), and a decoder of packed messages into plain
dicts.
"""
from __future__ import annotations

from typing import Any, Sequence

from streams.formats.kflow.kflow import (BLOCK_WORDS, CHF_WORDS, HEAD_WORDS, INT_COLUMNS, N_CUSTOM, SAMPLE_RATE, column,
                              cut_custom)
from streams.formats.kflow.kflow_capnp import load_schema as _schema


def encode_with_pycapnp(cols: Any, device_id: int, custom_field_ids: Sequence[int], *,
                        packed: bool = True) -> bytes:
    """Same message built with pycapnp setters in the reference allocation order (slow)."""
    m = _schema()
    ts = list(column(cols, "timestamp"))
    n = len(ts)
    strings = [cut_custom(s).decode("utf-8") for s in column(cols, "strings")]
    cidx = column(cols, "custom_idx")
    c = {name: column(cols, name) for name in INT_COLUMNS}
    # size the first segment so that the builder never needs a second one
    est = HEAD_WORDS + n * (CHF_WORDS + BLOCK_WORDS) + sum(
        (len(strings[k].encode()) >> 3) + 1 for k in cidx) + 16
    msg = m.PackedCHF.new_message(num_first_segment_words=est)
    msgs = msg.init("msgs", n)
    for i in range(n):
        chf = msgs[i]
        chf.timestamp = ts[i]
        chf.ipv4SrcAddr = c["src_addr"][i]
        chf.ipv4DstAddr = c["dst_addr"][i]
        chf.l4SrcPort = c["src_port"][i]
        chf.l4DstPort = c["dst_port"][i]
        chf.protocol = c["protocol"][i]
        chf.inBytes = c["in_bytes"][i]
        chf.inPkts = c["in_pkts"][i]
        chf.outBytes = c["out_bytes"][i]
        chf.outPkts = c["out_pkts"][i]
        chf.sampleRate = SAMPLE_RATE
        chf.sampleAdj = True
        chf.big = False
        chf.appProtocol = 0
        chf.deviceId = device_id
        customs = chf.init("custom", N_CUSTOM)
        for j in range(N_CUSTOM):
            customs[j].id = custom_field_ids[j]
            customs[j].isDimension = False
    for i in range(n):
        customs = msgs[i].custom
        base = i * N_CUSTOM
        for j in range(N_CUSTOM):
            customs[j].value.strVal = strings[cidx[base + j]]
    return msg.to_bytes_packed() if packed else msg.to_bytes()


def decode_packed_chf(packed: bytes) -> list[dict]:
    """Decode a packed PackedCHF into plain dicts (tests / stand-in); customs as {id: strVal}."""
    m = _schema()
    msg = m.PackedCHF.from_bytes_packed(packed, traversal_limit_in_words=1 << 62)
    out = []
    for chf in msg.msgs:
        out.append({
            "timestamp": chf.timestamp, "src_addr": chf.ipv4SrcAddr, "dst_addr": chf.ipv4DstAddr,
            "src_port": chf.l4SrcPort, "dst_port": chf.l4DstPort, "protocol": chf.protocol,
            "in_bytes": chf.inBytes, "in_pkts": chf.inPkts, "out_bytes": chf.outBytes,
            "out_pkts": chf.outPkts, "sample_rate": chf.sampleRate, "sample_adj": chf.sampleAdj,
            "big": chf.big, "app_protocol": chf.appProtocol, "device_id": chf.deviceId,
            "customs": {cu.id: cu.value.strVal for cu in chf.custom},
        })
    return out
