"""IPFIX (RFC 7011) framing and blueflow's one Template (docs/ipfix.md): the Information Elements of a record,
the Template Set, the Message header, variable-length values. The batch encoder that fills the Data Sets is
streams/formats/kflow/ipfix.py.

One Template (ID 256) per Observation Domain: fixed-width standard Information Elements first, then the IBM
names as variable-length strings under one enterprise number (`PEN`). With `observation_point` (the kproxy
option) every record also carries observationPointId (IE 138), packed as ktranslate packs Kentik's company and
device ids.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

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
# kproxy option (docs/ipfix.md): (Kentik company id & 0xFFFF) << 32 | device id, as ktranslate's IPFIX output
OBSERVATION_POINT = Field("observationPointId", 138, 8)


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
TEMPLATE_SET_WITH_POINT = template_set(TEMPLATE_ID, FIXED_FIELDS + (OBSERVATION_POINT,) + IBM_FIELDS)


def template_message(domain: int, sequence: int, export_time: int, with_point: bool = False) -> bytes:
    return message(domain, sequence, export_time, TEMPLATE_SET_WITH_POINT if with_point else TEMPLATE_SET)


def kentik_observation_point(company_id: int, device_id: int) -> int:
    """observationPointId as ktranslate's IPFIX output packs it: low 16 bits of the company id, then the
    32-bit device id."""
    if not 0 <= device_id <= 0xFFFFFFFF or company_id < 0:
        raise ValueError(f"Kentik ids {company_id}:{device_id} do not fit observationPointId "
                         "(device id is 32 bits, company id positive)")
    return (company_id & 0xFFFF) << 32 | device_id
