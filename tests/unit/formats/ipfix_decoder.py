"""An IPFIX (RFC 7011) decoder used only by the tests: written from the RFC, independently of the encoder's
batch path, so that what the encoder writes is read back field by field (including enterprise-specific and
variable-length elements, which nfdump does not print)."""
from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field


@dataclass
class Message:
    version: int
    length: int
    export_time: int
    sequence: int
    domain: int
    templates: dict = field(default_factory=dict)  # template id -> [(ie, length, pen)]
    records: list = field(default_factory=list)  # dicts keyed by (pen, ie)


def _value(raw: bytes, ie: int, pen: int):
    if pen:
        return raw.decode("utf-8")
    if ie in (8, 12, 15):
        return str(ipaddress.IPv4Address(raw))
    return int.from_bytes(raw, "big")


def _records(body: bytes, fields) -> list[dict]:
    out, pos = [], 0
    min_len = sum(1 if length == 0xFFFF else length for _, length, _ in fields)
    while len(body) - pos >= min_len and min_len:
        record = {}
        for ie, length, pen in fields:
            if length == 0xFFFF:
                length = body[pos]
                pos += 1
                if length == 255:
                    length = struct.unpack_from("!H", body, pos)[0]
                    pos += 2
            record[(pen, ie)] = _value(body[pos:pos + length], ie, pen)
            pos += length
        out.append(record)
    return out


def _template(body: bytes) -> tuple[int, list]:
    tid, count = struct.unpack_from("!HH", body, 0)
    pos, fields = 4, []
    for _ in range(count):
        ie, length = struct.unpack_from("!HH", body, pos)
        pos += 4
        pen = 0
        if ie & 0x8000:
            ie &= 0x7FFF
            pen = struct.unpack_from("!I", body, pos)[0]
            pos += 4
        fields.append((ie, length, pen))
    return tid, fields


def decode(data: bytes, templates: dict) -> Message:
    """One Message; `templates` (id -> fields) is read and updated, as a collector's template cache."""
    version, length, export_time, sequence, domain = struct.unpack_from("!HHIII", data, 0)
    assert version == 10 and length == len(data), (version, length, len(data))
    msg = Message(version, length, export_time, sequence, domain)
    pos = 16
    while pos < length:
        set_id, set_len = struct.unpack_from("!HH", data, pos)
        assert set_len >= 4 and pos + set_len <= length
        body = data[pos + 4:pos + set_len]
        if set_id == 2:
            tid, fields = _template(body)
            templates[(domain, tid)] = fields
            msg.templates[tid] = fields
        elif set_id >= 256:
            msg.records.extend(_records(body, templates[(domain, set_id)]))
        pos += set_len
    return msg


def decode_stream(data: bytes, templates: dict | None = None) -> list[Message]:
    """Every Message of a TCP byte stream (Messages back to back)."""
    templates = {} if templates is None else templates
    out, pos = [], 0
    while pos < len(data):
        length = struct.unpack_from("!H", data, pos + 2)[0]
        out.append(decode(data[pos:pos + length], templates))
        pos += length
    return out
