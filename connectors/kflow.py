"""kflow encoder: a columnar kflow batch -> packed Cap'n Proto ``PackedCHF`` message and /chf request body.

The segment is written per batch with numpy (connectors/chf_segment.py); here it is packed by Cap'n
Proto's C++ packer through pycapnp, and framed (80 zero bytes, gzip by python-isal). The slow pycapnp
reference encoder and the decoder (tests, stand-ins) live here too.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

from isal import igzip

from connectors.chf_segment import (  # noqa: F401 - INT_COLUMNS, N_CUSTOM, KflowEncodeError re-exported
    BLOCK_WORDS, CHF_WORDS, HEAD_WORDS, INT_COLUMNS, N_CUSTOM, SAMPLE_RATE, KflowEncodeError, build_segment, column,
    cut_custom, encode_segment, segment_table,
)
from schemas import SCHEMA_DIR

FRAME_PREFIX = bytes(80)


def _pack_direct(seg: bytearray) -> bytes:
    """Pack ``seg`` with Cap'n Proto's C++ packer, without copying or re-laying it out.

    pycapnp only packs builders, and a builder over existing data would re-lay the message out.
    So: hand ``seg`` to a ``_PyCustomMessageBuilder`` as its first (and only) segment, make the
    builder allocate exactly all of it (a root ``Custom`` whose ``addrVal`` Data fills the rest;
    capnp never clears memory it allocates, it assumes zeroed buffers), then put back the five words
    the builder wrote. The builder now reports one segment of ``len(seg)`` words: ours.
    """
    total = len(seg) >> 3
    head = bytes(seg[:40])
    handed = []

    def allocate(minimum_words: int) -> bytearray:
        if handed or minimum_words > total:
            raise MemoryError("kflow: builder asked for a second segment")
        handed.append(True)
        return seg

    m = _schema()
    seg[:40] = bytes(40)               # capnp would otherwise "zero" the objects our pointers reach
    try:
        builder = capnp_module()._PyCustomMessageBuilder(allocate, total)
        root = builder.init_root(m.Custom)
        root.value.init("addrVal", (total - 5) * 8)
    finally:
        seg[:40] = head
    # packed size <= 10 bytes per 8-byte word (+ segment table): give the packer room up front
    return root._to_bytes_packed_helper(total + (total >> 2) + 4)


def capnp_module():
    import capnp  # noqa: PLC0415 (slow import kept out of module import)
    return capnp


@lru_cache(maxsize=1)
def load_schema():
    """The kflow schema module (CHF, PackedCHF, Custom), loaded once from schemas/kflow.capnp."""
    return capnp_module().load(str(SCHEMA_DIR / "kflow.capnp"))


_schema = load_schema


_fast_pack_ok: bool | None = None


def pack_segment(seg: bytearray) -> bytes:
    """Cap'n Proto packed encoding (with segment table) of a single segment written by build_segment."""
    global _fast_pack_ok
    if _fast_pack_ok is not False and len(seg) >= 40:
        try:
            out = _pack_direct(seg)
        except Exception:
            if _fast_pack_ok:          # worked before: a real error, not a pycapnp API change
                raise
            _fast_pack_ok = False      # pycapnp internals differ: use the copying path from now on
        else:
            _fast_pack_ok = True
            return out
    framed = segment_table(len(seg) >> 3) + bytes(seg)
    with _schema().PackedCHF.from_bytes(framed, traversal_limit_in_words=1 << 62, builder=True) as msg:
        return msg.to_bytes_packed()   # a copy: same content, layout re-done by capnp


def encode_packed_chf(cols: Any, device_id: int, custom_field_ids: Sequence[int]) -> bytes:
    """Packed PackedCHF message (what follows the 80 zero bytes in the /chf body)."""
    return pack_segment(build_segment(cols, device_id, custom_field_ids))


def frame_body(packed: bytes, level: int = 1) -> bytes:
    """The /chf request body: gzip(80 zero bytes + packed message), by ISA-L (`level` 0..3; 1 is about
    4x faster than zlib's level 1 for the same size on CHF)."""
    return igzip.compress(FRAME_PREFIX + packed, level, mtime=0)


# --- slow reference path (tests, debugging) -----------------------------------------------------

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
