"""Kentik stand-in: device API (/api/internal and /api/v5), flow ingest (POST /chf) and inspection.

Behaves like the parts of Kentik that blueflow talks to (see docs/kentik.md):

* ``GET {root}/device/{name}`` -> 200 ``{"device": ...}`` / 404; ``POST {root}/device/`` -> 201 (no
  custom columns in the answer, like Kentik); ``PUT {root}/cloudExport/status/{export_id}`` records a
  heartbeat. ``{root}`` is ``/api/internal`` or ``/api/v5``. Bad ``X-CH-Auth-Email`` /
  ``X-CH-Auth-API-Token`` -> 401.
* ``POST /chf?sid=0&sender_id=<company>:<device name>:<device id>``: checks credentials, content type
  and encoding, gunzips, checks the 80 zero bytes, reads the packed ``PackedCHF`` with pycapnp and the
  project's schemas/kflow.capnp far enough to check every ``CHF.deviceId``, and keeps the packed body of
  requests it answers 200 (only those count as accepted). Flows are decoded only when asked for
  (``/_emulator/flows``), so the stand-in costs little CPU while a benchmark runs.
* Inspection: ``GET /_emulator/requests`` (every /chf call, token redacted, body base64),
  ``/_emulator/flows`` (decoded flows; ``?device=&since_seq=&offset=&limit=``), ``/_emulator/devices``,
  ``/_emulator/heartbeats``, ``/_emulator/stats``; ``POST /_emulator/reset``; ``POST /_emulator/faults``
  (devstack/standins/common.py; here also ``"retry_after": s`` for injected 429/503 answers);
  ``POST /_emulator/chf_modes``: misbehaving answers (redirects, undecodable, slow, trickled or huge bodies;
  devstack/standins/kentik_modes.py).

Run: ``python -m devstack.standins.kentik --host 127.0.0.1 --port P --token T --email E``.
"""
from __future__ import annotations

import asyncio
import base64
import time
import zlib

from aiohttp import web
from isal import igzip, isal_zlib

from devstack.standins.common import (FAULTS, RESET_HOOKS, STATS, add_emulator_routes, base_parser,
                                      fault_middleware, run_main)
from devstack.standins.chf_store import decoded_flows, device_sample, flow_json
from devstack.standins.kentik_devices import (API_ROOTS, CFG, STATE, authorized, bad,
                                              create_device, export_status, get_device, public_device,
                                              unauthorized)
from devstack.standins.kentik_modes import PENDING, add_mode_routes, make_modes_middleware

DEFAULT_TOKEN = "blueflow-dev-token"
DEFAULT_EMAIL = "dev@example.com"
REDACTED = "REDACTED"
SECRET_HEADERS = ("x-ch-auth-api-token", "authorization", "cookie")
SEQ = web.RequestKey("kentik_seq", int)
ENTRY = web.RequestKey("kentik_entry", dict)   # the /_emulator/requests entry of this request


def _new_state(company_id: str) -> dict:
    # bodies: accepted CHF requests (seq, time, device name, body as received), decoded into `flows` lazily
    # chf_check: "full" (every body unpacked, its deviceIds sampled, before the 200) or "deferred" (the
    # benchmark's: headers, gzip and prefix before the 200; readability and every deviceId when decoded)
    return {"company_id": company_id, "devices": {}, "next_device": 1, "heartbeats": [], "requests": [],
            "bodies": [], "flows": [], "decoded": 0, "seq": 0, "retry_after": None, "chf_check": "full",
            "counts": {"chf_requests": 0, "chf_accepted": 0, "flows_accepted": 0, "flows_wrong_device": 0,
                       "chf_rejected": {}, "modes_applied": {}}}


# --- flow ingest ------------------------------------------------------------------------------------

async def post_chf(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st["counts"]["chf_requests"] += 1
    if not authorized(request):
        return unauthorized()
    if request.content_type != "application/binary":
        return bad(f"Content-Type must be application/binary, got {request.content_type!r}", 415)
    if request.headers.get("Content-Encoding", "").lower() != "gzip":
        return bad("Content-Encoding must be gzip")
    sender = request.query.get("sender_id", "")
    parts = sender.split(":")
    if len(parts) != 3:
        return bad("sender_id must be <company_id>:<device_name>:<device_id>")
    company, name, dev_id = parts
    dev = st["devices"].get(name)
    if dev is None or dev["id"] != dev_id or dev["company_id"] != company:
        return bad(f"unknown sender_id {sender}")
    raw = await request.read()
    try:
        body = igzip.decompress(raw)  # ISA-L: a fraction of zlib's CPU, so the stand-in stays off the benchmark
    except (OSError, EOFError, zlib.error, isal_zlib.error) as exc:
        return bad(f"body is not gzip: {exc}")
    if len(body) < 80 or any(body[:80]):
        return bad("body must start with 80 zero bytes")
    packed = body[80:]
    count = 0  # deferred: counted when decoded
    if st["chf_check"] != "deferred":
        try:
            count, ids = device_sample(packed)
        except Exception as exc:  # noqa: BLE001 - any decoding problem is the client's
            return bad(f"cannot decode packed PackedCHF: {exc}")
        want = int(dev_id)
        wrong = len(ids) - ids.count(want)
        if wrong:
            return bad(f"{wrong} of {len(ids)} CHF read have a deviceId other than {want}")
    seq, now = request.get(SEQ, 0), time.time()
    st["bodies"].append((seq, now, name, raw))  # as received (gzip; the request record shares it): no copy
    if ENTRY in request:
        request[ENTRY]["flows"] = count
    st["counts"]["chf_accepted"] += 1
    st["counts"]["flows_accepted"] += count
    return web.Response(status=200)


# --- request recording (outermost: sees injected faults too) --------------------------------------

def _redact(headers) -> dict:
    return {k: (REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


@web.middleware
async def record_middleware(request: web.Request, handler):
    if request.path != "/chf":
        resp = await handler(request)
        return _apply_retry_after(request, resp)
    st = request.app[STATE]
    st["seq"] += 1
    request[SEQ] = seq = st["seq"]
    raw = await request.read()
    entry = {"seq": seq, "method": request.method, "path": request.path, "query": dict(request.query),
             "headers": _redact(request.headers), "body": raw, "body_len": len(raw), "status": None,
             "time": time.time(), "dropped": False, "mode": None, "mode_seconds": None, "flows": 0}
    st["requests"].append(entry)
    request[ENTRY] = entry
    try:
        resp = await handler(request)
    except asyncio.CancelledError:
        entry["dropped"] = True
        raise
    entry["status"] = resp.status
    if resp.status != 200:
        rej = st["counts"]["chf_rejected"]
        rej[str(resp.status)] = rej.get(str(resp.status), 0) + 1
    return _apply_retry_after(request, resp)


def _apply_retry_after(request: web.Request, resp):
    ra = request.app[STATE]["retry_after"]
    if ra is not None and resp.status in (429, 503) and resp.headers.get("Retry-After") == "0":
        resp.headers["Retry-After"] = str(ra)
    return resp


@web.middleware
async def faults_option_middleware(request: web.Request, handler):
    """Pick up the Kentik-only ``retry_after`` option of POST /_emulator/faults."""
    if request.path == "/_emulator/faults" and request.method == "POST":
        try:
            data = await request.json()
            items = data if isinstance(data, list) else [data]
            for d in items:
                if isinstance(d, dict) and d.get("retry_after") is not None:
                    request.app[STATE]["retry_after"] = d["retry_after"]
        except ValueError:
            pass
    return await handler(request)


# --- inspection -------------------------------------------------------------------------------------

async def list_flows(request: web.Request) -> web.Response:
    st = request.app[STATE]
    q = request.query
    device = q.get("device")
    since = int(q.get("since_seq", 0))
    offset, limit = int(q.get("offset", 0)), int(q.get("limit", 10 ** 9))
    names: dict[str, dict[int, str]] = {
        n: {int(c["field_id"]): c["col_name"] for c in d["custom_column_data"]} for n, d in st["devices"].items()}
    flows = await asyncio.get_running_loop().run_in_executor(None, decoded_flows, st)
    sel = [r for r in flows if (device is None or r[2] == device) and r[0] > since]
    out = [flow_json(s, t, n, f, names.get(n, {})) for s, t, n, f in sel[offset:offset + limit]]
    return web.json_response({"count": len(sel), "flows": out})


async def set_chf_check(request: web.Request) -> web.Response:
    """``POST /_emulator/chf_check {"check": "full"|"deferred"}`` until the next reset (which restores full):
    the benchmark defers the unpacking so that the stand-in stays far below the workers' CPU."""
    check = (await request.json()).get("check")
    if check not in ("full", "deferred"):
        return web.json_response({"error": "check must be full or deferred"}, status=400)
    request.app[STATE]["chf_check"] = check
    return web.json_response({"check": check})


async def list_requests(request: web.Request) -> web.Response:
    with_body = request.query.get("body", "1") != "0"
    reqs = [{k: v for k, v in r.items() if k != "body"} for r in request.app[STATE]["requests"]]
    if with_body:
        for out, r in zip(reqs, request.app[STATE]["requests"]):
            out["body_b64"] = base64.b64encode(r["body"]).decode()
    return web.json_response({"requests": reqs})


async def list_devices(request: web.Request) -> web.Response:
    return web.json_response({"devices": [public_device(d) for d in request.app[STATE]["devices"].values()]})


async def list_heartbeats(request: web.Request) -> web.Response:
    return web.json_response({"heartbeats": request.app[STATE]["heartbeats"]})


def _mode_applied(request: web.Request, mode) -> None:
    applied = request.app[STATE]["counts"]["modes_applied"]
    applied[mode.mode] = applied.get(mode.mode, 0) + 1
    if ENTRY in request:   # named at once: a slow answer is listed as such while it waits
        request[ENTRY].update(mode=mode.mode, mode_seconds=mode.seconds)


def _reset_state(app: web.Application) -> None:
    app[PENDING].clear()
    st = app[STATE]
    fresh = _new_state(st["company_id"])
    st.clear()
    st.update(fresh)
    _refresh_stats(app)


def _refresh_stats(app: web.Application) -> None:
    st = app[STATE]
    app[STATS]["kentik"] = dict(st["counts"], devices=len(st["devices"]), heartbeats=len(st["heartbeats"]),
                                flows_stored=st["counts"]["flows_accepted"])


@web.middleware
async def stats_middleware(request: web.Request, handler):
    if request.path == "/_emulator/stats":
        _refresh_stats(request.app)
    return await handler(request)


def make_app(token: str = DEFAULT_TOKEN, email: str = DEFAULT_EMAIL, company_id: str = "1001",
             client_max_size: int = 256 * 1024 * 1024) -> web.Application:
    # built like common.make_base_app, with the request recorder outside the fault injector
    app = web.Application(middlewares=[record_middleware, faults_option_middleware, stats_middleware,
                                       make_modes_middleware(_mode_applied), fault_middleware],
                          client_max_size=client_max_size,
                          handler_args={"auto_decompress": False})   # /chf bodies are kept as sent
    app[FAULTS] = []
    app[STATS] = {"requests": {}, "faults_applied": 0}
    app[RESET_HOOKS] = [_reset_state]
    app[STATE] = _new_state(str(company_id))
    app[CFG] = {"token": token, "email": email}
    add_emulator_routes(app)
    add_mode_routes(app)
    for root in API_ROOTS:
        app.router.add_get(root + "/device/{name}", get_device)
        app.router.add_post(root + "/device/", create_device)
        app.router.add_post(root + "/device", create_device)
        app.router.add_put(root + "/cloudExport/status/{export_id}", export_status)
    app.router.add_post("/chf", post_chf)
    app.router.add_post("/_emulator/chf_check", set_chf_check)
    app.router.add_get("/_emulator/requests", list_requests)
    app.router.add_get("/_emulator/flows", list_flows)
    app.router.add_get("/_emulator/devices", list_devices)
    app.router.add_get("/_emulator/heartbeats", list_heartbeats)
    return app


def main(argv: list[str] | None = None) -> None:
    p = base_parser("Kentik stand-in (device API, /chf ingest, inspection)")
    p.add_argument("--token", default=DEFAULT_TOKEN, help="accepted X-CH-Auth-API-Token")
    p.add_argument("--email", default=DEFAULT_EMAIL, help="accepted X-CH-Auth-Email")
    p.add_argument("--company-id", default="1001")
    run_main(p, lambda a: make_app(token=a.token, email=a.email, company_id=a.company_id), argv)


if __name__ == "__main__":
    main()
