"""IPFIX (RFC 7011) encoder: kflow batches -> IPFIX Messages for any flow collector (docs/ipfix.md).

No kept Python IPFIX library fits: `ipfix` (PyPI, last release 2014) is unmaintained, `netflow`, `netflume` and
`nettail` are collectors/parsers without an exporter. So the wire format is written here, with byte-level
tests against RFC 7011's own examples (tests/unit/test_ipfix_encoder.py).

One Template (ID 256) per Observation Domain: fixed-width standard Information Elements first, then the IBM
names as variable-length strings under one enterprise number (`PEN`). Batch path (`encode_records`): the
fixed-width part of every record is written column by column into one buffer with C-level primitives
(`array` + byte-swap + strided `memoryview` assignment, as connectors/kflow.py does); each distinct custom
string is length-prefixed once (RFC 7011 §7) and records are joined from those pieces — no per-record
`struct.pack`. `frame_messages` cuts the records into Messages of at most `max_bytes` each.
"""
from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from operator import add, eq

from streams.flowlog import epoch_seconds

VERSION = 10
TEMPLATE_SET_ID = 2
TEMPLATE_ID = 256
VARIABLE = 0xFFFF  # field length of a variable-length Information Element (RFC 7011 §7)
ENTERPRISE_BIT = 0x8000
# Private Enterprise Number of the IBM elements. 32473 is IANA's "Example Enterprise Number for Documentation
# Use" (RFC 5612): a PLACEHOLDER until blueflow has a PEN registered with IANA. It cannot collide with a real
# vendor's elements, but it is not reserved for us either; collectors must be told about it (docs/ipfix.md).
PEN = 32473
MAX_STRING_BYTES = 100  # IBM names are at most 63 characters; the cap keeps one record < 1400 bytes
MESSAGE_HEADER = struct.Struct("!HHIII")  # version, length, export time, sequence number, domain
SET_HEADER = struct.Struct("!HH")
UDP_MAX_BYTES = 1400  # a path-MTU-safe datagram
TCP_MAX_BYTES = 65000  # Message length is 16 bits
# forwardingStatus (IE 89) values from IANA's registry: "Forwarded, unknown reason" / "Dropped, ACL deny"
FORWARDED, DROPPED_ACL_DENY, STATUS_UNKNOWN = 64, 129, 0
INGRESS, EGRESS = 0, 1  # flowDirection (IE 61) at the observation point, the vNIC
INITIATOR, REVERSE_INITIATOR = 1, 2  # biflowDirection (IE 239): is the source the connection's initiator?


@dataclass(frozen=True)
class Field:
    name: str
    ie: int
    length: int
    pen: int = 0
    column: str = ""  # kflow source: an integer column, or STRnn for a custom string

    def specifier(self) -> bytes:
        """The Field Specifier of RFC 7011 §3.2 (enterprise bit and number when `pen`)."""
        if self.pen:
            return struct.pack("!HHI", self.ie | ENTERPRISE_BIT, self.length, self.pen)
        return struct.pack("!HH", self.ie, self.length)


# Record layout: fixed part (56 bytes, every multi-byte field aligned to its size), then the strings.
# Times are sent twice: flowStart/EndSeconds, and flowStart/EndMilliseconds because nfdump 1.7 (Debian 12's)
# reads only the latter; IBM's times have whole seconds, so both say the same.
FIXED_FIELDS = (
    Field("octetDeltaCount", 1, 8, column="in_bytes+out_bytes"),
    Field("packetDeltaCount", 2, 8, column="in_pkts+out_pkts"),
    Field("flowStartMilliseconds", 152, 8, column="timestamp"),
    Field("flowEndMilliseconds", 153, 8, column="STR01"),
    Field("sourceIPv4Address", 8, 4, column="src_addr"),
    Field("destinationIPv4Address", 12, 4, column="dst_addr"),
    Field("flowStartSeconds", 150, 4, column="timestamp"),
    Field("flowEndSeconds", 151, 4, column="STR01"),
    Field("sourceTransportPort", 7, 2, column="src_port"),
    Field("destinationTransportPort", 11, 2, column="dst_port"),
    Field("protocolIdentifier", 4, 1, column="protocol"),
    Field("flowDirection", 61, 1, column="STR10"),
    Field("biflowDirection", 239, 1, column="STR18"),
    Field("forwardingStatus", 89, 1, column="STR12"),
)
FIXED_BYTES = sum(f.length for f in FIXED_FIELDS)
IBM_FIELDS = tuple(Field(name, ie, VARIABLE, PEN, column) for ie, (name, column) in enumerate((
    ("ibmSourceRegion", "STR02"), ("ibmDestinationRegion", "STR03"),
    ("ibmSourceZone", "STR06"), ("ibmDestinationZone", "STR14"),
    ("ibmSourceVpc", "STR07"), ("ibmDestinationVpc", "STR15"),
    ("ibmSourceSubnet", "STR08"), ("ibmDestinationSubnet", "STR16"),
    ("ibmSourceInstance", "STR05"), ("ibmDestinationInstance", "STR13"),
    ("ibmSourceVnic", "STR10"), ("ibmDestinationVnic", "STR17"),
    ("ibmAccount", "STR04"),
), start=1))
TEMPLATE_FIELDS = FIXED_FIELDS + IBM_FIELDS
N_CUSTOM = 19
_STRING_COLS = tuple(int(f.column[3:]) for f in IBM_FIELDS)
_BIG_ENDIAN_HOST = sys.byteorder == "big"


# ---------------------------------------------------------------- generic pieces (RFC 7011 §3)
def set_bytes(set_id: int, body: bytes) -> bytes:
    return SET_HEADER.pack(set_id, SET_HEADER.size + len(body)) + body


def template_set(template_id: int, fields) -> bytes:
    """A Template Set with one Template Record (RFC 7011 §3.4.1)."""
    record = struct.pack("!HH", template_id, len(fields)) + b"".join(f.specifier() for f in fields)
    return set_bytes(TEMPLATE_SET_ID, record)


def message(domain: int, sequence: int, export_time: int, sets: bytes) -> bytes:
    """An IPFIX Message: the 16-byte header (RFC 7011 §3.1) followed by `sets`."""
    length = MESSAGE_HEADER.size + len(sets)
    if length > 0xFFFF:
        raise ValueError(f"IPFIX message of {length} bytes is longer than 65535")
    return MESSAGE_HEADER.pack(VERSION, length, export_time & 0xFFFFFFFF, sequence & 0xFFFFFFFF,
                               domain & 0xFFFFFFFF) + sets


def varlen(value: bytes) -> bytes:
    """A variable-length value (RFC 7011 §7): 1-byte length below 255, else 255 and a 2-byte length."""
    if len(value) < 255:
        return bytes((len(value),)) + value
    return b"\xff" + struct.pack("!H", len(value)) + value


def cut_utf8(text: str, limit: int = MAX_STRING_BYTES) -> bytes:
    data = text.encode("utf-8")
    return data if len(data) <= limit else data[:limit].decode("utf-8", "ignore").encode("utf-8")


TEMPLATE_SET = template_set(TEMPLATE_ID, TEMPLATE_FIELDS)


def template_message(domain: int, sequence: int, export_time: int) -> bytes:
    return message(domain, sequence, export_time, TEMPLATE_SET)


# ---------------------------------------------------------------- the batch path
@dataclass
class EncodedRecords:
    """Data records of one batch, each as bytes (TEMPLATE_FIELDS order), and each one's byte length."""

    records: list
    lengths: list

    @property
    def count(self) -> int:
        return len(self.records)


class IpfixEncodeError(ValueError):
    """A kflow value IPFIX cannot carry (e.g. a time before 1970 or after 2106 in a 4-byte seconds field)."""


_OFFSETS = dict(zip((f.name for f in FIXED_FIELDS), accumulate((f.length for f in FIXED_FIELDS), initial=0)))
_FORMATS = {8: "Q", 4: "I", 2: "H", 1: "B"}
_LENGTHS = {f.name: f.length for f in FIXED_FIELDS}


def _put(view: memoryview, name: str, values) -> None:
    """Write `values` big-endian as element `name` of every FIXED_BYTES-long record of `view`."""
    fmt, size = _FORMATS[_LENGTHS[name]], _LENGTHS[name]
    try:
        column = array(fmt, values)
    except OverflowError:
        raise IpfixEncodeError(f"a value of {name} does not fit its {size} bytes") from None
    if not _BIG_ENDIAN_HOST and size > 1:
        column.byteswap()
    view.cast(fmt)[_OFFSETS[name] // size::FIXED_BYTES // size] = column


def _index_of(strings: list, value: str) -> int:
    try:
        return strings.index(value)
    except ValueError:
        return -1


def fixed_part(columns: dict, n: int, local_vnic: str) -> bytes:
    """The fixed part of n records, concatenated (layout: FIXED_FIELDS)."""
    strings, idx = columns["strings"], columns["custom_idx"]
    buf = bytearray(n * FIXED_BYTES)
    view = memoryview(buf)
    _put(view, "octetDeltaCount", map(add, columns["in_bytes"][:n], columns["out_bytes"][:n]))
    _put(view, "packetDeltaCount", map(add, columns["in_pkts"][:n], columns["out_pkts"][:n]))
    starts = columns["timestamp"][:n]
    end_of = [epoch_seconds(s) or 0 for s in strings]  # per distinct string; missing end = start
    ends = list(map(max, map(end_of.__getitem__, idx[1:n * N_CUSTOM:N_CUSTOM]), starts))
    _put(view, "flowStartSeconds", starts)
    _put(view, "flowEndSeconds", ends)
    _put(view, "flowStartMilliseconds", map((1000).__mul__, starts))
    _put(view, "flowEndMilliseconds", map((1000).__mul__, ends))
    _put(view, "sourceIPv4Address", columns["src_addr"][:n])
    _put(view, "destinationIPv4Address", columns["dst_addr"][:n])
    _put(view, "sourceTransportPort", columns["src_port"][:n])
    _put(view, "destinationTransportPort", columns["dst_port"][:n])
    _put(view, "protocolIdentifier", columns["protocol"][:n])
    # The local vNIC is the observation point: a record whose source vNIC is it leaves it (egress).
    egress = list(map(_index_of(strings, local_vnic).__eq__, idx[10:n * N_CUSTOM:N_CUSTOM]))
    _put(view, "flowDirection", egress)
    # Source = initiator exactly when "leaves the local vNIC" equals "the connection is outbound" (STR18).
    outbound = map(_index_of(strings, "outbound").__eq__, idx[18:n * N_CUSTOM:N_CUSTOM])
    _put(view, "biflowDirection", map((REVERSE_INITIATOR, INITIATOR).__getitem__, map(eq, egress, outbound)))
    status_of = [FORWARDED if s == "accepted" else DROPPED_ACL_DENY if s == "rejected" else STATUS_UNKNOWN
                 for s in strings]
    _put(view, "forwardingStatus", map(status_of.__getitem__, idx[12:n * N_CUSTOM:N_CUSTOM]))
    return bytes(buf)


def encode_records(columns: dict, count: int, local_vnic: str) -> EncodedRecords:
    """Data records (TEMPLATE_FIELDS) of the first `count` kflow records of `columns`."""
    if not count:
        return EncodedRecords([], [])
    fixed = fixed_part(columns, count, local_vnic)
    rows = map(fixed.__getitem__, map(slice, range(0, len(fixed), FIXED_BYTES),
                                      range(FIXED_BYTES, len(fixed) + 1, FIXED_BYTES)))
    encoded = [varlen(cut_utf8(s)) for s in columns["strings"]]  # each distinct string once
    idx = columns["custom_idx"]
    strings = (map(encoded.__getitem__, idx[col:count * N_CUSTOM:N_CUSTOM]) for col in _STRING_COLS)
    records = list(map(b"".join, zip(rows, *strings)))
    return EncodedRecords(records, list(map(len, records)))


def frame_messages(records: EncodedRecords, domain: int, first_sequence: int, export_time: int,
                   max_bytes: int = UDP_MAX_BYTES) -> list[tuple[bytes, int]]:
    """(Message, data records in it) for every record, each Message at most `max_bytes` long. The sequence
    number of each Message counts the data records of the domain sent before it (RFC 7011 §3.1)."""
    overhead = MESSAGE_HEADER.size + SET_HEADER.size
    budget = max_bytes - overhead
    ends = list(accumulate(records.lengths))
    out, start, sent_bytes = [], 0, 0
    while start < records.count:
        stop = bisect_right(ends, sent_bytes + budget, lo=start)
        if stop == start:
            raise ValueError(f"one IPFIX record of {records.lengths[start]} bytes does not fit {max_bytes}")
        body = set_bytes(TEMPLATE_ID, b"".join(records.records[start:stop]))
        out.append((message(domain, first_sequence + start, export_time, body), stop - start))
        sent_bytes, start = ends[stop - 1], stop
    return out
