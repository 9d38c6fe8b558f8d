"""Streaming, bounded-memory decode of one flow-log object into column chunks.

`FlowStream(byte_chunks, chunk_flows=..., limits=...)` is iterated while the object downloads: gunzip
(streams/formats/flowlog/gunzip.py) -> incremental JSON scanner (streams/formats/flowlog/flowscan.py) -> typed msgspec
decode and checks (streams/formats/flowlog/flowcheck.py) -> column dicts of at most `chunk_flows` flows. At no time
are the whole JSON text, all records and all columns held: memory is about one download chunk, one piece of text
and one chunk of columns, whatever the object's size.

Chunks are PROVISIONAL until the iteration ends without an error: the object's verdict (and its header, which
JSON allows after `flow_logs`) is known only at the end. The stage must therefore not send anything before
the end. Errors keep the order a whole-document parser gives them: decompress > json > document shape >
header > first bad flow (so a JSON error later in the object wins over a bad flow earlier).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import msgspec

from streams.formats.flowlog.flowcheck import (
    FLOW_FIELDS, FLOWS_DECODER, FlowLogError, batch_columns, check_header, describe, find_problem,
)
from streams.formats.flowlog.flowscan import DocumentScanner, JsonSyntaxError, ValueTooLarge, decode_value
from streams.formats.flowlog.gunzip import Inflater

__all__ = ["Limits", "FlowStream", "DEFAULT_MAX_OBJECT_BYTES", "DEFAULT_MAX_VALUE_BYTES"]

DEFAULT_MAX_OBJECT_BYTES = 1 << 30  # 1 GiB decompressed (--max_object_bytes; 0 = unlimited)
DEFAULT_MAX_VALUE_BYTES = 1 << 20  # one JSON value (a flow record is ~600 bytes, a header field ~100)


@dataclass(frozen=True)
class Limits:
    """Size limits of one object: decompressed bytes (0 = unlimited) and bytes of any one JSON value."""

    max_object_bytes: int = DEFAULT_MAX_OBJECT_BYTES
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES


class FlowStream:
    """Iterate an object's flows as column dicts of <= chunk_flows flows (chunk_flows 0: one chunk).

    After the iteration ends without an error: `header` (validated header fields), `flow_count`, `chunks`
    (how many were yielded, >= 1: an object without flows yields one empty chunk) and `decompressed_size`.
    """

    def __init__(self, byte_chunks: Iterable[bytes], *, chunk_flows: int = 2000, limits: Limits = Limits()):
        if chunk_flows < 0:
            raise ValueError("chunk_flows must be >= 0")
        self._byte_chunks = byte_chunks
        self.chunk_flows = chunk_flows
        self.limits = limits
        self.header: dict | None = None
        self.flow_count = 0
        self.chunks = 0
        self.decompressed_size = 0
        self._fields: dict[str, Any] = {}
        self._flow_logs = 0  # times a flow_logs member was seen
        self._problem: tuple[int, str] | None = None  # first bad flow (index, reason)
        self._empty: dict[str, int] = {}  # start_time/end_time -> index of the first "" value
        self._parts: list[tuple[dict[str, list], int]] = []  # decoded batches not yet handed out
        self._acc_n = 0
        self._inflater: Inflater | None = None

    def __iter__(self) -> Iterator[dict[str, list]]:
        inflater = self._inflater = Inflater(self._byte_chunks, self.limits.max_object_bytes)
        scanner = DocumentScanner(inflater, max_value_bytes=self.limits.max_value_bytes,
                                  decode_batch=FLOWS_DECODER.decode)
        try:
            for event in scanner.events():
                yield from self._on_event(event, scanner)
        except JsonSyntaxError as exc:
            inflater.drain()  # a decompress error further on is the real cause
            raise _json_error(inflater, exc.reason) from None
        except ValueTooLarge as exc:
            inflater.drain()
            raise FlowLogError("validate", f"{exc.what} is a JSON value larger than the limit of {exc.cap} bytes "
                                           "(flow records are about 600 bytes): not a flow log") from None
        self.decompressed_size = inflater.size
        if scanner.blank:
            if inflater.gzip:
                raise FlowLogError("json", "decompressed body is not valid JSON: the document is empty")
            raise FlowLogError("decompress", "object body is blank, expected gzip-compressed JSON")
        self.header = self._verdict()
        if self._acc_n or not self.chunks:
            yield self._take(self._acc_n)

    # ------------------------------------------------------------------------------------ events
    def _on_event(self, event: tuple, scanner: DocumentScanner) -> Iterator[dict[str, list]]:
        kind = event[0]
        if kind == "flows":
            self._on_batch(event[2], event[1], scanner)
        elif kind == "flow":
            payload = b"[" + event[1] + b"]"
            try:
                decoded = scanner.decode_batch(payload)
            except (msgspec.DecodeError, RecursionError):
                decoded = None
            self._on_batch(payload, decoded, scanner)
        elif kind == "member":
            name = event[1]
            self._fields[name] = decode_value(event[2], f"header field {name!r}")
            self._flow_logs += name == "flow_logs"
        elif kind == "flows_start":
            self._flow_logs += 1
        else:
            raise _not_an_object(event[1], event[2], self._inflater)
        while self.chunk_flows and self._acc_n >= self.chunk_flows:
            yield self._take(self.chunk_flows)

    def _on_batch(self, payload: bytes | bytearray, decoded: list | None, scanner: DocumentScanner) -> None:
        offset = self.flow_count
        if decoded is None:  # the exact path's record that the typed decoder refused: syntax or content?
            decoded = decode_value(payload, f"flow record {offset}")
            typed = False
        else:
            typed = self._problem is None
        self.flow_count += len(decoded)
        if self._problem is not None:
            return  # the object is bad already: only the JSON syntax of the rest still matters
        cols = batch_columns(decoded) if typed else None
        if cols is None:
            flows = decoded if not typed else decode_value(payload, f"flow record {offset}")
            found = find_problem(flows, offset) or repeated_field(payload, offset)
            if found is None:  # the typed decoder refused what the walking check accepts: name the batch
                found = (offset, f"flow records {offset} to {offset + len(flows) - 1} failed the typed decode "
                                 "although each passes the field checks")
            self._track_empty_dicts(flows[:found[0] - offset], offset)
            self._problem = found
            self._parts, self._acc_n = [], 0
            scanner.decode_batch = msgspec.json.decode  # syntax only from now on
            return
        self._track_empty(cols, offset)
        self._append(cols, len(decoded))

    def _track_empty(self, cols: dict[str, list], offset: int) -> None:
        for name in ("start_time", "end_time"):
            if name not in self._empty:
                try:
                    self._empty[name] = offset + cols[name].index("")
                except ValueError:
                    pass

    def _track_empty_dicts(self, flows: list[dict], offset: int) -> None:
        for name in ("start_time", "end_time"):
            if name not in self._empty:
                for i, fl in enumerate(flows, offset):
                    if fl.get(name) == "":
                        self._empty[name] = i
                        break

    # ------------------------------------------------------------------------------------ columns
    def _append(self, cols: dict[str, list], n: int) -> None:
        if n:
            self._parts.append((cols, n))
            self._acc_n += n

    def _take(self, n: int) -> dict[str, list]:
        """The next n flows' columns (all when n >= what is held), copying each value once at most."""
        used, got = [], 0
        while self._parts and got < n:
            cols, k = self._parts.pop(0)
            if got + k > n:  # split this batch: the rest stays for the next chunk
                cut = n - got
                self._parts.insert(0, ({name: v[cut:] for name, v in cols.items()}, k - cut))
                cols, k = {name: v[:cut] for name, v in cols.items()}, cut
            used.append(cols)
            got += k
        self._acc_n -= got
        self.chunks += 1
        if len(used) == 1:
            return used[0]
        if not used:
            return {name: [] for name in FLOW_FIELDS}
        first, rest = used[0], used[1:]  # the first batch's lists are ours (popped): extended in place, in C
        for name in FLOW_FIELDS:
            column = first[name]
            for cols in rest:
                column += cols[name]
        return first

    # ------------------------------------------------------------------------------------ verdict
    def _verdict(self) -> dict:
        """The validated header, or the object's first problem in whole-document order."""
        if self._flow_logs == 0:
            raise FlowLogError("validate", "document has no 'flow_logs' field")
        if self._flow_logs > 1:
            raise FlowLogError("validate", "document has more than one 'flow_logs' field")
        if "flow_logs" in self._fields and self._fields["flow_logs"] is not None:
            raise FlowLogError("validate", f"'flow_logs' is {describe(self._fields['flow_logs'])}, "
                                           "expected an array")
        header = check_header(self._fields)
        candidates = [] if self._problem is None else [(self._problem[0], 0, self._problem[1])]
        for rank, (name, hname) in enumerate((("start_time", "capture_start_time"),
                                              ("end_time", "capture_end_time")), 1):
            i = self._empty.get(name)
            if i is not None and not header[hname]:
                candidates.append((i, rank, f"flow {i}: {name} is empty and the header has no {hname} to "
                                            "fall back to"))
        if candidates:
            raise FlowLogError("validate", min(candidates)[2])
        return header


def repeated_field(payload: bytes | bytearray, offset: int = 0) -> tuple[int, str] | None:
    """(index, reason) of the first flow record of a batch (a JSON array, records numbered from `offset`)
    in which a field appears more than once — the typed decoder and a plain parser disagree on which value
    counts, so the record is ambiguous; None if there is none. Slow path: run only after a batch failed."""
    try:
        records = json.loads(bytes(payload), object_pairs_hook=_Members)
    except ValueError:
        return None
    for index, rec in enumerate(records if isinstance(records, list) else (), offset):
        if isinstance(rec, _Members) and rec.repeated:
            return index, f"flow {index}: field {rec.repeated!r} appears more than once in the record"
    return None


class _Members(dict):
    """A JSON object as parsed, remembering its first member name that appeared more than once."""

    def __init__(self, items: list):
        super().__init__(items)
        seen: set = set()
        self.repeated = next((name for name, _ in items if name in seen or seen.add(name)), "")


def _json_error(inflater: Inflater, reason: str) -> FlowLogError:
    if inflater.gzip:
        return FlowLogError("json", f"decompressed body is not valid JSON: {reason}")
    return FlowLogError("decompress", f"object is neither gzip (no 1f 8b magic; starts with "
                                      f"{inflater.head.hex(' ')}) nor JSON ({reason})")


def _not_an_object(raw: bytes | None, first: str, inflater: Inflater) -> FlowLogError:
    if raw is not None:
        return FlowLogError("validate", f"document is {describe(decode_value(raw, 'the document'))}, "
                                        "expected a JSON object")
    inflater.drain()
    if not inflater.gzip:
        return _json_error(inflater, f"starts with {first!r} and is larger than the limit of one JSON value")
    return FlowLogError("validate", f"document is not a JSON object (it starts with {first!r}) and is larger "
                                    "than the limit of one JSON value")
