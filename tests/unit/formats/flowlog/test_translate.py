"""Unit tests for streams.formats.translate: every rule of spec/kentik.md "Our translation rules"."""
from __future__ import annotations

import gzip
from datetime import datetime
from typing import Mapping, NamedTuple

import orjson
import pytest

from streams.formats.avro import Codec
from streams.formats.columns import pack_kflow_columns, unpack_kflow_columns
from streams.formats.flowlog.flowlog import FLOW_FIELDS, parse_object_key
from tests.unit.formats.flowlog.flowdoc import parse_object_bytes
from tests.unit.formats.test_columns import lists
from streams.state.ipindex import IpIndex
from streams.formats.translate import (
    CUSTOM_COLUMNS, INT_COLUMNS, device_name_for_subnet, local_end, translate_batch,
)

ACCT = "713c783d9a507a53135fe6793c37cc74"
SUBNET_ID = "0727-b3eda4c5-63a5-430e-a2e0-26f22e0d1fdb"
INSTANCE_ID = "0727_8a0f4f09-7b4a-4399-b7af-e96225f6ad4a"
VPC_ID = "r006-f6045065-8a82-44fc-ae1e-4817f499c9c6"
VNIC_ID = "0727-c9ce1904-48ef-4c94-b41f-51c48ccfbee4"
KEY = (
    f"ibm_vpc_flowlogs_v1/account={ACCT}/region=us-south/"
    f"vpc-id=crn%3Av1%3Abluemix%3Apublic%3Ais%3Aus-south%3Aa%2F{ACCT}%3A%3Avpc%3A{VPC_ID}/"
    f"subnet-id=crn%3Av1%3Abluemix%3Apublic%3Ais%3Aus-south-2%3Aa%2F{ACCT}%3A%3Asubnet%3A{SUBNET_ID}/"
    f"endpoint-type=vnics/"
    f"instance-id=crn%3Av1%3Abluemix%3Apublic%3Ais%3Aus-south-2%3Aa%2F{ACCT}%3A%3Ainstance%3A{INSTANCE_ID}/"
    f"vnic-id={VNIC_ID}/record-type=egress/year=2024/month=05/day=14/hour=09/stream-id=20240514T000000Z/"
    "00000001.gz"
)
KEY_INFO = parse_object_key(KEY)
LOCAL_IP = "10.240.64.4"
HEADER = {"capture_start_time": "2024-05-14T09:10:02Z", "capture_end_time": "2024-05-14T09:15:02Z"}

SNAPSHOT = {
    "region": "us-south", "fetched_at": 1.0,
    "vpcs": [{"id": VPC_ID, "crn": "crn:vpc", "name": "prod-vpc"}],
    "subnets": [
        {"id": SUBNET_ID, "crn": "crn:s1", "name": "app-subnet", "cidr": "10.240.64.0/24", "zone": "us-south-2",
         "vpc_id": VPC_ID, "vpc_name": "prod-vpc"},
        {"id": "0727-dbsubnet", "crn": "crn:s2", "name": "db-subnet", "cidr": "10.240.128.0/24",
         "zone": "us-south-3", "vpc_id": VPC_ID, "vpc_name": "prod-vpc"},
    ],
    "endpoints": [
        {"ip": LOCAL_IP, "kind": "nic", "instance_name": "web-1", "instance_id": INSTANCE_ID, "vnic_id": VNIC_ID,
         "subnet_id": SUBNET_ID, "subnet_name": "app-subnet", "vpc_id": VPC_ID, "vpc_name": "prod-vpc",
         "zone": "us-south-2", "region": "us-south"},
        {"ip": "10.240.128.7", "kind": "nic", "instance_name": "db-1", "instance_id": "0727_db",
         "vnic_id": "0727-dbnic", "subnet_id": "0727-dbsubnet", "subnet_name": "db-subnet", "vpc_id": VPC_ID,
         "vpc_name": "prod-vpc", "zone": "us-south-3", "region": "us-south"},
        {"ip": "150.240.1.9", "kind": "load_balancer", "instance_name": "", "instance_id": "", "vnic_id": "",
         "subnet_id": "", "subnet_name": "", "vpc_id": VPC_ID, "vpc_name": "prod-vpc", "zone": "",
         "region": "us-south"},
    ],
}
INDEX = IpIndex.from_snapshots([SNAPSHOT])

LOCAL_NAMES = {"region": "us-south", "zone": "us-south-2", "vpc": "prod-vpc", "subnet": "app-subnet",
               "instance": "web-1", "vnic": VNIC_ID}
DB_NAMES = {"region": "us-south", "zone": "us-south-3", "vpc": "prod-vpc", "subnet": "db-subnet",
            "instance": "db-1", "vnic": "0727-dbnic"}
DBNET_NAMES = {**DB_NAMES, "instance": "", "vnic": ""}
NOBODY = dict.fromkeys(LOCAL_NAMES, "")
LOCAL_FROM_KEY = {"region": "us-south", "zone": "us-south-2", "vpc": VPC_ID, "subnet": SUBNET_ID,
                  "instance": INSTANCE_ID, "vnic": VNIC_ID}


def flow(direction="O", ini=LOCAL_IP, tgt="10.240.128.7", start="2024-05-14T09:11:20Z",
         end="2024-05-14T09:11:21Z", action="accepted", bfi=100, pfi=2, bft=300, pft=3, iport=40000, tport=5432,
         proto=6):
    return {"start_time": start, "end_time": end, "connection_start_time": "2024-05-14T09:00:00Z",
            "direction": direction, "action": action, "initiator_ip": ini, "target_ip": tgt,
            "initiator_port": iport, "target_port": tport, "transport_protocol": proto, "was_initiated": True,
            "was_terminated": False, "bytes_from_initiator": bfi, "packets_from_initiator": pfi,
            "bytes_from_target": bft, "packets_from_target": pft, "cumulative_bytes_from_initiator": bfi,
            "cumulative_packets_from_initiator": pfi, "cumulative_bytes_from_target": bft,
            "cumulative_packets_from_target": pft}


def columns(*flows):
    return {name: [f[name] for f in flows] for name in FLOW_FIELDS}


def custom_values(batch: Mapping, i: int) -> dict[str, str]:
    """The 19 customs of CHF i of a translated batch, by column name."""
    strings = batch["strings"]
    idx = batch["custom_idx"][19 * i:19 * i + 19]
    return {col: strings[j] for col, j in zip(CUSTOM_COLUMNS, idx)}


def run(*flows, index=INDEX, header=HEADER, key=KEY_INFO):
    return translate_batch(key, header, columns(*flows), index)


def row(batch, i):
    return {c: int(batch[c][i]) for c in INT_COLUMNS}


def plain(batch):
    """A translated batch with its numpy columns as lists."""
    return {k: v.tolist() if hasattr(v, "tolist") else v for k, v in batch.items()}


def ends(cv):
    src = {"region": cv["STR02"], "zone": cv["STR06"], "vpc": cv["STR07"], "subnet": cv["STR08"],
           "instance": cv["STR05"], "vnic": cv["STR10"]}
    dst = {"region": cv["STR03"], "zone": cv["STR14"], "vpc": cv["STR15"], "subnet": cv["STR16"],
           "instance": cv["STR13"], "vnic": cv["STR17"]}
    return src, dst


def epoch(ts):
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp())


def ip(s):
    a, b, c, d = map(int, s.split("."))
    return a << 24 | b << 16 | c << 8 | d


# ------------------------------------------------------------------------------- the table, row by row
def test_every_custom_of_an_outbound_flow():
    b = run(flow(direction="O", tgt="10.240.128.7", action="rejected"))
    assert b["flow_count"] == 2 and b["source_flows"] == 1
    fwd, rev = custom_values(b, 0), custom_values(b, 1)
    assert list(fwd) == list(CUSTOM_COLUMNS)
    assert fwd == {
        "STR00": "2024-05-14T09:11:20Z", "STR01": "2024-05-14T09:11:21Z",
        "STR02": "us-south", "STR03": "us-south", "STR04": ACCT,
        "STR05": "web-1", "STR06": "us-south-2", "STR07": "prod-vpc", "STR08": "app-subnet",
        "STR09": "vnics", "STR10": VNIC_ID, "STR11": "egress", "STR12": "rejected",
        "STR13": "db-1", "STR14": "us-south-3", "STR15": "prod-vpc", "STR16": "db-subnet", "STR17": "0727-dbnic",
        "STR18": "outbound",
    }
    # reverse: ends swap, everything else identical (STR18 is the connection's direction on both)
    assert ends(rev) == (DB_NAMES, LOCAL_NAMES)
    for col in ("STR00", "STR01", "STR04", "STR09", "STR11", "STR12", "STR18"):
        assert rev[col] == fwd[col]


def test_inbound_flow_ends_and_direction_word():
    b = run(flow(direction="I", ini="10.240.128.7", tgt=LOCAL_IP))
    fwd, rev = custom_values(b, 0), custom_values(b, 1)
    assert ends(fwd) == (DB_NAMES, LOCAL_NAMES)
    assert ends(rev) == (LOCAL_NAMES, DB_NAMES)
    assert fwd["STR18"] == rev["STR18"] == "inbound"
    assert fwd["STR12"] == "accepted"


@pytest.mark.parametrize("remote,expected", [
    ("10.240.128.7", DB_NAMES),            # exact IP (instance NIC)
    ("10.240.128.99", DBNET_NAMES),        # longest matching subnet CIDR: instance and vNIC stay empty
    ("150.240.1.9", {**NOBODY, "region": "us-south", "vpc": "prod-vpc"}),  # load balancer IP
    ("161.26.0.10", NOBODY),               # unknown: every remote value ""
])
def test_remote_end_exact_cidr_miss(remote, expected):
    b = run(flow(direction="O", tgt=remote))
    assert ends(custom_values(b, 0)) == (LOCAL_NAMES, expected)
    b = run(flow(direction="I", ini=remote, tgt=LOCAL_IP))
    assert ends(custom_values(b, 0)) == (expected, LOCAL_NAMES)


def test_record_type_and_endpoint_type_come_from_the_key():
    key = parse_object_key(KEY.replace("record-type=egress", "record-type=ingress"))
    cv = custom_values(run(flow(), key=key), 0)
    assert cv["STR11"] == "ingress" and cv["STR09"] == "vnics" and cv["STR04"] == ACCT


# ------------------------------------------------------------------------------------ int columns
def test_outbound_placement_and_int_columns():
    b = run(flow(direction="O", ini=LOCAL_IP, tgt="10.240.128.7", bfi=100, pfi=2, bft=300, pft=3,
                 iport=40000, tport=5432, proto=6))
    ts = epoch("2024-05-14T09:11:20Z")
    # forward leaves the local vNIC -> out*
    assert row(b, 0) == {"timestamp": ts, "src_addr": ip(LOCAL_IP), "dst_addr": ip("10.240.128.7"),
                         "src_port": 40000, "dst_port": 5432, "protocol": 6,
                         "in_bytes": 0, "in_pkts": 0, "out_bytes": 100, "out_pkts": 2}
    # reverse arrives at it -> in*
    assert row(b, 1) == {"timestamp": ts, "src_addr": ip("10.240.128.7"), "dst_addr": ip(LOCAL_IP),
                         "src_port": 5432, "dst_port": 40000, "protocol": 6,
                         "in_bytes": 300, "in_pkts": 3, "out_bytes": 0, "out_pkts": 0}


def test_inbound_placement():
    b = run(flow(direction="I", ini="203.0.113.45", tgt=LOCAL_IP, bfi=18234, pfi=61, bft=402117, pft=298,
                 iport=51812, tport=443, proto=17))
    assert row(b, 0) == {"timestamp": epoch("2024-05-14T09:11:20Z"), "src_addr": ip("203.0.113.45"),
                         "dst_addr": ip(LOCAL_IP), "src_port": 51812, "dst_port": 443, "protocol": 17,
                         "in_bytes": 18234, "in_pkts": 61, "out_bytes": 0, "out_pkts": 0}
    assert row(b, 1)["src_addr"] == ip(LOCAL_IP) and row(b, 1)["dst_port"] == 51812
    assert (row(b, 1)["out_bytes"], row(b, 1)["out_pkts"], row(b, 1)["in_bytes"], row(b, 1)["in_pkts"]) == \
        (402117, 298, 0, 0)


@pytest.mark.parametrize("bft,pft,reverse", [(0, 0, False), (300, 3, True), (300, 0, True), (0, 3, True)])
def test_reverse_chf_rule(bft, pft, reverse):
    b = run(flow(bft=bft, pft=pft))
    assert b["flow_count"] == (2 if reverse else 1)
    assert all(len(b[c]) == b["flow_count"] for c in INT_COLUMNS)
    if reverse:
        assert row(b, 1)["in_bytes"] == bft and row(b, 1)["in_pkts"] == pft


def test_forward_always_even_without_initiator_traffic():
    b = run(flow(bfi=0, pfi=0, bft=0, pft=0))
    assert b["flow_count"] == 1 and row(b, 0)["out_bytes"] == 0


def test_mixed_batch_order_forward_block_then_reverse_block():
    flows = [flow(iport=1, bft=0, pft=0), flow(iport=2), flow(direction="I", ini="203.0.113.9", tgt=LOCAL_IP,
                                                             iport=3, bft=0, pft=5)]
    b = run(*flows)
    assert b["flow_count"] == 5 and b["source_flows"] == 3
    assert b["src_port"].tolist() == [1, 2, 3, 5432, 5432]
    assert b["dst_port"][3:].tolist() == [2, 3]
    assert b["in_pkts"].tolist() == [0, 0, 2, 3, 0] and b["out_pkts"].tolist() == [2, 2, 0, 0, 5]
    assert len(b["custom_idx"]) == 19 * 5
    assert custom_values(b, 4)["STR18"] == "inbound" and custom_values(b, 3)["STR18"] == "outbound"


# ------------------------------------------------------------------------------------- timestamps
def test_timestamp_and_time_customs_fall_back_to_capture_times():
    b = run(flow(start="", end=""), flow(start="2024-05-14T09:12:00.750Z", end="2024-05-14T09:12:01Z"))
    assert b["timestamp"][0] == epoch(HEADER["capture_start_time"])
    assert b["timestamp"][1] == epoch("2024-05-14T09:12:00Z")
    cv = custom_values(b, 0)
    assert cv["STR00"] == HEADER["capture_start_time"] and cv["STR01"] == HEADER["capture_end_time"]
    assert custom_values(b, 2)["STR00"] == HEADER["capture_start_time"]  # its reverse too
    assert custom_values(b, 1)["STR00"] == "2024-05-14T09:12:00.750Z"  # as written


def test_header_of_a_parsed_object_times_flows_without_a_start():
    d = {"version": "0.0.1", **HEADER, "flow_logs": [flow(start="")]}
    doc = parse_object_bytes([gzip.compress(orjson.dumps(d))])
    b = translate_batch(KEY_INFO, doc.header, doc.columns, INDEX)
    assert b["timestamp"].tolist() == [epoch(HEADER["capture_start_time"])] * 2


# -------------------------------------------------------------------------------- metadata fallbacks
@pytest.mark.parametrize("index", [None, IpIndex.empty()])
def test_no_metadata_local_end_from_key_remote_empty(index):
    b = run(flow(direction="O", tgt="10.240.128.7"), index=index)
    assert ends(custom_values(b, 0)) == (LOCAL_FROM_KEY, NOBODY)
    assert b["zone"] == "us-south-2"


class FakeSubnet(NamedTuple):
    name: str
    zone: str
    vpc_name: str
    region: str


class FakeIndex:
    """lookup / subnet_info / instance_name, like IpIndex, with canned answers."""

    def __init__(self, subnet=None, instance=None, ends=None):
        self.subnet, self.instance, self.ends = subnet, instance, ends or {}

    def lookup(self, ip):
        return self.ends.get(ip)

    def subnet_info(self, subnet_id):
        return self.subnet if subnet_id == SUBNET_ID else None

    def instance_name(self, instance_id):
        return self.instance if instance_id == INSTANCE_ID else None


@pytest.mark.parametrize("subnet,instance,expected", [
    (FakeSubnet("app-subnet", "us-south-2", "prod-vpc", "us-south"), None,
     {**LOCAL_NAMES, "instance": INSTANCE_ID}),
    (None, "web-1", {**LOCAL_FROM_KEY, "instance": "web-1"}),
    (FakeSubnet("app-subnet", "", "", "us-south"), "web-1",
     {**LOCAL_NAMES, "vpc": VPC_ID, "zone": "us-south-2"}),
    (FakeSubnet("", "us-south-9", "other-vpc", "us-south"), "", {**LOCAL_FROM_KEY, "zone": "us-south-9",
                                                                  "vpc": "other-vpc"}),
])
def test_partial_metadata_each_local_field_falls_back(subnet, instance, expected):
    b = run(flow(), index=FakeIndex(subnet, instance))
    assert local_end(KEY_INFO, FakeIndex(subnet, instance))._asdict() == expected
    assert ends(custom_values(b, 0))[0] == expected


def test_local_zone_from_metadata_beats_crn_location():
    b = run(flow(), index=FakeIndex(FakeSubnet("s", "us-south-1", "v", "us-south")))
    assert custom_values(b, 0)["STR06"] == "us-south-1" and b["zone"] == "us-south-1"


# ------------------------------------------------------------------------------------- device name
@pytest.mark.parametrize("subnet_id,name", [
    (SUBNET_ID, "ibm_0727_b3eda4c5_63a5_430e_a2e0_26f22e0d1fdb"),
    ("0727-ABC.def/ghi:1", "ibm_0727_abc_def_ghi_1"),
    ("already_ok_09", "ibm_already_ok_09"),
    ("zürich", "ibm_z_rich"),
])
def test_device_name_rule(subnet_id, name):
    assert device_name_for_subnet(subnet_id) == name


def test_batch_carries_device_and_local_subnet():
    b = run(flow())
    assert b["device_name"] == "ibm_0727_b3eda4c5_63a5_430e_a2e0_26f22e0d1fdb"
    assert (b["subnet_id"], b["region"], b["zone"]) == (SUBNET_ID, "us-south", "us-south-2")


# ------------------------------------------------------------------------------- shape and encoding
def test_19_customs_always_present_and_dictionary_encoded():
    flows = [flow(tgt=t, bft=b, pft=b) for t in ("10.240.128.7", "10.240.128.99", "8.8.8.8") for b in (0, 10)]
    b = run(*flows)
    n = b["flow_count"]
    assert n == 9
    assert len(b["custom_idx"]) == 19 * n
    assert all(0 <= i < len(b["strings"]) for i in b["custom_idx"])
    assert len(set(b["strings"])) == len(b["strings"])  # each distinct value once
    assert "" in b["strings"]  # empty customs are still sent
    for i in range(n):
        assert len(custom_values(b, i)) == 19


def test_empty_batch():
    b = translate_batch(KEY_INFO, HEADER, {name: [] for name in FLOW_FIELDS}, INDEX)
    assert b["flow_count"] == 0 and len(b["custom_idx"]) == 0 and all(len(b[c]) == 0 for c in INT_COLUMNS)


def test_translated_batch_encodes_as_kflow_batch():
    b = run(flow(), flow(direction="I", ini="203.0.113.45", tgt=LOCAL_IP, bft=0, pft=0))
    device = ("device_name", "subnet_id", "region", "zone", "source_flows")
    part = {"key": KEY, "etag": "e", "size": 1, "last_modified": 0, "chunk": 0, "chunks": 1, "start": 0,
            "flow_count": b["flow_count"], **{k: b[k] for k in device}}
    rec = {"bucket": "flowlogs", "parts": [part], **b}
    c = Codec("kflow_batch")
    out = c.decode(c.encode({**rec, **pack_kflow_columns(b)}))
    columns = lists(unpack_kflow_columns(out, b["flow_count"], 19))
    assert {k: columns[k] if k in columns else out["parts"][0][k] if k in device else out[k] for k in b} == plain(b)
    assert out["parts"] == [part]
