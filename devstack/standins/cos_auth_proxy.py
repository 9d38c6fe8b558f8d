"""COS IAM auth proxy for the local stack: the IAM (bearer token) face of the COS stand-in.

IBM COS accepts `Authorization: Bearer <IAM access token>` (what ibm_boto3 sends with
`signature_version="oauth"`). S3Proxy only knows AWS signatures, so this small aiohttp reverse proxy
checks the bearer token with the IAM stand-in (`GET /_emulator/verify?token=...`, valid answers cached
briefly) and forwards the request, minus the Authorization header, to an internal S3Proxy running with
`authorization=none` on the same filesystem basedir as the HMAC S3Proxy. Bodies stream both ways.

For the fault suite (devstack/faults/) the proxy also keeps a request log (method, path, object keys of a
multi-object delete, status, wall-clock time) at `GET /_emulator/requests`, and takes the stand-ins' fault
injection (`POST /_emulator/faults`, devstack/standins/common.py) so COS get/delete failures can be injected;
`POST /_emulator/reset` clears both. Tokens are never logged.

Listing order: IBM's COS API reference says listings come "in non-lexographical order"; S3Proxy always lists
in key order. With `--shuffle-listings` (the stack: BLUEFLOW_DEVSTACK_SHUFFLE_LISTINGS=1) or
`POST /_emulator/listing_order {"shuffle": true}` the proxy shuffles the entries of every listing page it
forwards, so code that reads meaning into key order fails its tests. `/_emulator/reset` leaves it as it is.

Run: python -m devstack.standins.cos_auth_proxy --host 127.0.0.1 --port P --upstream http://127.0.0.1:U --iam-url http://127.0.0.1:I
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import logging
import random
import re
import time
from xml.sax.saxutils import escape

import aiohttp
from aiohttp import web
from yarl import URL

from devstack.standins import common

log = logging.getLogger("blueflow.cos_auth_proxy")

# Request headers never forwarded upstream (hop-by-hop, or replaced by the proxy).
_DROP_REQUEST = frozenset(h.lower() for h in (
    "Authorization", "Host", "Connection", "Keep-Alive", "Proxy-Authorization", "TE", "Trailer",
    "Transfer-Encoding", "Upgrade", "Expect"))
# Response headers never copied back (hop-by-hop; aiohttp frames the body itself).
_DROP_RESPONSE = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Transfer-Encoding", "Trailer", "Upgrade", "Server", "Date"))

CHUNK = 64 * 1024


def _s3_error(status: int, code: str, message: str, resource: str) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource></Error>"
    )
    return web.Response(status=status, body=body.encode(), content_type="application/xml")


class TokenVerifier:
    """Asks the IAM stand-in whether a token is valid; caches positive answers for `ttl` seconds."""

    def __init__(self, iam_url: str, session: aiohttp.ClientSession, ttl: float = 30.0) -> None:
        self._url = iam_url.rstrip("/") + "/_emulator/verify"
        self._session = session
        self._ttl = ttl
        self._valid: dict[str, float] = {}  # sha256(token) -> valid-until (monotonic)

    async def verify(self, token: str) -> tuple[bool, str]:
        digest = hashlib.sha256(token.encode()).hexdigest()
        now = time.monotonic()
        until = self._valid.get(digest)
        if until is not None and until > now:
            return True, ""
        try:
            async with self._session.get(self._url, params={"token": token}) as resp:
                text = await resp.text()
                ok = resp.status == 200
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return False, f"IAM token check unavailable: {type(exc).__name__}"
        if ok:
            if len(self._valid) > 10_000:
                self._valid.clear()
            self._valid[digest] = now + self._ttl
            return True, ""
        self._valid.pop(digest, None)
        return False, f"IAM rejected the token (HTTP {resp.status}): {text[:200]}"


REQUEST_LOG = web.AppKey("blueflow_request_log", list)
MAX_LOG = 500_000
_KEY_RE = re.compile(rb"<Key>(.*?)</Key>", re.S)


def deleted_keys(body: bytes) -> list[str]:
    """The object keys named in a multi-object delete request body (S3 `<Delete><Object><Key>`)."""
    from xml.sax.saxutils import unescape

    return [unescape(m.decode("utf-8", "replace"), {"&quot;": '"', "&apos;": "'"}) for m in _KEY_RE.findall(body)]


@web.middleware
async def request_log_middleware(request: web.Request, handler):
    """Record every S3 request (not the control routes): method, path, query, keys, status, time."""
    if request.path.startswith("/_emulator/"):
        return await handler(request)
    entry = {"method": request.method, "path": request.path, "query": request.query_string,  # decoded once
             "status": 0, "at": time.time()}
    request["log_entry"] = entry
    try:
        response = await handler(request)
        entry["status"] = response.status
        return response
    finally:
        entry["done_at"] = time.time()
        log_list = request.app[REQUEST_LOG]
        if len(log_list) >= MAX_LOG:
            del log_list[: MAX_LOG // 10]
        log_list.append(entry)


LISTING_ORDER = web.AppKey("blueflow_listing_order", dict)
_CONTENTS_RE = re.compile(rb"<Contents>.*?</Contents>", re.S)


def shuffle_listing(body: bytes, rng: random.Random) -> bytes:
    """A ListObjects(V2) page with its <Contents> entries in a random order (everything else unchanged)."""
    entries = _CONTENTS_RE.findall(body)
    if len(entries) < 2:
        return body
    shuffled = list(entries)
    rng.shuffle(shuffled)
    pieces = _CONTENTS_RE.split(body)
    out = [pieces[0]]
    for entry, piece in zip(shuffled, pieces[1:]):
        out += [entry, piece]
    return b"".join(out)


def _is_listing(request: web.Request) -> bool:
    """GET of a bucket (path /<bucket> with no key) without a sub-resource other than list-type: a listing."""
    if request.method != "GET" or "/" in request.path.strip("/"):
        return False
    return not (set(request.query) - {"list-type", "prefix", "max-keys", "start-after", "continuation-token",
                                      "delimiter", "marker", "encoding-type", "fetch-owner"})


async def _listing_order(request: web.Request) -> web.Response:
    if request.method == "POST":
        body = await request.json()
        request.app[LISTING_ORDER]["shuffle"] = bool(body.get("shuffle"))
    return web.json_response(request.app[LISTING_ORDER])


async def _get_requests(request: web.Request) -> web.Response:
    since = float(request.query.get("since", "0") or 0)
    return web.json_response({"requests": [e for e in request.app[REQUEST_LOG] if e["at"] >= since]})


def make_app(*, upstream: str, iam_url: str, cache_ttl: float = 30.0, shuffle: bool = False) -> web.Application:
    """Build the proxy application. `upstream` is the base URL of the authorization=none S3Proxy."""
    app = web.Application(client_max_size=0, middlewares=[request_log_middleware, common.fault_middleware])
    app[common.FAULTS] = []
    app[common.STATS] = {"requests": {}, "faults_applied": 0}
    app[REQUEST_LOG] = []
    app[common.RESET_HOOKS] = [lambda a: a[REQUEST_LOG].clear()]
    common.add_emulator_routes(app)
    app.router.add_get("/_emulator/requests", _get_requests)
    app[LISTING_ORDER] = {"shuffle": shuffle}
    app["upstream"], app["rng"] = upstream.rstrip("/"), random.Random()
    app.router.add_route("GET", "/_emulator/listing_order", _listing_order)
    app.router.add_route("POST", "/_emulator/listing_order", _listing_order)

    async def on_startup(app: web.Application) -> None:
        timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=300)
        app["session"] = aiohttp.ClientSession(
            timeout=timeout, auto_decompress=False, connector=aiohttp.TCPConnector(limit=256))
        app["verifier"] = TokenVerifier(iam_url, app["session"], ttl=cache_ttl)

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    app.router.add_route("*", r"/{tail:[\s\S]*}", _forward)  # keys may hold any character, newlines too
    return app


async def _refused(request: web.Request) -> web.Response | None:
    """403 unless the request carries a bearer token the IAM stand-in accepts."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return _s3_error(403, "AccessDenied",
                         "This endpoint requires an IAM bearer token (Authorization: Bearer <token>)", request.path)
    ok, reason = await request.app["verifier"].verify(token.strip())
    return None if ok else _s3_error(403, "AccessDenied", reason or "invalid IAM token", request.path)


async def _forward(request: web.Request) -> web.StreamResponse:
    """The request, authorized, sent on to S3Proxy (no authorization) and its answer relayed."""
    refused = await _refused(request)
    if refused is not None:
        return refused
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_REQUEST}
    has_body = request.body_exists
    data = request.content if has_body else None
    if has_body and request.method == "POST" and "delete" in request.query:
        data = await request.read()  # small XML; the log needs its keys
        if "log_entry" in request:
            request["log_entry"]["keys"] = deleted_keys(data)
    if has_body and "Content-Length" not in request.headers:
        headers.pop("Content-Length", None)
    # encoded=True: forward the path and query byte for byte (keys hold percent-encoded CRNs).
    url = URL(request.app["upstream"] + request.rel_url.raw_path_qs, encoded=True)
    session: aiohttp.ClientSession = request.app["session"]
    try:
        async with session.request(request.method, url, headers=headers, data=data,
                                   allow_redirects=False, skip_auto_headers=("Content-Type",)) as up:
            return await _relay(request, up)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        log.warning("upstream %s %s failed: %s", request.method, request.path, type(exc).__name__)
        return _s3_error(502, "ServiceUnavailable", f"COS stand-in upstream failed: {type(exc).__name__}",
                         request.path)


async def _relay(request: web.Request, up: aiohttp.ClientResponse) -> web.StreamResponse:
    """S3Proxy's answer streamed back (a listing shuffled when asked)."""
    resp = web.StreamResponse(status=up.status, reason=up.reason)
    for k, v in up.headers.items():
        if k.lower() not in _DROP_RESPONSE:
            resp.headers.add(k, v)
    if request.method == "HEAD":
        await resp.prepare(request)
        await resp.write_eof()
        return resp
    if up.status == 200 and request.app[LISTING_ORDER]["shuffle"] and _is_listing(request):
        body = shuffle_listing(await up.read(), request.app["rng"])
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body)
        await resp.write_eof()
        return resp
    if "Content-Length" in up.headers:
        resp.content_length = int(up.headers["Content-Length"])
    await resp.prepare(request)
    async for chunk in up.content.iter_chunked(CHUNK):
        await resp.write(chunk)
    await resp.write_eof()
    return resp


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--upstream", required=True, help="base URL of the authorization=none S3Proxy")
    p.add_argument("--iam-url", required=True, help="base URL of the IAM stand-in")
    p.add_argument("--cache-ttl", type=float, default=30.0, help="seconds a verified token is trusted")
    p.add_argument("--shuffle-listings", action="store_true", help="shuffle the entries of every listing page")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = make_app(upstream=args.upstream, iam_url=args.iam_url, cache_ttl=args.cache_ttl, shuffle=args.shuffle_listings)
    print(f"cos_auth_proxy listening on http://{args.host}:{args.port} -> {args.upstream}", flush=True)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
