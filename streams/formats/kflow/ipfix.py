"""IPFIX (RFC 7011) encoder: kflow batches -> IPFIX Messages for any flow collector (docs/ipfix.md).

No kept Python IPFIX library fits: `ipfix` (PyPI, last release 2014) is unmaintained, `netflow`, `netflume` and
`nettail` are collectors/parsers without an exporter. So the wire format is written here, with byte-level
tests against RFC 7011's own examples (tests/unit/formats/test_ipfix_encoder.py).

The Template and the framing pieces: streams/formats/kflow/ipfix_template.py. Batch path, per chunk and with
numpy only (as streams/formats/kflow/chf_segment.py): `encode_records` writes the fixed-width part of every
record as one big-endian structured array and length-prefixes each distinct name once (RFC 7011 §7); `frame_messages` cuts
the records into Messages of at most `max_bytes` and writes all of them with one byte gather (headers, fixed
parts, names) — no per-record Python work.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from streams.formats.kflow.chf_segment import KflowEncodeError, typed
from streams.formats.flowlog.flowlog import epoch_seconds
from streams.formats.kflow.ipfix_template import (DROPPED_ACL_DENY, EGRESS, FIXED_FIELDS, FORWARDED, IBM_FIELDS,
                                                  INGRESS, INITIATOR, OBSERVATION_POINT, REVERSE_INITIATOR,
                                                  SET_HEADER, STATUS_UNKNOWN, TEMPLATE_ID, UDP_MAX_BYTES, VERSION,
                                                  cut_utf8, varlen)

N_CUSTOM = 19
_STRING_COLS = tuple(int(f.column[3:]) for f in IBM_FIELDS)


# ---------------------------------------------------------------- the batch path (numpy, per chunk)
_BIG_ENDIAN = {8: ">u8", 4: ">u4", 2: ">u2", 1: "u1"}
FIXED_DTYPE = np.dtype([(f.name, _BIG_ENDIAN[f.length]) for f in FIXED_FIELDS])
FIXED_DTYPE_WITH_POINT = np.dtype(FIXED_DTYPE.descr + [(OBSERVATION_POINT.name, ">u8")])
HEADERS_DTYPE = np.dtype([("version", ">u2"), ("length", ">u2"), ("export_time", ">u4"), ("sequence", ">u4"),
                          ("domain", ">u4"), ("set_id", ">u2"), ("set_length", ">u2")])  # Message + Set header
_U32_LIMIT = 1 << 32


class IpfixEncodeError(ValueError):
    """A kflow value IPFIX cannot carry (e.g. a time before 1970 or after 2106 in a 4-byte seconds field)."""


@dataclass
class EncodedRecords:
    """Data records of one batch: the fixed parts (one structured row each), which dictionary name each of
    the 13 name elements holds, the dictionary (each used name length-prefixed once, back to back) and each
    record's byte length."""

    fixed: np.ndarray
    names: np.ndarray  # (count, 13) indexes into the batch's strings
    dictionary: bytes
    name_start: np.ndarray  # per string of the batch: where its encoded form starts in `dictionary`
    name_bytes: np.ndarray  # and its length (0 for strings no record uses)
    lengths: np.ndarray

    @property
    def count(self) -> int:
        return len(self.fixed)


@dataclass
class Messages:
    """IPFIX Messages of one batch, framed once for every collector: back to back in `data`."""

    data: bytes
    ends: list  # where each Message ends in `data`
    records: list  # data records in each Message

    def __len__(self) -> int:
        return len(self.ends)

    def __iter__(self):
        """(Message, data records in it) for each Message."""
        return iter([(self.data[a:b], n) for a, b, n in zip([0] + self.ends[:-1], self.ends, self.records)])

    def view(self, index: int) -> memoryview:
        return memoryview(self.data)[self.ends[index - 1] if index else 0:self.ends[index]]


def _ints(values, n: int, dtype, element: str) -> np.ndarray:
    try:
        return typed(values[:n], dtype, element)
    except KflowEncodeError:
        raise IpfixEncodeError(f"a value of {element} does not fit its element") from None


def _seconds(values: np.ndarray, element: str) -> np.ndarray:
    if len(values) and (values.min() < 0 or values.max() >= _U32_LIMIT):
        raise IpfixEncodeError(f"a value of {element} does not fit its 4 bytes (a time before 1970 or after 2106)")
    return values


def _total(columns: dict, a: str, b: str, n: int, element: str) -> np.ndarray:
    x, y = _ints(columns[a], n, np.uint64, element), _ints(columns[b], n, np.uint64, element)
    total = x + y
    if np.any(total < x):
        raise IpfixEncodeError(f"a value of {element} does not fit its 8 bytes")
    return total


def _index_of(strings, value: str) -> int:
    try:
        return strings.index(value)
    except ValueError:
        return -1


def fixed_part(columns: dict, idx: np.ndarray, local_vnic: str, observation_point: int | None) -> np.ndarray:
    """The fixed part of every record (FIXED_FIELDS, then observationPointId if given) as big-endian rows."""
    n, strings = len(idx), list(columns["strings"])
    rec = np.empty(n, FIXED_DTYPE if observation_point is None else FIXED_DTYPE_WITH_POINT)
    rec["octetDeltaCount"] = _total(columns, "in_bytes", "out_bytes", n, "octetDeltaCount")
    rec["packetDeltaCount"] = _total(columns, "in_pkts", "out_pkts", n, "packetDeltaCount")
    starts = _seconds(_ints(columns["timestamp"], n, np.int64, "flowStartSeconds"), "flowStartSeconds")
    end_of = np.zeros(len(strings), np.int64)  # the end time string (STR01) of a record, parsed once per string
    for i in np.flatnonzero(np.bincount(idx[:, 1], minlength=len(strings))):
        end_of[i] = epoch_seconds(strings[i]) or 0
    ends = _seconds(np.maximum(end_of[idx[:, 1]], starts), "flowEndSeconds")  # missing end = start
    rec["flowStartSeconds"], rec["flowEndSeconds"] = starts, ends
    rec["flowStartMilliseconds"], rec["flowEndMilliseconds"] = starts * 1000, ends * 1000
    for element, name, dtype in (("sourceIPv4Address", "src_addr", np.uint32),
                                 ("destinationIPv4Address", "dst_addr", np.uint32),
                                 ("sourceTransportPort", "src_port", np.uint16),
                                 ("destinationTransportPort", "dst_port", np.uint16),
                                 ("protocolIdentifier", "protocol", np.uint8)):
        rec[element] = _ints(columns[name], n, dtype, element)
    # The local vNIC is the observation point: a record whose source vNIC is it leaves it (egress).
    egress = idx[:, 10] == _index_of(strings, local_vnic)
    rec["flowDirection"] = np.where(egress, EGRESS, INGRESS)
    # Source = initiator exactly when "leaves the local vNIC" equals "the connection is outbound" (STR18).
    outbound = idx[:, 18] == _index_of(strings, "outbound")
    rec["biflowDirection"] = np.where(egress == outbound, INITIATOR, REVERSE_INITIATOR)
    action = idx[:, 12]
    rec["forwardingStatus"] = np.where(action == _index_of(strings, "accepted"), FORWARDED,
                                       np.where(action == _index_of(strings, "rejected"), DROPPED_ACL_DENY,
                                                STATUS_UNKNOWN))
    if observation_point is not None:
        rec[OBSERVATION_POINT.name] = observation_point
    return rec


def encode_records(columns: dict, count: int, local_vnic: str, observation_point: int | None = None
                   ) -> EncodedRecords:
    """Data records (TEMPLATE_FIELDS) of the first `count` kflow records of `columns` (lists or arrays)."""
    strings = columns["strings"]
    idx = _ints(columns["custom_idx"], count * N_CUSTOM, np.int64, "custom_idx").reshape(count, N_CUSTOM)
    fixed = fixed_part(columns, idx, local_vnic, observation_point)
    names = idx[:, _STRING_COLS]
    used = np.flatnonzero(np.bincount(names.ravel(), minlength=len(strings)))
    encoded = [varlen(cut_utf8(strings[i])) for i in used]  # each used name once
    name_bytes = np.zeros(len(strings), np.int64)
    name_bytes[used] = [len(e) for e in encoded]
    name_start = np.zeros(len(strings), np.int64)
    name_start[used] = np.cumsum(name_bytes[used]) - name_bytes[used]
    lengths = fixed.itemsize + name_bytes[names].sum(axis=1)
    return EncodedRecords(fixed, names, b"".join(encoded), name_start, name_bytes, lengths)


def _cuts(lengths: np.ndarray, budget: int) -> list[int]:
    """Where each Message's records end: greedily as many whole records as fit `budget` bytes."""
    ends = np.cumsum(lengths).tolist()
    cuts, start, before = [], 0, 0
    while start < len(ends):
        stop = bisect_right(ends, before + budget, lo=start)
        if stop == start:
            raise ValueError(f"one IPFIX record of {int(lengths[start])} bytes does not fit {budget} bytes")
        cuts.append(stop)
        before, start = ends[stop - 1], stop
    return cuts


def frame_messages(records: EncodedRecords, domain: int, first_sequence: int, export_time: int,
                   max_bytes: int = UDP_MAX_BYTES) -> Messages:
    """Every record in Messages of at most `max_bytes` each. The sequence number of each Message counts the
    data records of the domain sent before it (RFC 7011 §3.1)."""
    n = records.count
    if not n:
        return Messages(b"", [], [])
    cuts = _cuts(records.lengths, max_bytes - HEADERS_DTYPE.itemsize)
    firsts = np.array([0] + cuts[:-1], np.int64)
    counts = np.diff(np.array([0] + cuts, np.int64))
    body = np.add.reduceat(records.lengths, firsts)
    heads = np.empty(len(cuts), HEADERS_DTYPE)
    heads["version"], heads["length"], heads["export_time"] = VERSION, body + HEADERS_DTYPE.itemsize, export_time
    heads["sequence"], heads["domain"] = (first_sequence + firsts) & 0xFFFFFFFF, domain & 0xFFFFFFFF
    heads["set_id"], heads["set_length"] = TEMPLATE_ID, body + SET_HEADER.size
    return Messages(_gather(records, heads, firsts), np.cumsum(body + HEADERS_DTYPE.itemsize).tolist(),
                    counts.tolist())


def _gather(records: EncodedRecords, heads: np.ndarray, firsts: np.ndarray) -> bytes:
    """All Messages back to back, written with one gather: each Message's header, then each of its records'
    fixed part and 13 names."""
    n, width = records.count, records.fixed.itemsize
    dictionary_at, heads_at = n * width, n * width + len(records.dictionary)
    source = np.concatenate([records.fixed.view(np.uint8).ravel(), np.frombuffer(records.dictionary, np.uint8),
                             heads.view(np.uint8).ravel()])
    piece_at = np.empty((n, 1 + len(_STRING_COLS)), np.int64)  # where each piece of each record is in `source`
    piece_at[:, 0] = np.arange(n, dtype=np.int64) * width
    piece_at[:, 1:] = dictionary_at + records.name_start[records.names]
    piece_len = np.empty_like(piece_at)
    piece_len[:, 0], piece_len[:, 1:] = width, records.name_bytes[records.names]
    header_at = heads_at + np.arange(len(heads), dtype=np.int64) * HEADERS_DTYPE.itemsize
    at = np.insert(piece_at.ravel(), firsts * piece_at.shape[1], header_at)
    length = np.insert(piece_len.ravel(), firsts * piece_at.shape[1], HEADERS_DTYPE.itemsize)
    out_at = np.cumsum(length) - length
    return source[np.repeat(at - out_at, length) + np.arange(int(length.sum()), dtype=np.int64)].tobytes()
