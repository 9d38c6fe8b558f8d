"""The ipfix sink against a real collector: nfdump's `nfcapd` on 127.0.0.1.

Generated flow-log objects go through the real stage shells (parse → enrich → ipfix sink → finalize); nfcapd
stores what it receives and `nfdump -o csv` must show every owed record — 5-tuple, counters, times, direction —
computed from the objects' raw JSON by the referee (devstack/referee.owed_ipfix, not streams/formats/translate.py).
nfcapd repeats every datagram it received (`-R`) to a socket of the test, whose own decoder checks the
enterprise elements nfdump does not print. The stack test does the same with a real worker (`--sink ipfix`)
reading the local bucket.

Needs nfdump (`apt-get install nfdump`; .ci/run installs it); skipped with that reason when it is absent.
"""
from __future__ import annotations

import socket
import time
from collections import Counter

import pytest

from streams.formats.kflow import ipfix_template
from devstack import nfcapd as collector
from devstack.synth import generator
from devstack.referee import nfdump_record, owed_ipfix as owed
from devstack.synth.worldgen import build_world
from tests.unit.formats.ipfix_decoder import decode
from devstack.harness.driver import Driver

pytestmark = pytest.mark.skipif(collector.missing() is not None,
                                reason=f"{collector.missing()}; .ci/run installs it on Debian/Ubuntu CI")


class NfCapd(collector.NfCapd):
    """nfcapd repeating every datagram it receives to a socket of the test (`wait_for_records`)."""

    def __init__(self, flowdir):
        self.repeat = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.repeat.bind(("127.0.0.1", 0))
        self.repeat.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.repeat.settimeout(0.2)
        self.datagrams: list[bytes] = []
        super().__init__(flowdir, repeat_to=self.repeat.getsockname()[1])

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

    def kill(self):
        super().kill()
        self.repeat.close()


@pytest.fixture()
def nfcapd(tmp_path):
    running = NfCapd(tmp_path)
    yield running
    running.kill()


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
            d.sink(raw)
        assert obj.key not in d.cos.objects  # handed to the socket: deleted
        expected.extend(owed(obj))
    assert len(expected) == sum(o.chf_count for o in chosen)

    repeated = nfcapd.wait_for_records(len(expected))
    rows = nfcapd.stop_and_read()
    assert Counter(map(nfdump_record, rows)) == Counter(map(nfdump_record, expected))

    # what nfdump does not print, read from the very datagrams nfcapd received
    def seen(r):
        return (r[(0, 8)], r[(0, 12)], str(r[(0, 7)]), str(r[(0, 11)]), str(r[(0, 1)]), r[(0, 239)], r[(0, 89)],
                r[(ipfix_template.PEN, 13)])

    want = Counter((e["sa"], e["da"], e["sp"], e["dp"], e["ibyt"], e["biflow"], e["status"], e["account"])
                   for e in expected)
    assert Counter(map(seen, repeated)) == want
    for r in repeated:
        local = r[(ipfix_template.PEN, 11)] if r[(0, 61)] == ipfix_template.EGRESS else r[(ipfix_template.PEN, 12)]
        region = r[(ipfix_template.PEN, 1)] if r[(0, 61)] == ipfix_template.EGRESS else r[(ipfix_template.PEN, 2)]
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
    assert Counter(map(nfdump_record, rows)) == Counter(map(nfdump_record, expected))
    assert kentik(run.env, "/_emulator/flows") == []  # the Kentik sink did not run
