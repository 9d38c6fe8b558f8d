"""Misbehaving-Kentik answer modes for the Kentik stand-in, and a decoy server for redirect targets.

``POST /_emulator/chf_modes`` with one object or a list: ``{"mode": M, "count": n, "path_prefix": "/chf", ...}``
(count defaults to 1, count <= 0 means "until reset"; path_prefix defaults to "/chf"). The next ``count``
requests whose path starts with ``path_prefix`` are answered in mode M:

* ``redirect``: ``status`` (301/302/303/307/308, default 307) with ``Location: <location>``; nothing stored.
* ``bad_body``: processed as usual (flows stored when valid); a 200 then carries ``Content-Encoding: gzip``
  on a plain-text body that is not gzip.
* ``slow``: processed as usual (flows stored, i.e. accepted), the answer sent ``seconds`` later.
* ``trickle``: processed as usual; a 200 then sends a ``bytes``-long body one byte every ``interval_s``.
  With ``status`` other than 200: nothing stored, that status with the trickled body.
* ``huge_body``: processed as usual; a 200 then carries a ``bytes``-long body (sent in 1 MiB pieces).

``GET /_emulator/chf_modes`` lists pending modes; ``DELETE /_emulator/chf_modes`` drops them (devices and flows
stay); ``POST /_emulator/reset`` clears them with everything else. Applied modes are
counted in ``/_emulator/stats`` (``kentik.modes_applied``) and named in ``/_emulator/requests`` (``mode``, and
``mode_seconds`` for ``slow``).
"""
from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass

from aiohttp import web

MODES = ("redirect", "bad_body", "slow", "trickle", "huge_body")
PENDING = web.AppKey("kentik_chf_modes", list)
NOT_GZIP = b"accepted -- but this body is plain text, not gzip\n"


@dataclass
class Mode:
    mode: str
    count: int = 1
    path_prefix: str = "/chf"
    status: int = 0
    location: str = ""
    seconds: float = 0.0
    bytes: int = 0
    interval_s: float = 1.0

    @classmethod
    def from_json(cls, d: dict) -> "Mode":
        if not isinstance(d, dict) or d.get("mode") not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}")
        m = cls(mode=d["mode"], count=int(d.get("count", 1)), path_prefix=str(d.get("path_prefix") or "/chf"),
                status=int(d.get("status") or 0), location=str(d.get("location") or ""),
                seconds=float(d.get("seconds") or 0), bytes=int(d.get("bytes") or 0),
                interval_s=float(d.get("interval_s") or 1.0))
        if m.mode == "redirect":
            m.status = m.status or 307
            if not 300 <= m.status < 400 or not m.location:
                raise ValueError("redirect needs a 3xx status and a location")
        elif m.status and not 100 <= m.status <= 599:
            raise ValueError("status must be an HTTP status code")
        return m


def _take(request: web.Request) -> Mode | None:
    pending: list[Mode] = request.app[PENDING]
    for i, m in enumerate(pending):
        if request.path.startswith(m.path_prefix):
            if m.count > 0:
                m.count -= 1
                if m.count == 0:
                    del pending[i]
            return m
    return None


def make_modes_middleware(applied):
    """The middleware answering in the pending modes; `applied(request, mode)` does the bookkeeping."""

    @web.middleware
    async def modes_middleware(request: web.Request, handler):
        m = _take(request) if not request.path.startswith("/_emulator/") else None
        if m is None:
            return await handler(request)
        applied(request, m)
        if m.mode == "redirect":
            return web.json_response({"moved": m.location}, status=m.status, headers={"Location": m.location})
        if m.mode == "trickle" and m.status not in (0, 200):
            return await _body(request, m.status, m.bytes, m.interval_s, 1)
        resp = await handler(request)
        if resp.status != 200:
            return resp
        if m.mode == "bad_body":
            return web.Response(status=200, body=NOT_GZIP, headers={"Content-Encoding": "gzip",
                                                                   "Content-Type": "text/plain"})
        if m.mode == "slow":
            await asyncio.sleep(m.seconds)
            return resp
        if m.mode == "trickle":
            return await _body(request, 200, m.bytes, m.interval_s, 1)
        return await _body(request, 200, m.bytes, 0.0, 1 << 20)   # huge_body

    return modes_middleware


async def _body(request: web.Request, status: int, size: int, interval_s: float, piece: int) -> web.StreamResponse:
    resp = web.StreamResponse(status=status, headers={"Content-Type": "text/plain"})
    resp.content_length = size
    await resp.prepare(request)
    chunk = b"x" * piece
    sent = 0
    try:
        while sent < size:
            n = min(piece, size - sent)
            await resp.write(chunk[:n])
            sent += n
            if interval_s:
                await asyncio.sleep(interval_s)
        await resp.write_eof()
    except (ConnectionError, RuntimeError):   # the client gave up: fine, that is the point
        pass
    return resp


async def _post_modes(request: web.Request) -> web.Response:
    try:
        data = await request.json()
        new = [Mode.from_json(d) for d in (data if isinstance(data, list) else [data])]
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": f"invalid mode: {exc}"}, status=400)
    request.app[PENDING].extend(new)
    return await _get_modes(request)


async def _get_modes(request: web.Request) -> web.Response:
    return web.json_response({"modes": [asdict(m) for m in request.app[PENDING]]})


async def _delete_modes(request: web.Request) -> web.Response:
    """Drop the pending modes only (devices and accepted flows stay, unlike /_emulator/reset)."""
    request.app[PENDING].clear()
    return await _get_modes(request)


def add_mode_routes(app: web.Application) -> None:
    app[PENDING] = []
    app.router.add_post("/_emulator/chf_modes", _post_modes)
    app.router.add_get("/_emulator/chf_modes", _get_modes)
    app.router.add_delete("/_emulator/chf_modes", _delete_modes)


# ---------------------------------------------------------------- decoy: where redirects point

DECOY_LOG = web.AppKey("decoy_log", list)


async def _decoy_answer(request: web.Request) -> web.Response:
    body = await request.read()
    request.app[DECOY_LOG].append({"method": request.method, "path": request.path, "body_len": len(body),
                                   "token_sent": "X-CH-Auth-API-Token" in request.headers})
    return web.Response(status=200, text="ok")


async def _decoy_requests(request: web.Request) -> web.Response:
    return web.json_response({"requests": request.app[DECOY_LOG]})


def make_decoy_app() -> web.Application:
    """Answers 200 to anything (what a redirect target that "accepts" would do) and records each request:
    method, path, body length and whether an API token header came along (never its value).
    ``GET /_decoy/requests`` lists them."""
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app[DECOY_LOG] = []
    app.router.add_get("/_decoy/requests", _decoy_requests)
    app.router.add_route("*", "/{tail:.*}", _decoy_answer)
    return app
