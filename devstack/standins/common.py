"""Shared plumbing for the aiohttp stand-in servers (IAM, VPC, Kentik).

What every stand-in gets from here:

* `base_parser(description)`: an argparse parser with `--host` (default 127.0.0.1), `--port`
  (default 0 = ephemeral) and `--log-level`.
* `add_emulator_routes(app)`: the control API, never subject to faults:
    - `POST /_emulator/faults` JSON `{"status": int, "count": n, "latency_ms": x, "drop": bool,
      "path_prefix": "/...", "method": "GET"}`; every key is optional (count defaults to 1, path_prefix
      to "/"; count <= 0 means "until reset"). The fault is applied to the next `count` requests whose
      path starts with `path_prefix` (and whose method matches, if given): first wait `latency_ms`,
      then either drop the connection (`drop`), answer with `status` (an IBM-style JSON error,
      `Retry-After: 0` on 429/503), or, with neither, pass the request on (pure latency).
      Several faults queue up; the first matching one is used. Answers `{"faults": [...]}`.
    - `GET /_emulator/faults` lists pending faults; `DELETE /_emulator/faults` clears them (nothing else).
    - `POST /_emulator/reset` clears faults and counters and runs the app's `reset_hooks`.
    - `GET /_emulator/stats` `{"requests": {"METHOD /path": n}, "faults_applied": n}`.
* `fault_middleware`: installed by `make_base_app()`; it also counts requests for the stats.
* `serve(app, host, port)`: run until interrupted, printing one `listening on http://host:port`
  line to stdout once the socket is bound (port 0 shows the real port).
* `BackgroundServer(app)`: run an app on an ephemeral loopback port in a daemon thread — for
  tests: `with BackgroundServer(make_app()) as srv: srv.url`.

Nothing here logs request bodies or headers, so tokens and keys stay out of logs.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

__all__ = [
    "Fault", "FAULTS", "STATS", "RESET_HOOKS", "base_parser", "make_base_app", "add_emulator_routes",
    "fault_middleware", "json_error", "serve", "BackgroundServer", "run_main",
]

FAULTS = web.AppKey("blueflow_faults", list)
STATS = web.AppKey("blueflow_stats", dict)
RESET_HOOKS = web.AppKey("blueflow_reset_hooks", list)

log = logging.getLogger("blueflow.standin")


@dataclass
class Fault:
    status: int = 0
    count: int = 1
    latency_ms: float = 0.0
    drop: bool = False
    path_prefix: str = "/"
    method: str = ""

    @classmethod
    def from_json(cls, data: dict) -> "Fault":
        if not isinstance(data, dict):
            raise ValueError("fault must be a JSON object")
        f = cls(status=int(data.get("status") or 0), count=int(data.get("count", 1)),
                latency_ms=float(data.get("latency_ms") or 0), drop=bool(data.get("drop", False)),
                path_prefix=str(data.get("path_prefix") or "/"), method=str(data.get("method") or "").upper())
        if f.status and not 100 <= f.status <= 599:
            raise ValueError("status must be an HTTP status code")
        if not f.path_prefix.startswith("/"):
            raise ValueError("path_prefix must start with '/'")
        return f

    def matches(self, request: web.Request) -> bool:
        return request.path.startswith(self.path_prefix) and (not self.method or self.method == request.method)

    def as_json(self) -> dict:
        return dict(status=self.status, count=self.count, latency_ms=self.latency_ms, drop=self.drop,
                    path_prefix=self.path_prefix, method=self.method)


def json_error(status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
    """An IBM-style error body: {"errors": [{"code", "message"}], "trace": "..."}."""
    body = {"errors": [{"code": code, "message": message}], "trace": uuid.uuid4().hex, "status_code": status}
    return web.json_response(body, status=status, headers=headers)


def _take_fault(request: web.Request) -> Fault | None:
    faults: list[Fault] = request.app[FAULTS]
    for i, f in enumerate(faults):
        if f.matches(request):
            if f.count > 0:
                f.count -= 1
                if f.count == 0:
                    del faults[i]
            return f
    return None


@web.middleware
async def fault_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    if request.path.startswith("/_emulator/"):
        return await handler(request)
    stats = request.app[STATS]
    key = f"{request.method} {request.path}"
    stats["requests"][key] = stats["requests"].get(key, 0) + 1
    fault = _take_fault(request)
    if fault is None:
        return await handler(request)
    stats["faults_applied"] += 1
    if fault.latency_ms:
        await asyncio.sleep(fault.latency_ms / 1000.0)
    if fault.drop:
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError()  # aiohttp treats this as a vanished client
    if fault.status:
        headers = {"Retry-After": "0"} if fault.status in (429, 503) else None
        return json_error(fault.status, "injected_fault", f"fault injected by the stand-in (HTTP {fault.status})",
                          headers)
    return await handler(request)


async def _post_faults(request: web.Request) -> web.Response:
    try:
        data = await request.json()
        items = data if isinstance(data, list) else [data]
        new = [Fault.from_json(d) for d in items]
    except (ValueError, TypeError) as exc:
        return json_error(400, "bad_fault", f"invalid fault: {exc}")
    request.app[FAULTS].extend(new)
    return web.json_response({"faults": [f.as_json() for f in request.app[FAULTS]]})


async def _get_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": [f.as_json() for f in request.app[FAULTS]]})


async def _clear_faults(request: web.Request) -> web.Response:
    request.app[FAULTS].clear()
    return web.json_response({"faults": []})


async def _reset(request: web.Request) -> web.Response:
    request.app[FAULTS].clear()
    request.app[STATS].update(requests={}, faults_applied=0)
    for hook in request.app[RESET_HOOKS]:
        res = hook(request.app)
        if asyncio.iscoroutine(res):
            await res
    return web.json_response({"reset": True})


async def _stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS])


def add_emulator_routes(app: web.Application) -> None:
    app.router.add_post("/_emulator/faults", _post_faults)
    app.router.add_get("/_emulator/faults", _get_faults)
    app.router.add_delete("/_emulator/faults", _clear_faults)
    app.router.add_post("/_emulator/reset", _reset)
    app.router.add_get("/_emulator/stats", _stats)


def make_base_app(*, middlewares=(), client_max_size: int = 64 * 1024 * 1024) -> web.Application:
    """An Application with fault injection, request stats and the /_emulator control routes."""
    app = web.Application(middlewares=[fault_middleware, *middlewares], client_max_size=client_max_size)
    app[FAULTS] = []
    app[STATS] = {"requests": {}, "faults_applied": 0}
    app[RESET_HOOKS] = []
    add_emulator_routes(app)
    return app


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port to bind (default 0 = ephemeral)")
    p.add_argument("--log-level", default="WARNING", help="python logging level (default WARNING)")
    return p


async def _start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = site._server.sockets if site._server is not None else []  # noqa: SLF001 - aiohttp has no API
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, bound


def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> None:
    """Run `app` until SIGINT/SIGTERM; print `listening on http://host:port` when ready."""
    async def main() -> None:
        runner, bound = await _start(app, host, port)
        print(f"listening on http://{host}:{bound}", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        import signal

        loop = asyncio.new_event_loop()
        task = loop.create_task(main())
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, task.cancel)
            except (NotImplementedError, RuntimeError):
                pass
        try:
            loop.run_until_complete(task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()
    except KeyboardInterrupt:
        pass


def run_main(parser: argparse.ArgumentParser, make_app: Callable[[argparse.Namespace], web.Application],
             argv: list[str] | None = None) -> None:
    """Parse args, set up logging, build the app with `make_app(args)` and serve it."""
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    serve(make_app(args), args.host, args.port)


class BackgroundServer:
    """Run an aiohttp app on 127.0.0.1:<ephemeral> in a daemon thread (for tests and tools)."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 0):
        self.app, self.host, self.port = app, host, port
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> "BackgroundServer":
        self._thread = threading.Thread(target=self._run, name="standin", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise RuntimeError(f"stand-in failed to start: {self._error}") from self._error
        if not self.url:
            raise RuntimeError("stand-in did not start within 30 s")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            self._runner, bound = loop.run_until_complete(_start(self.app, self.host, self.port))
            self.port = bound
            self.url = f"http://{self.host}:{bound}"
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    def call(self, fn: Callable[[], object]) -> object:
        """Run `fn()` on the server's loop thread and return its result (e.g. to poke app state)."""
        assert self._loop is not None
        async def wrap():
            return fn()
        return asyncio.run_coroutine_threadsafe(wrap(), self._loop).result(10)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> "BackgroundServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
