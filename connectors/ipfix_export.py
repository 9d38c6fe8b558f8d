"""IPFIX Exporting Process: one transport session per collector, UDP or TCP (RFC 7011 §10), blocking I/O
(run it on a thread pool). No retries here: `send` raises IpfixSendError and the caller retries with its
backoff (which is also the TCP reconnect backoff: a failed session is closed and reopened on the next try).

What "handed over" means (README, docs/ipfix.md):
- UDP: the datagram was accepted by the local socket (`send` returned). UDP has no acknowledgement; a lost
  datagram is lost. A connected socket reports ICMP port-unreachable of an earlier datagram as an error on a
  later one, so a collector known to be down holds the export instead of silently dropping everything.
- TCP: the Message was written completely to the connection (`sendall` returned; nothing is buffered in this
  process). A collector host crashing before it read the kernel's buffers can still lose it.

Templates: over UDP resent to each collector every `template_interval` seconds per Observation Domain (and
before the first data); over TCP once per connection and domain (a reconnect sends them again).
"""
from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from connectors.ipfix import TCP_MAX_BYTES, UDP_MAX_BYTES, template_message

TRANSPORTS = ("udp", "tcp")
DEFAULT_TEMPLATE_INTERVAL_S = 60.0


class IpfixSendError(Exception):
    """A Message could not be handed to a collector (refused, unreachable, connection lost, timeout)."""


@dataclass(frozen=True)
class Collector:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_collectors(text: str) -> list[Collector]:
    """`host:port,host:port` ([v6]:port too) as collectors; ValueError in operator words when malformed."""
    out = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"IPFIX collector {item!r} is not host:port (e.g. 10.0.0.5:4739)")
        out.append(Collector(host, int(port)))
    if not out:
        raise ValueError("no IPFIX collector given: set --ipfix_collectors host:port[,host:port...]")
    return out


@dataclass
class _Session:
    collector: Collector
    sock: socket.socket | None = None
    templates_sent: dict = field(default_factory=dict)  # domain -> monotonic time of the last template


class Exporter:
    """Sends the same Messages to every collector; each Message is framed once (connectors.ipfix)."""

    def __init__(self, collectors: list[Collector], transport: str = "udp", *,
                 template_interval: float = DEFAULT_TEMPLATE_INTERVAL_S, timeout: float = 10.0, clock=time.monotonic):
        if transport not in TRANSPORTS:
            raise ValueError(f"IPFIX transport {transport!r} is not one of {', '.join(TRANSPORTS)}")
        self.transport = transport
        self.max_bytes = UDP_MAX_BYTES if transport == "udp" else TCP_MAX_BYTES
        self.template_interval = template_interval
        self.timeout = timeout
        self.clock = clock
        self.sessions = [_Session(c) for c in collectors]
        self._sequence: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def collectors(self) -> list[Collector]:
        return [s.collector for s in self.sessions]

    def reserve(self, domain: int, records: int) -> int:
        """The sequence number of the first of `records` new data records of `domain` (RFC 7011 §3.1)."""
        with self._lock:
            first = self._sequence.get(domain, 0)
            self._sequence[domain] = (first + records) & 0xFFFFFFFF
            return first

    def send(self, index: int, domain: int, msg: bytes) -> None:
        """Hand one Message to collector `index`, after the Template if it is due. Raises IpfixSendError."""
        session = self.sessions[index]
        with self._lock:
            try:
                sock = session.sock or self._open(session)
                if self._template_due(session, domain):
                    sequence = struct.unpack_from("!I", msg, 8)[0]
                    self._write(sock, template_message(domain, sequence, int(time.time())))
                    session.templates_sent[domain] = self.clock()
                self._write(sock, msg)
            except OSError as exc:
                self._close(session)
                raise IpfixSendError(f"IPFIX {self.transport} export to collector {session.collector} failed: "
                                     f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            for session in self.sessions:
                self._close(session)

    # ------------------------------------------------------------ internals
    def _template_due(self, session: _Session, domain: int) -> bool:
        last = session.templates_sent.get(domain)
        if last is None:
            return True
        return self.transport == "udp" and self.clock() - last >= self.template_interval

    def _open(self, session: _Session) -> socket.socket:
        c = session.collector
        kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
        family, _, _, _, address = socket.getaddrinfo(c.host, c.port, type=kind)[0]
        sock = socket.socket(family, kind)
        sock.settimeout(self.timeout)
        try:
            sock.connect(address)  # UDP: fixes the peer, so ICMP errors are reported
        except OSError:
            sock.close()
            raise
        session.sock, session.templates_sent = sock, {}
        return sock

    def _write(self, sock: socket.socket, data: bytes) -> None:
        if self.transport == "udp":
            sent = sock.send(data)
            if sent != len(data):
                raise OSError(f"datagram cut to {sent} of {len(data)} bytes")
        else:
            sock.sendall(data)

    @staticmethod
    def _close(session: _Session) -> None:
        if session.sock is not None:
            try:
                session.sock.close()
            except OSError:
                pass
        session.sock, session.templates_sent = None, {}
