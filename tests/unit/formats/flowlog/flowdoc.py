"""The whole-object reader the tests and benchmarks compare against (the product only streams):
`parse_object_bytes(chunks)` collects streams.formats.flowlog's decoder into one FlowDocument (all columns in
memory); `iter_chunks(doc)` slices it. FlowDocument, `iter_chunks` and `chunk_count` are the old reader's
(devstack/harness/legacy_flowlog.py), so both readers give the same documents."""
from __future__ import annotations

from typing import Iterable

from streams.formats.flowlog.flowdecode import FlowStream, Limits
from streams.formats.flowlog.flowlog import DEFAULT_MAX_OBJECT_BYTES
from devstack.harness.legacy_flowlog import FlowDocument, chunk_count, iter_chunks

__all__ = ["FlowDocument", "chunk_count", "iter_chunks", "parse_object_bytes"]


def parse_object_bytes(chunks: Iterable[bytes], *, max_bytes: int = DEFAULT_MAX_OBJECT_BYTES,
                       limits: Limits | None = None) -> FlowDocument:
    """Decompress (if gzip), parse and validate one flow-log object streamed as byte chunks, all at once."""
    stream = FlowStream(chunks, chunk_flows=0, limits=limits or Limits(max_object_bytes=max_bytes))
    (columns,) = stream
    return FlowDocument(stream.header, columns, stream.flow_count, stream.decompressed_size)
