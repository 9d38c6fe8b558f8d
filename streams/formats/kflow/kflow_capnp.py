"""The Cap'n Proto side of the kflow encoder (streams/formats/kflow/kflow.py): the schema (schemas/kflow.capnp, loaded
once, pycapnp imported only when first needed) and packing a segment the encoder wrote with Cap'n Proto's C++ packer,
without re-laying it out (`pack_segment`; a copying path if pycapnp's internals ever differ).
"""
from __future__ import annotations

from functools import lru_cache

from schemas import SCHEMA_DIR


def segment_table(words: int) -> bytes:
    """The segment table of a single-segment message of `words` words."""
    return (0).to_bytes(4, "little") + words.to_bytes(4, "little")


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
