"""connectors/ipfix_export.py over real loopback sockets: template schedule (UDP) and per connection (TCP),
reconnect after a lost session, errors of a collector that is down, sequence numbers per domain."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from connectors import ipfix
from connectors.ipfix_export import Collector, Exporter, IpfixSendError, parse_collectors
from tests.unit.ipfix_decoder import decode, decode_stream


def test_collectors_setting():
    assert parse_collectors("127.0.0.1:4739, collector.example:2055,[::1]:9995") == [
        Collector("127.0.0.1", 4739), Collector("collector.example", 2055), Collector("::1", 9995)]
    for bad in ("", "host", "host:0", "host:port", ":4739", "h:70000"):
        with pytest.raises(ValueError):
            parse_collectors(bad)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


TEMPLATE_BYTES = len(ipfix.template_message(0, 0, 0))


def data_message(domain: int, sequence: int) -> bytes:
    return ipfix.message(domain, sequence, 0, ipfix.set_bytes(ipfix.TEMPLATE_ID, b""))


@pytest.fixture()
def udp_collector():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
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
    exporter.send(0, 1, data_message(1, 0))
    exporter.send(0, 1, data_message(1, 5))
    exporter.send(0, 2, data_message(2, 0))
    clock.now = 59
    exporter.send(0, 1, data_message(1, 8))
    clock.now = 61
    exporter.send(0, 1, data_message(1, 8))
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
            exporter.send(0, 1, data_message(1, 0))


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


def test_tcp_templates_once_per_connection_and_again_after_a_reconnect():
    collector = TcpCollector()
    exporter = Exporter([Collector(*collector.address)], "tcp")
    assert exporter.max_bytes == 65000
    for seq in (0, 4, 9):
        exporter.send(0, 3, data_message(3, seq))
    wait_for(lambda: collector.streams and len(collector.streams[0]) == TEMPLATE_BYTES + 3 * 20)
    kinds = [(m.sequence, bool(m.templates)) for m in decode_stream(bytes(collector.streams[0]))]
    assert kinds == [(0, True), (0, False), (4, False), (9, False)]
    collector.drop_connections()
    with pytest.raises(IpfixSendError):  # the peer closed: the write fails within a few Messages
        for _ in range(50):
            exporter.send(0, 3, data_message(3, 9))
            wait_for(lambda: True)
    exporter.send(0, 3, data_message(3, 12))  # a new session: template first again
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
        exporter.send(0, 1, data_message(1, 0))
