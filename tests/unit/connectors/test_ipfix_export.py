"""connectors/ipfix_export.py over real loopback sockets: template schedule (UDP) and per connection (TCP),
reconnect after a lost session, errors of a collector that is down, sequence numbers per domain, the pace
(bursts, average rate, what the meter is told), a retry that resumes after the last Message handed over, and
a TCP collector that stops reading (the send waits without blocking the loop, then fails)."""
from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from streams.formats.kflow import ipfix, ipfix_template
from connectors.ipfix_export import (Collector, Cursor, Exporter, IpfixSendError, Meter, Pace, parse_collectors)
from tests.unit.formats.ipfix_decoder import decode, decode_stream
class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


TEMPLATE_BYTES = len(ipfix_template.template_message(0, 0, 0))


def data_message(domain: int, sequence: int, records: int = 0) -> bytes:
    return ipfix_template.message(domain, sequence, 0, ipfix_template.set_bytes(ipfix_template.TEMPLATE_ID, b"\0" * 70 * records))


def batch(*messages: bytes, records: list[int] | None = None) -> ipfix.Messages:
    ends, at = [], 0
    for m in messages:
        at += len(m)
        ends.append(at)
    return ipfix.Messages(b"".join(messages), ends, records or [0] * len(messages))


def send(exporter: Exporter, domain: int, messages: ipfix.Messages, index: int = 0, cursor=None) -> Cursor:
    cursor = cursor or Cursor()
    asyncio.run(exporter.send(index, domain, messages, cursor))
    return cursor


@pytest.fixture()
def udp_collector():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.settimeout(2)
    yield sock
    sock.close()


def received(sock, n: int) -> list[tuple[int, int, bool]]:
    """(domain, sequence, is template) of the next n datagrams."""
    out = []
    for _ in range(n):
        msg = decode(sock.recv(65535), {(d, 256): [] for d in range(10)})
        out.append((msg.domain, msg.sequence, bool(msg.templates)))
    return out


def test_udp_templates_before_first_data_of_each_domain_and_again_after_the_interval(udp_collector):
    clock = Clock()
    exporter = Exporter([Collector(*udp_collector.getsockname())], "udp", template_interval=60, clock=clock)
    assert exporter.max_bytes == 1400
    assert (exporter.reserve(1, 5), exporter.reserve(1, 3), exporter.reserve(2, 4)) == (0, 5, 0)
    send(exporter, 1, batch(data_message(1, 0), data_message(1, 5)))
    send(exporter, 2, batch(data_message(2, 0)))
    clock.now = 59
    send(exporter, 1, batch(data_message(1, 8)))
    clock.now = 61
    send(exporter, 1, batch(data_message(1, 8)))
    assert received(udp_collector, 8) == [(1, 0, True), (1, 0, False), (1, 5, False), (2, 0, True), (2, 0, False),
                                          (1, 8, False), (1, 8, True), (1, 8, False)]
    exporter.close()


def test_udp_collector_down_is_reported_not_silently_dropped():
    port_holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    port_holder.bind(("127.0.0.1", 0))
    port = port_holder.getsockname()[1]
    port_holder.close()  # nothing listens there: loopback answers ICMP port unreachable
    exporter = Exporter([Collector("127.0.0.1", port)], "udp")
    with pytest.raises(IpfixSendError, match=f"udp export to collector 127.0.0.1:{port} failed"):
        for _ in range(5):
            send(exporter, 1, batch(data_message(1, 0)))


def test_pace_spaces_bursts_so_the_average_rate_is_the_pace():
    clock = Clock()
    pace = Pace(1000, burst=10, clock=clock)
    assert [pace.delay(10), pace.delay(10), pace.delay(5)] == pytest.approx([0.0, 0.01, 0.015])  # a burst, then spaced
    clock.now = 1.0  # idle for a while: one burst may go at once again, no more
    assert [pace.delay(10), pace.delay(10)] == pytest.approx([0.0, 0.01])
    assert Pace(0).delay(10 ** 9) == 0.0 and Pace(20000).burst == 200  # 0: unpaced; default burst 10 ms


class Counting(Meter):
    def __init__(self):
        self.totals, self.waits, self.rates = {}, [], {}

    def sent(self, collector, records, datagrams, nbytes):
        old = self.totals.get(str(collector), (0, 0, 0))
        self.totals[str(collector)] = (old[0] + records, old[1] + datagrams, old[2] + nbytes)

    def waited(self, collector, seconds):
        self.waits.append(seconds)

    def paced(self, collector, rate):
        self.rates[str(collector)] = rate


def test_udp_export_keeps_the_pace_in_bursts_and_tells_the_meter(udp_collector):
    clock, meter = Clock(), Counting()
    times = []

    async def sleep(seconds):
        await clock.sleep(seconds)
        times.append(clock.now)

    collector = Collector(*udp_collector.getsockname())
    exporter = Exporter([collector], "udp", rate=1000, clock=clock, sleep=sleep, meter=meter)
    msgs = [data_message(7, 4 * i, records=4) for i in range(50)]  # 200 records in 50 datagrams
    send(exporter, 7, batch(*msgs, records=[4] * 50))
    assert meter.rates == {str(collector): 1000}
    assert exporter.sessions[0].pace.burst == 10  # 10 ms at 1,000 records/s: two datagrams of 4 per burst
    assert len(times) == 24 and times[-1] == pytest.approx(0.19)  # 200 records at 1,000/s less one burst's 10 ms
    got = received(udp_collector, 51)
    assert got[0] == (7, 0, True) and [s for _, s, _ in got[1:]] == [4 * i for i in range(50)]
    assert meter.totals == {str(collector): (200, 51, sum(map(len, msgs)) + TEMPLATE_BYTES)}
    tcp = Exporter([collector], "tcp", rate=1000, meter=meter)
    assert tcp.sessions[0].pace.rate == 0 and meter.rates[str(collector)] == 0  # TCP: flow control paces


def test_a_failed_send_resumes_after_the_last_message_handed_over(udp_collector, monkeypatch):
    exporter = Exporter([Collector(*udp_collector.getsockname())], "udp", rate=0)
    msgs = batch(*[data_message(3, i) for i in range(6)], records=[1] * 6)
    real_write, calls = Exporter._write, []

    async def flaky(self, sock, data):
        calls.append(1)
        if len(calls) == 4:  # the template, two Messages, then the third fails
            raise ConnectionRefusedError("collector restarting")
        await real_write(self, sock, data)

    monkeypatch.setattr(Exporter, "_write", flaky)
    cursor = Cursor()
    with pytest.raises(IpfixSendError, match="ConnectionRefusedError"):
        send(exporter, 3, msgs, cursor=cursor)
    assert cursor.next == 2
    send(exporter, 3, msgs, cursor=cursor)  # a new socket: the template again, then the rest
    assert cursor.next == 6
    assert received(udp_collector, 7) == [(3, 0, True), (3, 0, False), (3, 1, False), (3, 2, True), (3, 2, False),
                                          (3, 3, False), (3, 4, False)] and received(udp_collector, 1) == [
        (3, 5, False)]


class TcpCollector:
    """Accepts connections and keeps what each one received."""

    def __init__(self, server: socket.socket | None = None):
        self.server = server or socket.create_server(("127.0.0.1", 0))
        if server is not None:
            server.listen()
        self.address = self.server.getsockname()
        self.streams: list[bytearray] = []
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            stream = bytearray()
            self.streams.append(stream)
            self.connections.append(conn)
            threading.Thread(target=self._read, args=(conn, stream), daemon=True).start()

    @staticmethod
    def _read(conn, stream):
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            stream.extend(data)

    def drop_connections(self):
        for conn in self.connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self.connections = []

    def close(self):
        self.server.close()
        self.drop_connections()


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_tcp_templates_once_per_connection_and_again_on_the_new_session_after_the_collector_closed():
    collector = TcpCollector()
    exporter = Exporter([Collector(*collector.address)], "tcp")
    assert exporter.max_bytes == 65000
    send(exporter, 3, batch(*[data_message(3, seq) for seq in (0, 4, 9)]))
    wait_for(lambda: collector.streams and len(collector.streams[0]) == TEMPLATE_BYTES + 3 * 20)
    kinds = [(m.sequence, bool(m.templates)) for m in decode_stream(bytes(collector.streams[0]))]
    assert kinds == [(0, True), (0, False), (4, False), (9, False)]
    collector.drop_connections()
    time.sleep(0.1)  # the collector closed the connection: Messages written now would be lost
    send(exporter, 3, batch(data_message(3, 12)))  # so the exporter sees the close and opens a new session
    wait_for(lambda: len(collector.streams) == 2 and len(collector.streams[1]) == TEMPLATE_BYTES + 20)
    assert [(m.sequence, bool(m.templates)) for m in decode_stream(bytes(collector.streams[1]))] == [
        (12, True), (12, False)]
    exporter.close()
    collector.close()


def test_tcp_collector_refusing_connections_is_a_send_error():
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    address = unused.getsockname()
    unused.close()  # bound once, never listening
    exporter = Exporter([Collector(*address)], "tcp")
    with pytest.raises(IpfixSendError, match="ConnectionRefusedError"):
        send(exporter, 1, batch(data_message(1, 0)))


def test_a_tcp_collector_that_stops_reading_makes_the_send_wait_without_blocking_the_loop_then_fail():
    server = socket.create_server(("127.0.0.1", 0))
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
    exporter = Exporter([Collector(*server.getsockname())], "tcp", timeout=0.5)
    big = data_message(5, 0, records=900)  # 63 kB Messages; the collector accepts and never reads
    msgs = batch(*[big] * 200, records=[900] * 200)
    ticks, cursor = [], Cursor()

    async def run():
        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.02)

        tick = asyncio.create_task(ticker())
        try:
            await exporter.send(0, 5, msgs, cursor)
        finally:
            tick.cancel()

    started = time.monotonic()
    with pytest.raises(IpfixSendError, match="TimeoutError"):
        asyncio.run(run())
    assert 0 < cursor.next < 200 and time.monotonic() - started >= 0.5  # waited, then gave up; nothing dropped
    assert len(ticks) >= 10  # the loop kept running other work while the send waited
    server.close()
