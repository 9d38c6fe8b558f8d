"""IPFIX Exporting Process: one transport session per collector, UDP or TCP (RFC 7011 §10), on the event loop
with non-blocking sockets (nothing here blocks the loop; a full socket buffer is awaited). No retries here:
`send` raises IpfixSendError and the caller retries with its backoff (which is also the TCP reconnect backoff:
a failed session is closed and reopened on the next try); a `Cursor` remembers which Messages were handed over,
so a retry sends only the rest.

Pace (UDP): UDP has no receipt and no flow control, so a collector that is briefly slower than the sender
drops what overflows its receive buffer, and nobody can tell. Each UDP session therefore keeps a pace: at most
`rate` records per second on average, sent in bursts of at most `burst` records (`Pace`), the rest of a
chunk's Messages waiting their turn — the sink slows down and Kafka holds the backlog; nothing is dropped. The
socket's send buffer is bounded (`SEND_BUFFER`), so a slow network interface makes the send wait rather than
queue without limit; with IP_RECVERR a datagram the local stack could not queue is an error (retried), not a
silent loss. TCP is paced by the collector itself (flow control): a full send buffer is awaited.

What "handed over" means (README, docs/ipfix.md):
- UDP: the datagram was accepted by the local socket, at the pace. A datagram lost on the way is lost. A
  connected socket reports ICMP port-unreachable of an earlier datagram as an error on a later one, so a
  collector known to be down holds the export instead of silently dropping everything.
- TCP: the Message was written completely to the connection. A collector host crashing before it read the
  kernel's buffers can still lose it (at most SEND_BUFFER bytes plus what its own receive buffer holds).

Templates: over UDP resent to each collector every `template_interval` seconds per Observation Domain (and
before the first data); over TCP once per connection and domain (a reconnect sends them again).
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field

from streams.formats.kflow.ipfix import Messages
from streams.formats.kflow.ipfix_template import TCP_MAX_BYTES, UDP_MAX_BYTES, template_message

TRANSPORTS = ("udp", "tcp")
DEFAULT_TEMPLATE_INTERVAL_S = 60.0
DEFAULT_RATE = 20000  # records/s to one collector from one worker (docs/ipfix.md: what that is, how to raise it)
BURST_S = 0.01  # a burst is at most this many seconds' worth of records at the pace
SEND_BUFFER = 256 << 10  # SO_SNDBUF: bytes this process may have queued in the kernel towards one collector


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


class Pace:
    """At most `rate` records per second on average, in bursts of at most `burst` records (virtual
    scheduling: `due` is when the records reserved so far will have been sent at the pace). `rate` 0: no pace."""

    def __init__(self, rate: float, burst: float | None = None, clock=time.monotonic):
        self.rate = float(rate)
        self.burst = max(1.0, self.rate * BURST_S) if burst is None else float(burst)
        self.clock = clock
        self.due = 0.0

    def delay(self, records: int) -> float:
        """Seconds to wait before sending `records` more records; reserves their place (call once per send)."""
        if not self.rate:
            return 0.0
        now = self.clock()
        self.due = max(self.due, now) + records / self.rate
        return max(0.0, self.due - self.burst / self.rate - now)


class Meter:
    """What a session reports (the sink turns it into Prometheus metrics); this one keeps nothing."""

    def sent(self, collector: Collector, records: int, datagrams: int, nbytes: int) -> None:
        pass

    def failed(self, collector: Collector) -> None:
        pass

    def waited(self, collector: Collector, seconds: float) -> None:
        pass

    def paced(self, collector: Collector, rate: float) -> None:
        pass


@dataclass
class Cursor:
    """The next Message of a batch to hand to one collector (advanced as each one is handed over)."""

    next: int = 0


@dataclass
class Session:
    """The transport session to one collector: its socket, the templates it was sent, and its pace."""

    collector: Collector
    transport: str
    pace: Pace
    sock: socket.socket | None = None
    templates_sent: dict = field(default_factory=dict)  # domain -> monotonic time of the last template


class Exporter:
    """Sends the same Messages to every collector; each Message is framed once (streams.formats.kflow.ipfix). Sessions
    may be shared between exporters (`sessions`: one per collector and transport, so one pace per collector)."""

    def __init__(self, collectors: list[Collector], transport: str = "udp", *, rate: float = DEFAULT_RATE,
                 with_point: bool = False, sessions: dict | None = None, meter: Meter | None = None,
                 template_interval: float = DEFAULT_TEMPLATE_INTERVAL_S, timeout: float = 10.0,
                 clock=time.monotonic, sleep=asyncio.sleep):
        if transport not in TRANSPORTS:
            raise ValueError(f"IPFIX transport {transport!r} is not one of {', '.join(TRANSPORTS)}")
        self.transport, self.with_point = transport, with_point
        self.max_bytes = UDP_MAX_BYTES if transport == "udp" else TCP_MAX_BYTES
        self.template_interval, self.timeout = template_interval, timeout
        self.clock, self.sleep, self.meter = clock, sleep, meter or Meter()
        pace_rate = rate if transport == "udp" else 0  # TCP: the collector's flow control is the pace
        shared = {} if sessions is None else sessions
        self.sessions = [shared.setdefault((c, transport), Session(c, transport, Pace(pace_rate, clock=clock)))
                         for c in collectors]
        for session in self.sessions:
            self.meter.paced(session.collector, session.pace.rate)
        self._sequence: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def collectors(self) -> list[Collector]:
        return [s.collector for s in self.sessions]

    def reserve(self, domain: int, records: int) -> int:
        """The sequence number of the first of `records` new data records of `domain` (RFC 7011 §3.1);
        thread-safe (the encoder calls it on the thread pool)."""
        with self._lock:
            first = self._sequence.get(domain, 0)
            self._sequence[domain] = (first + records) & 0xFFFFFFFF
            return first

    async def send(self, index: int, domain: int, messages: Messages, cursor: Cursor) -> None:
        """Hand Messages `cursor.next`.. to collector `index` at its pace, each after the Template when one is
        due; `cursor` advances past each Message handed over. Raises IpfixSendError."""
        session = self.sessions[index]
        try:
            while cursor.next < len(messages):
                sock = self._alive(session) or await self._open(session)
                stop, records = _burst(messages, cursor.next, session.pace.burst)
                wait = session.pace.delay(records)
                if wait:
                    self.meter.waited(session.collector, wait)
                    await self.sleep(wait)
                first = cursor.next
                template = await self._template_if_due(session, sock, domain, messages, first)
                for i in range(first, stop):
                    await self._write(sock, messages.view(i))
                    cursor.next = i + 1
                self.meter.sent(session.collector, records, stop - first + bool(template),
                                messages.ends[stop - 1] - (messages.ends[first - 1] if first else 0) + template)
        except (OSError, asyncio.TimeoutError) as exc:
            self._close(session)
            self.meter.failed(session.collector)
            raise IpfixSendError(f"IPFIX {self.transport} export to collector {session.collector} failed: "
                                 f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        for session in self.sessions:
            self._close(session)

    # ------------------------------------------------------------ internals
    async def _template_if_due(self, session: Session, sock, domain: int, messages: Messages, at: int) -> int:
        """Send the Template of `domain` first when it is due; its size in bytes (0 when not sent)."""
        last = session.templates_sent.get(domain)
        if last is not None and (self.transport == "tcp" or self.clock() - last < self.template_interval):
            return 0
        sequence = int.from_bytes(messages.view(at)[8:12], "big")
        template = template_message(domain, sequence, int(time.time()), self.with_point)
        await self._write(sock, template)
        session.templates_sent[domain] = self.clock()
        return len(template)

    def _alive(self, session: Session) -> socket.socket | None:
        """The session's socket, or None when there is none or (TCP) the collector closed the connection: a
        collector sends nothing, so a readable TCP socket means FIN or RST — Messages written now would be lost."""
        sock = session.sock
        if sock is None or self.transport == "udp":
            return sock
        try:
            closed = sock.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            return sock
        except OSError:
            closed = True
        if closed:
            self._close(session)
        return None if closed else sock

    async def _open(self, session: Session) -> socket.socket:
        c, loop = session.collector, asyncio.get_running_loop()
        kind = socket.SOCK_DGRAM if self.transport == "udp" else socket.SOCK_STREAM
        family, _, _, _, address = (await loop.getaddrinfo(c.host, c.port, type=kind))[0]
        sock = socket.socket(family, kind)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
            if self.transport == "udp":
                if family == socket.AF_INET and hasattr(socket, "IP_RECVERR"):
                    sock.setsockopt(socket.IPPROTO_IP, socket.IP_RECVERR, 1)  # local queue drops are errors
                sock.connect(address)  # fixes the peer, so ICMP errors are reported; no packet is sent
            else:
                await asyncio.wait_for(loop.sock_connect(sock, address), self.timeout)
        except BaseException:
            sock.close()
            raise
        session.sock, session.templates_sent = sock, {}
        return sock

    async def _write(self, sock: socket.socket, data) -> None:
        """Hand `data` (one Message) to the socket; waits (at most `timeout`) while its send buffer is full."""
        try:
            sent = sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent == len(data):
            return
        if self.transport == "udp" and sent:
            raise OSError(f"datagram cut to {sent} of {len(data)} bytes")
        loop = asyncio.get_running_loop()
        await asyncio.wait_for(loop.sock_sendall(sock, memoryview(data)[sent:]), self.timeout)

    @staticmethod
    def _close(session: Session) -> None:
        if session.sock is not None:
            try:
                session.sock.close()
            except OSError:
                pass
        session.sock, session.templates_sent = None, {}


def _burst(messages: Messages, start: int, burst: float) -> tuple[int, int]:
    """(end, records) of the Messages from `start` that make one burst: as many as hold at most `burst`
    records, at least one."""
    stop, records = start + 1, messages.records[start]
    while stop < len(messages) and records + messages.records[stop] <= burst:
        records += messages.records[stop]
        stop += 1
    return stop, records
