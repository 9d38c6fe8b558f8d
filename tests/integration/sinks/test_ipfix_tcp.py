"""The IPFIX sink over TCP against an independent IPFIX collecting process: python-ipfix (PyPI `ipfix`, also
Debian's python3-ipfix) reading the Message stream of each accepted connection, as its MessageStreamReader is
meant to be used with TCP. Every owed record arrives field by field (devstack/referee.owed_ipfix, the IBM names
included), the object is deleted only after, and a collector that drops the connection gets a new session that
starts with the Template again (docs/ipfix.md). Skipped when python-ipfix is not installed
(`pip install ipfix==0.9.7`).

Why not a collector daemon: of the common collectors only IPFIXcol2 documents an IPFIX-over-TCP input, and it is
in none of the registries this project installs from; nfcapd, pmacct's nfacctd, GoFlow2, Akvorado and
ElastiFlow listen on UDP only; go-ipfix's collector (TCP by default) misreads the records because its registry
gives forwardingStatus 4 bytes where the template says 1 (docs/ipfix.md, "TCP").
"""
from __future__ import annotations

import calendar
import collections
import socket
import threading
import time

import pytest

from devstack.synth import generator
from devstack.referee import owed_ipfix
from devstack.synth.worldgen import build_world
from devstack.harness.driver import Driver

ipfix = pytest.importorskip("ipfix")
import ipfix.ie  # noqa: E402
import ipfix.reader  # noqa: E402

ipfix.ie.use_iana_default()
for _ie in range(1, 14):
    ipfix.ie.for_spec(f"ibm{_ie}(32473/{_ie})<string>[65535]")


class Collector:
    """A TCP collecting process: every connection's Messages read with python-ipfix, records kept."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.records: list[dict] = []
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn):
        try:
            for record in ipfix.reader.from_stream(conn.makefile("rb")).namedict_iterator():
                self.records.append(record)
        except (OSError, ValueError):
            return

    def drop_connections(self):
        for conn in self.connections:
            conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        self.connections = []


def comparable(r: dict) -> tuple:
    return (str(r["sourceIPv4Address"]), str(r["destinationIPv4Address"]), r["sourceTransportPort"],
            r["destinationTransportPort"], r["octetDeltaCount"], r["packetDeltaCount"],
            calendar.timegm(r["flowStartSeconds"].timetuple()),
            r["biflowDirection"], r["forwardingStatus"], r["flowDirection"],
            r["ibm11"] if r["flowDirection"] else r["ibm12"], r["ibm13"])  # the local vNIC, the account


def owed(obj) -> list[tuple]:
    return [(o["sa"], o["da"], int(o["sp"]), int(o["dp"]), int(o["ibyt"]), int(o["ipkt"]),
             calendar.timegm(time.strptime(o["ts"], "%Y-%m-%d %H:%M:%S")), o["biflow"], o["status"],
             int(o["egress"]), o["local_vnic"], o["account"]) for o in owed_ipfix(obj)]


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_every_record_reaches_a_tcp_collector_field_by_field_and_a_dropped_session_starts_over():
    objs = generator.generate_objects(build_world(seed=1), objects=6, seed=3, mean_flows=100, empty_share=0.0)
    collector = Collector()
    d = Driver(BLUEFLOW_SINK="ipfix", BLUEFLOW_IPFIX_TRANSPORT="tcp",
               BLUEFLOW_IPFIX_COLLECTORS=f"127.0.0.1:{collector.port}")
    first, rest = objs[:3], objs[3:]
    for batch in (first, rest):
        for o in batch:
            d.cos.put(o.key, o.body)
            d.parse(d.ref(o.key))
        d.enrich_all()
        for raw in d.kflow_messages():
            d.sink(raw)
        want = collections.Counter(r for o in (objs if batch is rest else first) for r in owed(o))
        wait_for(lambda: len(collector.records) >= sum(want.values()))
        assert collections.Counter(map(comparable, collector.records)) == want  # each once, every field
        assert not d.cos.objects and len(d.ledger()) == (6 if batch is rest else 3)
        if batch is first:  # the collector restarts its sessions: the next export opens a new one
            collector.drop_connections()
            time.sleep(0.1)
    assert len(d.ctx.ipfix_sessions) == 1
