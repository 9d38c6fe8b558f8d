"""The ipfix sink against a real collector: nfdump's `nfcapd` on 127.0.0.1.

Generated flow-log objects go through the real stage shells (parse → enrich → ipfix sink → finalize); nfcapd
stores what it receives and `nfdump -o csv` must show every owed record — 5-tuple, counters, times, direction —
computed here from the objects' raw JSON (docs/translation.md, not streams/translate.py). nfcapd repeats every
datagram it received (`-R`) to a socket of the test, whose own decoder checks the enterprise elements nfdump
does not print. The stack test does the same with a real worker (`--sink ipfix`) reading the local bucket.

Needs nfdump (`apt-get install nfdump`; .ci/run installs it); skipped with that reason when it is absent.
"""
from __future__ import annotations

import calendar
import csv
import gzip
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import orjson
import pytest

from connectors import ipfix
from devstack import generator
from devstack.world import build_world
from streams.stages import ipfix_sink
from tests.unit.ipfix_decoder import decode
from tests.unit.stages.driver import Driver

pytestmark = pytest.mark.skipif(shutil.which("nfcapd") is None or shutil.which("nfdump") is None,
                                reason="nfdump's nfcapd/nfdump are not installed (apt-get install nfdump; "
                                       ".ci/run installs it on Debian/Ubuntu CI)")
PROTOCOLS = {1: "ICMP", 6: "TCP", 17: "UDP"}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NfCapd:
    """nfcapd on 127.0.0.1:port writing into `flowdir`, repeating every datagram to `self.repeat`."""

    def __init__(self, flowdir: Path):
        self.flowdir = flowdir
        self.port = free_udp_port()
        self.repeat = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.repeat.bind(("127.0.0.1", 0))
        self.repeat.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.repeat.settimeout(0.2)
        self.log = flowdir / "nfcapd.log"
        self.datagrams: list[bytes] = []
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                ["nfcapd", "-b", "127.0.0.1", "-p", str(self.port), "-w", str(flowdir), "-t", "3600",
                 "-B", str(4 << 20), "-R", f"127.0.0.1/{self.repeat.getsockname()[1]}"],
                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while b"Startup" not in self.log.read_bytes():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def wait_for_records(self, count: int, timeout: float = 30) -> list:
        """The data records nfcapd received (via its repeater), once there are `count` of them."""
        templates: dict = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.datagrams.append(self.repeat.recv(65535))
            except socket.timeout:
                records = [r for m in self.datagrams for r in decode(m, templates).records]
                if len(records) >= count:
                    return records
                templates.clear()
        raise AssertionError(f"nfcapd repeated {len(self.datagrams)} datagrams, not {count} records")

    def stop_and_read(self) -> list[dict]:
        """Stop nfcapd (it writes its file) and return `nfdump -o csv` rows, times in UTC."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=15)
        self.repeat.close()
        out = subprocess.run(["nfdump", "-R", str(self.flowdir), "-o", "csv"], capture_output=True, text=True,
                             check=True, env={**os.environ, "TZ": "UTC"}).stdout
        rows = []
        for row in csv.DictReader(io.StringIO(out.split("\nSummary")[0])):
            if row.get("sa"):
                rows.append(row)
        return rows

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture()
def nfcapd(tmp_path):
    collector = NfCapd(tmp_path)
    yield collector
    collector.kill()


def utc(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(seconds))


def epoch(ts: str) -> int:
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S"))


def owed(obj) -> list[dict]:
    """What a collector is owed for `obj`, from its raw JSON: one record per direction that carried traffic
    (the forward one always), as nfdump prints it, plus the names the enterprise elements must carry."""
    doc = orjson.loads(gzip.decompress(obj.body))
    key = {k: unquote(v) for k, _, v in (s.partition("=") for s in obj.key.split("/")) if v}
    out = []
    for f in doc["flow_logs"]:
        local = f["initiator_ip"] if f["direction"] == "O" else f["target_ip"]
        start = epoch(f["start_time"] or doc["capture_start_time"])
        end = max(start, epoch(f["end_time"] or doc["capture_end_time"]))
        ends = [(f["initiator_ip"], f["target_ip"], f["initiator_port"], f["target_port"],
                 f["bytes_from_initiator"], f["packets_from_initiator"], True)]
        if f["packets_from_target"] > 0 or f["bytes_from_target"] > 0:
            ends.append((f["target_ip"], f["initiator_ip"], f["target_port"], f["initiator_port"],
                         f["bytes_from_target"], f["packets_from_target"], False))
        for src, dst, sport, dport, nbytes, npkts, forward in ends:
            out.append({"sa": src, "da": dst, "sp": str(sport), "dp": str(dport),
                        "pr": PROTOCOLS.get(f["transport_protocol"], str(f["transport_protocol"])),
                        "ibyt": str(nbytes), "ipkt": str(npkts), "ts": utc(start), "te": utc(end),
                        "dir": "1" if src == local else "0", "biflow": 1 if forward else 2,
                        "status": {"accepted": 64, "rejected": 129}[f["action"]],
                        "local_vnic": key["vnic-id"], "region": key["region"], "account": key["account"],
                        "egress": src == local})
    return out


CSV_FIELDS = ("sa", "da", "sp", "dp", "pr", "ibyt", "ipkt", "ts", "te", "dir")


def as_csv(record: dict) -> tuple:
    return tuple(record[k] for k in CSV_FIELDS)


def test_a_flow_log_object_shows_up_field_by_field_in_nfdump(nfcapd):
    objs = generator.generate_objects(build_world(seed=7), objects=12, seed=9, mean_flows=90, empty_share=0.0)
    chosen = sorted(objs, key=lambda o: o.flow_count)[-2:]  # two objects (two subnets / domains), several chunks
    d = Driver(BLUEFLOW_SINK="ipfix", BLUEFLOW_IPFIX_COLLECTORS=nfcapd.address)
    expected = []
    for obj in chosen:
        d.cos.put(obj.key, obj.body)
        d.parse(d.ref(obj.key))
        d.enrich_all()
        raws = d.kflow_messages()
        assert len(raws) >= 2
        for raw in raws:
            d.run(ipfix_sink.handle(d.ctx, raw, b"k"))
        assert obj.key not in d.cos.objects  # handed to the socket: deleted
        expected.extend(owed(obj))
    assert len(expected) == sum(o.chf_count for o in chosen)

    repeated = nfcapd.wait_for_records(len(expected))
    rows = nfcapd.stop_and_read()
    assert Counter(tuple(r[k] for k in CSV_FIELDS) for r in rows) == Counter(map(as_csv, expected))

    # what nfdump does not print, read from the very datagrams nfcapd received
    def seen(r):
        return (r[(0, 8)], r[(0, 12)], str(r[(0, 7)]), str(r[(0, 11)]), str(r[(0, 1)]), r[(0, 239)], r[(0, 89)],
                r[(ipfix.PEN, 13)])

    want = Counter((e["sa"], e["da"], e["sp"], e["dp"], e["ibyt"], e["biflow"], e["status"], e["account"])
                   for e in expected)
    assert Counter(map(seen, repeated)) == want
    for r in repeated:
        local = r[(ipfix.PEN, 11)] if r[(0, 61)] == ipfix.EGRESS else r[(ipfix.PEN, 12)]
        region = r[(ipfix.PEN, 1)] if r[(0, 61)] == ipfix.EGRESS else r[(ipfix.PEN, 2)]
        assert local in {e["local_vnic"] for e in expected}
        assert region in {e["region"] for e in expected}


@pytest.mark.stack
def test_a_worker_with_the_ipfix_sink_empties_the_bucket_into_nfcapd(stack, nfcapd):
    from tests.integration.pipeline_support import kentik, prepare, wait_for

    run = prepare(10, seed=23, mean_flows=80, empty_share=0.0)
    expected = [e for o in run.objects for e in owed(o)]
    worker = run.start_worker("ipfix", BLUEFLOW_SINK="ipfix", BLUEFLOW_IPFIX_COLLECTORS=nfcapd.address,
                              BLUEFLOW_CHUNK_FLOWS="40")
    try:
        assert wait_for(lambda: not run.bucket_keys(), 180, interval_s=1), (run.counts(), run.logs())
        nfcapd.wait_for_records(len(expected))
    finally:
        worker.stop()
    rows = nfcapd.stop_and_read()
    assert Counter(tuple(r[k] for k in CSV_FIELDS) for r in rows) == Counter(map(as_csv, expected))
    assert kentik(run.env, "/_emulator/flows") == []  # the Kentik sink did not run
