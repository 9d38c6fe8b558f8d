"""kflow encoder: a columnar kflow batch -> packed Cap'n Proto ``PackedCHF`` message and /chf request body.

The single segment is written per batch with numpy (streams/formats/kflow/chf_segment.py), packed by Cap'n Proto's C++
packer through pycapnp without being re-laid out (streams/formats/kflow/kflow_capnp.py), and framed here: 80 zero bytes
and the packed message, gzipped by python-isal. The slow pycapnp reference encoder and the decoder (tests,
stand-ins) are in tests/unit/formats/kflow_reference.py.
"""
from __future__ import annotations

from typing import Any, Sequence

from isal import igzip

from streams.formats.kflow.chf_segment import (  # noqa: F401 - the encoder's names, re-exported for its callers
    BLOCK_WORDS, CHF_WORDS, HEAD_WORDS, INT_COLUMNS, N_CUSTOM, SAMPLE_RATE, KflowEncodeError, build_segment, column,
    cut_custom,
)
from streams.formats.kflow.kflow_capnp import pack_segment

FRAME_PREFIX = bytes(80)


def encode_packed_chf(cols: Any, device_id: int, custom_field_ids: Sequence[int]) -> bytes:
    """Packed PackedCHF message (what follows the 80 zero bytes in the /chf body)."""
    return pack_segment(build_segment(cols, device_id, custom_field_ids))


def frame_body(packed: bytes, level: int = 1) -> bytes:
    """The /chf request body: gzip(80 zero bytes + packed message), by ISA-L (`level` 0..3; 1 is about
    4x faster than zlib's level 1 for the same size on CHF)."""
    return igzip.compress(FRAME_PREFIX + packed, level, mtime=0)
