"""connectors.bounded_http against raw loopback sockets (a peer that misbehaves at the byte level) and
connectors.kentik.answer_reason."""
from __future__ import annotations

import socket
import threading
import time

import pytest
import urllib3

from connectors.bounded_http import HttpFailure, Limits, exchange, make_manager
from connectors.kentik import answer_reason

FAST = Limits(connect_s=1.0, read_s=1.0, deadline_s=2.0, body_s=0.5)


class RawServer:
    """Accepts connections on 127.0.0.1 and runs `script(conn, n)` for the n-th request it reads."""

    def __init__(self, script):
        self.script, self.requests, self.connections = script, [], 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        f = conn.makefile("rb")
        try:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    line = f.readline()
                    if not line:
                        return
                    head += line
                length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                               if h.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + f.read(length))
                self.script(conn, len(self.requests))
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()


def answer(status: int, body: bytes = b"", headers: str = "") -> bytes:
    return (f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n{headers}\r\n").encode() + body


@pytest.fixture()
def serve():
    servers = []

    def start(script):
        servers.append(RawServer(script))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def test_redirect_comes_back_as_an_answer_and_nothing_goes_to_the_location(serve):
    elsewhere = serve(lambda conn, n: conn.sendall(answer(200, b"ok")))
    for status in (301, 302, 303, 307, 308):
        srv = serve(lambda conn, n, s=status: conn.sendall(
            answer(s, headers=f"Location: {elsewhere.url}/chf\r\n")))
        got = exchange(make_manager(srv.url), "POST", srv.url + "/chf", body=b"data",
                       headers={"X-CH-Auth-API-Token": "t0ken"}, limits=FAST)
        assert got.status == status and got.headers["Location"] == elsewhere.url + "/chf"
    assert elsewhere.connections == 0


def test_gzip_header_on_a_plain_body_is_returned_raw(serve):
    srv = serve(lambda conn, n: conn.sendall(answer(200, b"not gzip at all", "Content-Encoding: gzip\r\n")))
    got = exchange(make_manager(srv.url), "POST", srv.url + "/chf", body=b"x", limits=FAST)
    assert (got.status, got.body, got.complete) == (200, b"not gzip at all", True)


def test_body_is_capped_and_the_connection_not_reused(serve):
    srv = serve(lambda conn, n: conn.sendall(answer(503, b"e" * 200_000)))
    http = make_manager(srv.url)
    got = exchange(http, "POST", srv.url + "/chf", body=b"x", limits=FAST, body_limit=1000)
    assert (got.status, len(got.body), got.complete) == (503, 1000, False)
    exchange(http, "POST", srv.url + "/chf", body=b"x", limits=FAST, body_limit=1000)
    assert srv.connections == 2


def test_complete_bodies_keep_the_connection(serve):
    srv = serve(lambda conn, n: conn.sendall(answer(200, b"{}")))
    http = make_manager(srv.url)
    for _ in range(3):
        assert exchange(http, "POST", srv.url + "/chf", body=b"x", limits=FAST).status == 200
    assert srv.connections == 1 and len(srv.requests) == 3


def test_trickled_headers_hit_the_overall_deadline(serve):
    def trickle(conn, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        for _ in range(100):          # a byte every 0.4 s: within read_s each time, forever in total
            time.sleep(0.4)
            conn.sendall(b"a")

    srv = serve(trickle)
    t0 = time.monotonic()
    with pytest.raises(HttpFailure, match="deadline"):
        exchange(make_manager(srv.url), "POST", srv.url + "/chf", body=b"x", limits=FAST)
    assert 1.9 < time.monotonic() - t0 < 3.0


def test_trickled_body_is_cut_after_body_s(serve):
    def trickle(conn, n):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n")
        for _ in range(500):
            time.sleep(0.1)
            conn.sendall(b"a")

    srv = serve(trickle)
    t0 = time.monotonic()
    got = exchange(make_manager(srv.url), "POST", srv.url + "/chf", body=b"x", limits=FAST)
    assert got.status == 200 and not got.complete
    assert time.monotonic() - t0 < 1.0


def test_silence_is_a_read_timeout(serve):
    srv = serve(lambda conn, n: time.sleep(5))
    t0 = time.monotonic()
    with pytest.raises(HttpFailure, match="timeout: no answer within 1 s"):
        exchange(make_manager(srv.url), "POST", srv.url + "/chf", body=b"x", limits=FAST)
    assert time.monotonic() - t0 < 1.8


def test_refused_connection_is_a_transport_error():
    with pytest.raises(HttpFailure, match="transport error"):
        exchange(make_manager("http://127.0.0.1:9"), "GET", "http://127.0.0.1:9/x", limits=FAST)


def test_proxy_from_the_environment(monkeypatch):
    monkeypatch.setenv("https_proxy", "http://proxy.internal:3128")
    monkeypatch.setenv("no_proxy", "bypass.example")
    assert isinstance(make_manager("https://flow.kentik.com/chf"), urllib3.ProxyManager)
    assert not isinstance(make_manager("https://bypass.example/chf"), urllib3.ProxyManager)


def test_answer_reason():
    h = urllib3.HTTPHeaderDict
    r = answer_reason(307, h({"Location": "https://evil.example:8443/chf?q=abc"}), b"")
    assert "evil.example" in r and "chf" not in r and "abc" not in r and "not followed" in r
    assert "same host" in answer_reason(302, h({"Location": "/elsewhere"}), b"")
    assert answer_reason(503, h({}), b'{"error": "busy\\n\\u001b[2J now"}') == "busy ?[2J now"
    assert "gzip-encoded" in answer_reason(500, h({"Content-Encoding": "gzip"}), b"\x1f\x8b...")
    assert answer_reason(400, h({}), b"plain   text\nhere") == "plain text here"
