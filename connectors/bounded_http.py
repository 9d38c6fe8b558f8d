"""One HTTP exchange with hard bounds, on urllib3: no redirects followed, nothing decoded, a capped body, and
connect, read and overall deadlines.

`exchange()` sends one request and returns an `Answer` (status, headers, at most `body_limit` raw bytes of
the body) or raises `HttpFailure` (no HTTP answer: connection refused/reset, DNS, TLS, timeout, deadline).
What it guarantees, whatever the peer does:

* A 3xx is an answer like any other: the request is never repeated elsewhere (so headers such as an API
  token never reach the Location host), and a 302/303 never turns into a GET.
* The body is read raw (`Content-Encoding` is not applied: a gzip header on a plain body is not an error) and
  at most `body_limit` bytes of it; a connection whose body was not read to its end is closed, not reused.
* `Limits.connect_s` bounds the TCP connect, `read_s` every wait for the next bytes, `deadline_s` the whole
  exchange (a peer trickling a byte every few seconds cannot hold it longer), and `body_s` the time spent
  reading the body once the status line and headers have arrived.

The overall deadline is kept by one daemon thread (`_Reaper`) that shuts the request's socket down when it
passes; the blocked read then fails at once and the connection is discarded. A deadline passing in the instant
its exchange ends may shut down the connection it just returned to the pool: urllib3 sees it dropped and
reconnects, or the next request on it fails as a transport error (retried) -- never a false answer.
"""
from __future__ import annotations

import heapq
import http.client
import itertools
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


@dataclass(frozen=True)
class Limits:
    connect_s: float = 10.0
    read_s: float = 100.0
    deadline_s: float = 120.0
    body_s: float = 5.0


@dataclass(frozen=True)
class Answer:
    status: int
    headers: urllib3.HTTPHeaderDict
    body: bytes          # raw (not decoded), at most body_limit bytes
    complete: bool       # False: the body was longer than body_limit or not read to its end in time


class HttpFailure(Exception):
    """No HTTP answer; the message says what happened in operator words (never a header value)."""


# ---------------------------------------------------------------- overall deadline

class _Deadline:
    __slots__ = ("at", "conn", "fired", "done")

    def __init__(self, at: float):
        self.at, self.conn, self.fired, self.done = at, None, False, False

    def fire(self) -> None:
        self.fired = True
        conn = self.conn
        sock = getattr(conn, "sock", None)
        if sock is not None and getattr(conn, "_deadline", None) is self:   # not reused by a later request
            try:   # socket.socket's own shutdown: also right for an SSLSocket read by another thread
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass


class _Reaper:
    """Fires each registered deadline when it passes unless it was finished first."""

    def __init__(self):
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Deadline]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def finish(self, d: _Deadline) -> None:
        with self._cond:
            d.done = True

    def watch(self, d: _Deadline, at: float) -> None:
        with self._cond:
            d.at = at
            if len(self._heap) > 1024:   # drop finished entries now and then
                self._heap = [e for e in self._heap if not e[2].done]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (at, next(self._seq), d))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="http-deadlines", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].done or self._heap[0][2].at != self._heap[0][0]):
                    heapq.heappop(self._heap)   # finished, or re-registered with another time
                if self._heap and self._heap[0][0] <= now:
                    heapq.heappop(self._heap)[2].fire()
                    continue
                self._cond.wait(self._heap[0][0] - now if self._heap else None)


_REAPER = _Reaper()
_CURRENT = threading.local()   # the deadline of the exchange running on this thread


class _DeadlineConnection(HTTPConnection):
    def request(self, *args, **kwargs):
        d = getattr(_CURRENT, "deadline", None)
        self._deadline = d
        if d is not None:
            d.conn = self
        return super().request(*args, **kwargs)


class _DeadlineHTTPSConnection(HTTPSConnection):
    request = _DeadlineConnection.request


class _Pool(HTTPConnectionPool):
    ConnectionCls = _DeadlineConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _DeadlineHTTPSConnection


def make_manager(url: str, maxsize: int = 16) -> urllib3.PoolManager:
    """A keep-alive pool for `url`'s host, through the proxy the environment names for it (as requests did)."""
    parts = urlsplit(url)
    kw = {"num_pools": 4, "maxsize": maxsize}
    try:
        import certifi   # the CA bundle requests used
        kw["ca_certs"] = certifi.where()
    except ImportError:
        pass
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        manager: urllib3.PoolManager = urllib3.ProxyManager(proxy, **kw)
    else:
        manager = urllib3.PoolManager(**kw)
    manager.pool_classes_by_scheme = {"http": _Pool, "https": _HTTPSPool}
    return manager


# ---------------------------------------------------------------- one exchange

def exchange(manager: urllib3.PoolManager, method: str, url: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None, limits: Limits = Limits(), body_limit: int = 64 * 1024) -> Answer:
    """Send one request and return its answer (status, headers, at most `body_limit` raw body bytes); raise
    HttpFailure when there is no complete status line and headers within the limits."""
    deadline = _Deadline(0.0)
    _REAPER.watch(deadline, time.monotonic() + limits.deadline_s)
    _CURRENT.deadline = deadline
    try:
        try:
            resp = manager.urlopen(method, url, body=body, headers=headers, redirect=False, retries=False,
                                   preload_content=False, decode_content=False, assert_same_host=False,
                                   timeout=urllib3.Timeout(connect=limits.connect_s, read=limits.read_s))
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            raise HttpFailure(_describe(exc, deadline, limits)) from None
        finally:
            _CURRENT.deadline = None
        if deadline.fired:   # cut while reading the headers: what http.client parsed is not an answer
            resp.close()
            resp.release_conn()
            raise HttpFailure(_describe(None, deadline, limits))
        _REAPER.watch(deadline, min(deadline.at, time.monotonic() + limits.body_s))
        data, complete = _read_capped(resp, body_limit)
        _REAPER.finish(deadline)
        if not complete:
            resp.close()   # closes the connection: unread bytes must not reach the next request
        resp.release_conn()
        return Answer(resp.status, resp.headers, data[:body_limit], complete)
    finally:
        _REAPER.finish(deadline)


def _read_capped(resp: urllib3.BaseHTTPResponse, limit: int) -> tuple[bytes, bool]:
    """At most `limit` + 1 raw bytes, and whether that was the whole body (read to its end)."""
    try:
        data = resp.read(limit + 1, decode_content=False)
        return data, len(data) <= limit and resp.closed
    except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError):
        return b"", False


def _describe(exc: BaseException | None, deadline: _Deadline, limits: Limits) -> str:
    if deadline.fired:
        return f"timeout: no complete answer within the {limits.deadline_s:g} s deadline"
    if isinstance(exc, urllib3.exceptions.NewConnectionError):   # a subclass of ConnectTimeoutError
        return f"transport error: cannot connect: {exc.__context__ or exc}"
    if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
        return f"timeout: no connection within {limits.connect_s:g} s"
    if isinstance(exc, (urllib3.exceptions.ReadTimeoutError, socket.timeout, TimeoutError)):
        return f"timeout: no answer within {limits.read_s:g} s"
    return f"transport error: {type(exc).__name__}: {exc}"
