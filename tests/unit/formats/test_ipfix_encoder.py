"""streams/formats/kflow/ipfix.py byte by byte: RFC 7011's Appendix A examples, §3.2 enterprise Field Specifiers, §7
variable-length values, and the batch path read back by the tests' own decoder against the kflow columns."""
from __future__ import annotations

import random
import socket
import struct

import pytest

from streams.formats.kflow import ipfix, ipfix_template
from streams.formats.kflow.ipfix_template import Field
from tests.unit.formats.ipfix_decoder import decode

# RFC 7011 Appendix A.2.1: Template 256 = sourceIPv4Address, destinationIPv4Address, ipNextHopIPv4Address,
# packetDeltaCount and octetDeltaCount, each 4 octets (reduced-size counters).
RFC_FIELDS = (Field("sourceIPv4Address", 8, 4), Field("destinationIPv4Address", 12, 4),
              Field("ipNextHopIPv4Address", 15, 4), Field("packetDeltaCount", 2, 4), Field("octetDeltaCount", 1, 4))
RFC_TEMPLATE_SET = bytes.fromhex("0002 001c 0100 0005 0008 0004 000c 0004 000f 0004 0002 0004 0001 0004")
# Appendix A.3: the Data Set of that template with its three records.
RFC_RECORDS = (("192.0.2.12", "192.0.2.254", "192.0.2.1", 5009, 5344385),
               ("192.0.2.27", "192.0.2.23", "192.0.2.2", 748, 388934),
               ("192.0.2.56", "192.0.2.65", "192.0.2.3", 5, 6534))
RFC_DATA_SET = bytes.fromhex("0100 0040"
                             "c000020c c00002fe c0000201 00001391 00518c81"
                             "c000021b c0000217 c0000202 000002ec 0005ef46"
                             "c0000238 c0000241 c0000203 00000005 00001986")


def test_rfc7011_a21_template_set():
    assert ipfix_template.template_set(256, RFC_FIELDS) == RFC_TEMPLATE_SET


def test_rfc7011_a3_data_set_and_message_header():
    body = b"".join(socket.inet_aton(s) + socket.inet_aton(d) + socket.inet_aton(n) + struct.pack("!II", p, o)
                    for s, d, n, p, o in RFC_RECORDS)
    assert ipfix_template.set_bytes(256, body) == RFC_DATA_SET
    msg = ipfix_template.message(domain=12345, sequence=7, export_time=1700000000, sets=RFC_TEMPLATE_SET + RFC_DATA_SET)
    assert msg[:16] == struct.pack("!HHIII", 10, 16 + 28 + 64, 1700000000, 7, 12345)
    decoded = decode(msg, {})
    assert decoded.templates[256] == [(8, 4, 0), (12, 4, 0), (15, 4, 0), (2, 4, 0), (1, 4, 0)]
    assert [tuple(r.values()) for r in decoded.records] == [tuple(r) for r in RFC_RECORDS]


def test_enterprise_field_specifier_and_variable_length_encoding():
    # §3.2: E bit set on the element id, then the 4-octet enterprise number; §7: length 65535 = variable.
    assert Field("x", 5, 0xFFFF, 32473).specifier() == bytes.fromhex("8005 ffff 00007ed9")
    assert Field("y", 150, 4).specifier() == bytes.fromhex("0096 0004")
    assert ipfix_template.varlen(b"") == b"\x00"
    assert ipfix_template.varlen(b"a" * 254) == b"\xfe" + b"a" * 254
    assert ipfix_template.varlen(b"a" * 255) == b"\xff\x00\xff" + b"a" * 255  # 255 or more: 255 + 2-octet length
    assert ipfix_template.varlen(b"a" * 300) == b"\xff\x01\x2c" + b"a" * 300


def test_blueflow_template_lists_every_element_once():
    t = decode(ipfix_template.template_message(9, 0, 1), {}).templates[ipfix_template.TEMPLATE_ID]
    standard = [(ie, length) for ie, length, pen in t if not pen]
    assert standard == [(1, 8), (2, 8), (152, 8), (153, 8), (8, 4), (12, 4), (150, 4), (151, 4), (7, 2), (11, 2),
                        (4, 1), (61, 1), (239, 1), (89, 1)]
    assert [(ie, length, pen) for ie, length, pen in t if pen] == [(i, 0xFFFF, 32473) for i in range(1, 14)]
    assert len(ipfix_template.TEMPLATE_SET) == 4 + 4 + 14 * 4 + 13 * 8


STRINGS = ["", "accepted", "rejected", "inbound", "outbound", "us-south", "vnic-local", "vnic-remote",
           "2024-05-01T10:00:09Z", "2024-05-01T10:05:00Z", "ünïcødé ☃ 日本語" * 10, "vpc-a"]


def make_columns(n: int, seed: int = 1) -> dict:
    r = random.Random(seed)
    cols = {k: [r.randint(0, 2 ** 32 - 1) for _ in range(n)] for k in ("src_addr", "dst_addr")}
    cols.update({k: [r.randint(0, 65535) for _ in range(n)] for k in ("src_port", "dst_port")})
    cols["protocol"] = [r.choice([1, 6, 17, 255]) for _ in range(n)]
    out = [r.random() < 0.5 for _ in range(n)]
    for side, mine in (("out", True), ("in", False)):
        cols[f"{side}_bytes"] = [r.randint(0, 2 ** 40) if o is mine else 0 for o in out]
        cols[f"{side}_pkts"] = [r.randint(0, 2 ** 20) if o is mine else 0 for o in out]
    cols["timestamp"] = [1714557600 + r.randint(0, 10) for _ in range(n)]
    cols["strings"] = STRINGS
    cols["custom_idx"] = [r.randrange(len(STRINGS)) for _ in range(19 * n)]
    return cols


def expected(cols: dict, i: int, local: str) -> dict:
    """One record's elements computed straight from the columns, as docs/ipfix.md states them."""
    s = [cols["strings"][j] for j in cols["custom_idx"][19 * i:19 * i + 19]]
    end = {"2024-05-01T10:00:09Z": 1714557609, "2024-05-01T10:05:00Z": 1714557900}.get(s[1], 0)
    egress = s[10] == local
    ip = lambda v: socket.inet_ntoa(struct.pack("!I", v))  # noqa: E731
    rec = {(0, 1): cols["in_bytes"][i] + cols["out_bytes"][i], (0, 2): cols["in_pkts"][i] + cols["out_pkts"][i],
           (0, 8): ip(cols["src_addr"][i]), (0, 12): ip(cols["dst_addr"][i]), (0, 150): cols["timestamp"][i],
           (0, 151): max(end, cols["timestamp"][i]), (0, 152): cols["timestamp"][i] * 1000,
           (0, 153): max(end, cols["timestamp"][i]) * 1000, (0, 7): cols["src_port"][i], (0, 11): cols["dst_port"][i],
           (0, 4): cols["protocol"][i], (0, 61): int(egress),
           (0, 239): 1 if egress == (s[18] == "outbound") else 2,
           (0, 89): {"accepted": 64, "rejected": 129}.get(s[12], 0)}
    for f in ipfix_template.IBM_FIELDS:
        rec[(ipfix_template.PEN, f.ie)] = s[int(f.column[3:])].encode()[:100].decode("utf-8", "ignore")
    return rec


def test_batch_path_gives_every_field_of_every_record_in_messages_of_at_most_1400_bytes():
    cols = make_columns(500)
    records = ipfix.encode_records(cols, 500, "vnic-local")
    messages = ipfix.frame_messages(records, domain=77, first_sequence=1000, export_time=1714560000)
    templates: dict = {}
    decode(ipfix_template.template_message(77, 1000, 0), templates)
    got, sequence = [], 1000
    for raw, count in messages:
        assert len(raw) <= 1400
        msg = decode(raw, templates)
        assert (msg.domain, msg.sequence, msg.export_time, len(msg.records)) == (77, sequence, 1714560000, count)
        sequence += count
        got.extend(msg.records)
    assert len(got) == 500 and sequence == 1500
    assert got == [expected(cols, i, "vnic-local") for i in range(500)]


def test_direction_action_and_times_of_a_forward_and_reverse_pair():
    # An inbound connection seen by vnic-local: forward record remote->local (ingress, source = initiator),
    # reverse record local->remote (egress, source = the target).
    idx = lambda *values: [STRINGS.index(v) for v in values]  # noqa: E731
    row = ["2024-05-01T10:00:09Z", "2024-05-01T10:05:00Z"] + [""] * 8
    forward = idx(*row, "vnic-remote", "", "rejected", "", "", "", "", "vnic-local", "inbound")
    reverse = idx(*row, "vnic-local", "", "rejected", "", "", "", "", "vnic-remote", "inbound")
    cols = {"src_addr": [1, 2], "dst_addr": [2, 1], "src_port": [5555, 22], "dst_port": [22, 5555],
            "protocol": [6, 6], "in_bytes": [100, 0], "in_pkts": [2, 0], "out_bytes": [0, 300], "out_pkts": [0, 3],
            "timestamp": [1714557609, 1714557609], "strings": STRINGS, "custom_idx": forward + reverse}
    [(raw, count)] = ipfix.frame_messages(ipfix.encode_records(cols, 2, "vnic-local"), 1, 0, 0)
    assert count == 2
    templates: dict = {}
    decode(ipfix_template.template_message(1, 0, 0), templates)
    a, b = decode(raw, templates).records
    assert [(r[(0, 61)], r[(0, 239)], r[(0, 89)], r[(0, 1)], r[(0, 2)]) for r in (a, b)] == [
        (ipfix_template.INGRESS, ipfix_template.INITIATOR, ipfix_template.DROPPED_ACL_DENY, 100, 2),
        (ipfix_template.EGRESS, ipfix_template.REVERSE_INITIATOR, ipfix_template.DROPPED_ACL_DENY, 300, 3)]
    assert (a[(0, 150)], a[(0, 151)], a[(0, 152)], a[(0, 153)]) == (1714557609, 1714557900, 1714557609000,
                                                                    1714557900000)


def test_long_names_are_cut_at_a_character_boundary_and_a_record_always_fits_a_datagram():
    cols = make_columns(3)
    cols["custom_idx"] = [STRINGS.index("ünïcødé ☃ 日本語" * 10)] * 57
    records = ipfix.encode_records(cols, 3, "")
    assert max(records.lengths) <= ipfix_template.UDP_MAX_BYTES - 20
    msgs = ipfix.frame_messages(records, 1, 0, 0)
    templates: dict = {}
    decode(ipfix_template.template_message(1, 0, 0), templates)
    name = decode(bytes(msgs.view(0)), templates).records[0][(ipfix_template.PEN, 5)]
    assert len(name.encode()) <= 100 and ("ünïcødé ☃ 日本語" * 10).startswith(name)


def test_a_value_ipfix_cannot_carry_is_an_error_that_names_the_element():
    cols = make_columns(2)
    cols["timestamp"][1] = -1
    with pytest.raises(ipfix.IpfixEncodeError, match="flowStartSeconds"):
        ipfix.encode_records(cols, 2, "")


def test_empty_batch_has_no_message():
    assert len(ipfix.frame_messages(ipfix.encode_records(make_columns(0), 0, ""), 1, 0, 0)) == 0


def test_numpy_columns_as_decoded_from_kafka_give_the_same_bytes_and_messages_are_filled_greedily():
    import numpy as np

    from streams.formats.columns import KFLOW_INT_TYPES

    cols = make_columns(400, seed=7)
    arrays = {k: (np.asarray(v, KFLOW_INT_TYPES[k]) if k in KFLOW_INT_TYPES else v) for k, v in cols.items()}
    arrays["custom_idx"] = np.asarray(cols["custom_idx"], "<u2")
    records = ipfix.encode_records(arrays, 400, "vnic-local")
    messages = ipfix.frame_messages(records, 5, 0, 1714560000)
    assert messages.data == ipfix.frame_messages(ipfix.encode_records(cols, 400, "vnic-local"), 5, 0,
                                                 1714560000).data
    lengths, start = records.lengths.tolist(), 0
    for (raw, count), end in zip(messages, messages.ends):
        assert len(raw) == 20 + sum(lengths[start:start + count]) <= 1400
        if start + count < 400:  # greedy: the next record would not have fit
            assert len(raw) + lengths[start + count] > 1400
        start += count
    assert start == 400 and messages.ends[-1] == len(messages.data)


def test_observation_point_is_appended_to_the_fixed_part_and_the_template():
    cols = make_columns(3)
    point = ipfix_template.kentik_observation_point(70123, 4567)
    assert point == (70123 & 0xFFFF) << 32 | 4567  # ktranslate: low 16 bits of the company id, then the device
    [(raw, count)] = list(ipfix.frame_messages(ipfix.encode_records(cols, 3, "", point), 1, 0, 0))
    templates: dict = {}
    decode(ipfix_template.template_message(1, 0, 0, with_point=True), templates)
    got = decode(raw, templates).records
    assert [r.pop((0, 138)) for r in got] == [point] * 3
    assert got == [expected(cols, i, "") for i in range(3)]
    with pytest.raises(ValueError):
        ipfix_template.kentik_observation_point(1, 2 ** 32)
