"""The IPFIX referee of the demo and the benchmark: what nfcapd's socket says (/proc/net/udp), what nfdump's CSV
holds, and owed records against received ones (lost, duplicates, unexpected, per-object receive time)."""
from __future__ import annotations

import pytest

from devstack.synth import generator
from devstack.nfcapd import read_csv, sample_line, udp_socket_stats
from devstack.referee import NFDUMP_FIELDS, compare_collector, owed_ipfix, received_at
from devstack.synth.worldgen import build_world

PROC_NET_UDP = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 1392: 00000000:B2E7 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 12289 2 000000001675b5c9 0
11719: 0100007F:DB3E 00000000:0000 07 00000000:00001140 00:00000000 00000000     0        0 10237 2 000000007ee7d6ab 17
"""


def test_socket_stats_of_the_collector_port_come_from_proc_net_udp():
    assert udp_socket_stats(PROC_NET_UDP, 0xDB3E) == {"rx_queue": 0x1140, "drops": 17}
    assert udp_socket_stats(PROC_NET_UDP, 0xB2E7) is None  # bound to 0.0.0.0, not nfcapd's 127.0.0.1
    assert udp_socket_stats(PROC_NET_UDP, 4739) is None


def test_nfdump_csv_rows_leave_out_the_summary_and_read_as_a_sample_line():
    text = ("ts,te,sa,da,sp,dp,pr,ipkt,ibyt,dir,tr\n"
            "2024-05-14 09:05:27,2024-05-14 09:05:29,10.240.0.4,161.26.0.6,41944,123,UDP,1,76,1,"
            "2026-12-02 06:30:09.864\n"
            "\nSummary\nflows,bytes\n2,3\n")
    rows = read_csv(text)
    assert len(rows) == 1
    assert sample_line(rows[0]) == "2024-05-14 09:05:27 UDP 10.240.0.4:41944 -> 161.26.0.6:123 1 pkts 76 bytes"
    assert received_at(rows[0]) == pytest.approx(1796193009.864)
    assert received_at({"tr": ""}) == 0.0


@pytest.fixture(scope="module")
def objects():
    objs = generator.generate_objects(build_world(seed=1), objects=6, seed=4, mean_flows=10, empty_share=0.0)
    return [o for o in objs if o.kind == "good"][:3]


def as_rows(records: list[dict], tr: str = "2026-12-02 06:30:09.000") -> list[dict]:
    return [dict({k: r[k] for k in NFDUMP_FIELDS}, tr=tr) for r in records]


def test_every_owed_record_received_once_is_neither_lost_nor_doubled(objects):
    owed = [r for o in objects for r in owed_ipfix(o)]
    assert len(owed) == sum(o.chf_count for o in objects)
    v = compare_collector(objects, as_rows(owed))
    assert (v.owed, v.received, v.lost, v.duplicates, v.unexpected) == (len(owed), len(owed), 0, 0, 0)
    assert set(v.last_received_by_object) == {o.key for o in objects}


def test_missing_doubled_and_foreign_records_are_counted_apart(objects):
    owed = [r for o in objects for r in owed_ipfix(o)]
    foreign = dict(owed[0], sa="192.0.2.1")
    rows = as_rows(owed[2:]) + as_rows(owed[2:3]) + as_rows([foreign])
    v = compare_collector(objects, rows)
    assert (v.owed, v.received, v.lost, v.duplicates, v.unexpected) == (len(owed), len(owed), 2, 1, 1)


def test_an_object_is_received_when_its_last_record_is(objects):
    first = owed_ipfix(objects[0])
    rows = as_rows(first[:1], "2026-12-02 06:30:09.000") + as_rows(first[1:], "2026-12-02 06:30:11.500")
    v = compare_collector(objects[:1], rows)
    assert v.last_received_by_object == {objects[0].key: pytest.approx(1796193011.5)}
