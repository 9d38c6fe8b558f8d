"""The whole-object reader the tests and benchmarks compare against (not used by the product, which streams):
`parse_object_bytes(chunks)` collects streams.formats.flowlog's decoder into one FlowDocument (all columns in
memory); `iter_chunks(doc)` slices it."""
from __future__ import annotations

from typing import Iterable, Iterator

from streams.formats.flowlog.flowdecode import FlowStream, Limits
from streams.formats.flowlog.flowlog import DEFAULT_MAX_BYTES, HEADER_FIELDS


class FlowDocument:
    """A parsed flow-log document: header attributes plus `columns` (one list per flow field)."""

    __slots__ = HEADER_FIELDS + ("columns", "flow_count", "decompressed_size")

    def __init__(self, header: dict, columns: dict[str, list], flow_count: int, decompressed_size: int = 0):
        for name in HEADER_FIELDS:
            setattr(self, name, header[name])
        self.columns = columns
        self.flow_count = flow_count
        self.decompressed_size = decompressed_size

    @property
    def header(self) -> dict:
        """Header fields as a plain dict (the shape of the flow_batch record's `header`)."""
        return {name: getattr(self, name) for name in HEADER_FIELDS}

    @property
    def skipped_data(self) -> bool:
        """True when IBM says flows were lost in this capture interval (state 'skip data')."""
        return self.state.strip().lower() == "skip data"

    def __repr__(self) -> str:
        return f"FlowDocument(flows={self.flow_count}, state={self.state!r}, capture={self.capture_start_time!r})"


def parse_object_bytes(chunks: Iterable[bytes], *, max_bytes: int = DEFAULT_MAX_BYTES,
                       limits: Limits | None = None) -> FlowDocument:
    """Decompress (if gzip), parse and validate one flow-log object streamed as byte chunks, all at once."""
    stream = FlowStream(chunks, chunk_flows=0, limits=limits or Limits(max_object_bytes=max_bytes))
    (columns,) = stream
    return FlowDocument(stream.header, columns, stream.flow_count, stream.decompressed_size)


def chunk_count(flow_count: int, max_flows: int = 2000) -> int:
    """How many chunks iter_chunks yields for that many flows (at least 1, even for an empty object)."""
    return max(1, -(-flow_count // max_flows))


def iter_chunks(doc: FlowDocument, max_flows: int = 2000) -> Iterator[dict[str, list]]:
    """Yield the document's columns in slices of at most max_flows flows.

    An empty document yields exactly one empty slice, so every object produces >= 1 chunk downstream.
    """
    if max_flows < 1:
        raise ValueError("max_flows must be >= 1")
    cols = doc.columns
    n = doc.flow_count
    if n <= max_flows:
        yield cols
        return
    for start in range(0, n, max_flows):
        end = start + max_flows
        yield {name: c[start:end] for name, c in cols.items()}
