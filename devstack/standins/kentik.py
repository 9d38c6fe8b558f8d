"""Kentik stand-in: device API (/api/internal and /api/v5), flow ingest (POST /chf) and inspection.

Behaves like the parts of Kentik that blueflow talks to (see docs/kentik.md):

* ``GET {root}/device/{name}`` -> 200 ``{"device": ...}`` / 404; ``POST {root}/device/`` -> 201 (no
  custom columns in the answer, like Kentik); ``PUT {root}/cloudExport/status/{export_id}`` records a
  heartbeat. ``{root}`` is ``/api/internal`` or ``/api/v5``. Bad ``X-CH-Auth-Email`` /
  ``X-CH-Auth-API-Token`` -> 401.
* ``POST /chf?sid=0&sender_id=<company>:<device name>:<device id>``: checks credentials, content type
  and encoding, gunzips, checks the 80 zero bytes, decodes the packed ``PackedCHF`` with pycapnp and
  the project's schemas/kflow.capnp, checks every ``CHF.deviceId``; keeps the flows of requests it
  answers 200 (only those count as accepted).
* Inspection: ``GET /_emulator/requests`` (every /chf call, token redacted, body base64),
  ``/_emulator/flows`` (decoded flows; ``?device=&since_seq=&offset=&limit=``), ``/_emulator/devices``,
  ``/_emulator/heartbeats``, ``/_emulator/stats``; ``POST /_emulator/reset``; ``POST /_emulator/faults``
  (devstack/standins/common.py; here also ``"retry_after": s`` for injected 429/503 answers).

Run: ``python -m devstack.standins.kentik --host 127.0.0.1 --port P --token T --email E``.
"""
from __future__ import annotations

import asyncio
import base64
import gzip
import time
import zlib
from typing import Any

from aiohttp import web

from devstack.standins.common import (FAULTS, RESET_HOOKS, STATS, add_emulator_routes, base_parser,
                                      fault_middleware, run_main)

DEFAULT_TOKEN = "blueflow-dev-token"
DEFAULT_EMAIL = "dev@example.com"
API_ROOTS = ("/api/internal", "/api/v5")
CUSTOM_COLUMNS = tuple(f"STR{k:02d}" for k in range(19))
REDACTED = "REDACTED"
SECRET_HEADERS = ("x-ch-auth-api-token", "authorization", "cookie")
# compact flow tuple layout (kept in memory); FLOW_FIELDS names the scalar part
FLOW_FIELDS = ("timestamp", "src_addr", "dst_addr", "src_port", "dst_port", "protocol", "in_bytes",
               "in_pkts", "out_bytes", "out_pkts", "sample_rate", "sample_adj", "app_protocol", "big",
               "device_id", "timestamp_nano", "is_metric")

STATE = web.AppKey("kentik_state", dict)
CFG = web.AppKey("kentik_cfg", dict)
SEQ = web.RequestKey("kentik_seq", int)


def _new_state(company_id: str) -> dict:
    return {"company_id": company_id, "devices": {}, "next_device": 1, "heartbeats": [], "requests": [],
            "flows": [], "seq": 0, "retry_after": None,
            "counts": {"chf_requests": 0, "chf_accepted": 0, "flows_accepted": 0, "chf_rejected": {}}}


def _authorized(request: web.Request) -> bool:
    cfg = request.app[CFG]
    return (request.headers.get("X-CH-Auth-Email") == cfg["email"]
            and request.headers.get("X-CH-Auth-API-Token") == cfg["token"])


def _unauthorized() -> web.Response:
    return web.json_response({"error": "Authentication failed: bad X-CH-Auth-Email / X-CH-Auth-API-Token"},
                             status=401)


def _bad(reason: str, status: int = 400) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def _public_device(dev: dict, with_columns: bool = True) -> dict:
    out = {k: v for k, v in dev.items() if not k.startswith("_")}
    if not with_columns:
        out.pop("custom_column_data", None)
    return out


# --- device API -----------------------------------------------------------------------------------

async def get_device(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _unauthorized()
    dev = request.app[STATE]["devices"].get(request.match_info["name"])
    if dev is None:
        return web.json_response({"error": "Device not found"}, status=404)
    return web.json_response({"device": _public_device(dev)})


async def create_device(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _unauthorized()
    try:
        body = await request.json()
        spec = body["device"]
        name = spec["device_name"]
    except (ValueError, KeyError, TypeError):
        return _bad('body must be {"device": {"device_name": ..., ...}}')
    st = request.app[STATE]
    if not isinstance(name, str) or not name:
        return _bad("device_name must be a non-empty string")
    if name in st["devices"]:
        return _bad(f"Device name {name} already exists", 409)
    n = st["next_device"]
    st["next_device"] += 1
    dev_id = 100000 + n
    dev = {
        "id": str(dev_id),
        "device_name": name,
        "company_id": st["company_id"],
        "device_type": spec.get("device_type", ""),
        "device_subtype": spec.get("device_subtype", ""),
        "device_description": spec.get("device_description", ""),
        "device_sample_rate": str(spec.get("device_sample_rate", "1")),
        "device_bgp_type": spec.get("device_bgp_type", "none"),
        "plan_id": spec.get("plan_id"),
        "cloud_export_id": spec.get("cloud_export_id"),
        "cloud_region": spec.get("cloud_region"),
        "cloud_zone": spec.get("cloud_zone"),
        "sending_ips": spec.get("sending_ips", []),
        # distinct per column and per device, so that mixing up devices' ids shows in tests
        "custom_column_data": [{"field_id": str(20000 + 100 * n + k), "col_name": col, "col_type": "string"}
                               for k, col in enumerate(CUSTOM_COLUMNS)],
        "created_at": time.time(),
    }
    st["devices"][name] = dev
    return web.json_response({"device": _public_device(dev, with_columns=False)}, status=201)


async def export_status(request: web.Request) -> web.Response:
    if not _authorized(request):
        return _unauthorized()
    try:
        body = await request.json()
    except ValueError:
        return _bad("body must be JSON")
    if not isinstance(body, dict):
        return _bad("body must be a JSON object")
    request.app[STATE]["heartbeats"].append({
        "export_id": request.match_info["export_id"], "body_export_id": body.get("export_id"),
        "status": body.get("status"), "message": body.get("message"), "time": time.time()})
    return web.json_response({"ok": True})


# --- flow ingest ------------------------------------------------------------------------------------

def _decode_flows(packed: bytes) -> list[tuple]:
    from connectors.kflow import load_schema  # pycapnp import is slow: only when flows arrive

    reader = load_schema().PackedCHF.from_bytes_packed(packed, traversal_limit_in_words=1 << 40)
    out = []
    for c in reader.msgs:
        customs = tuple((cu.id, _custom_value(cu)) for cu in c.custom)
        out.append((c.timestamp, c.ipv4SrcAddr, c.ipv4DstAddr, c.l4SrcPort, c.l4DstPort, c.protocol,
                    c.inBytes, c.inPkts, c.outBytes, c.outPkts, c.sampleRate, c.sampleAdj, c.appProtocol,
                    c.big, c.deviceId, c.timestampNano, c.isMetric, customs))
    return out


def _custom_value(cu) -> Any:
    v = cu.value
    which = v.which()
    if which in ("addrVal",):
        return base64.b64encode(bytes(v.addrVal)).decode()
    return getattr(v, which)


async def post_chf(request: web.Request) -> web.Response:
    st = request.app[STATE]
    st["counts"]["chf_requests"] += 1
    if not _authorized(request):
        return _unauthorized()
    if request.content_type != "application/binary":
        return _bad(f"Content-Type must be application/binary, got {request.content_type!r}", 415)
    if request.headers.get("Content-Encoding", "").lower() != "gzip":
        return _bad("Content-Encoding must be gzip")
    sender = request.query.get("sender_id", "")
    parts = sender.split(":")
    if len(parts) != 3:
        return _bad("sender_id must be <company_id>:<device_name>:<device_id>")
    company, name, dev_id = parts
    dev = st["devices"].get(name)
    if dev is None or dev["id"] != dev_id or dev["company_id"] != company:
        return _bad(f"unknown sender_id {sender}")
    raw = await request.read()
    try:
        body = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        return _bad(f"body is not gzip: {exc}")
    if len(body) < 80 or any(body[:80]):
        return _bad("body must start with 80 zero bytes")
    try:
        flows = await asyncio.get_running_loop().run_in_executor(None, _decode_flows, body[80:])
    except Exception as exc:  # noqa: BLE001 - any decoding problem is the client's
        return _bad(f"cannot decode packed PackedCHF: {exc}")
    want = int(dev_id)
    bad = sum(1 for f in flows if f[14] != want)
    if bad:
        return _bad(f"{bad} of {len(flows)} CHF have a deviceId other than {want}")
    seq, now = request.get(SEQ, 0), time.time()
    st["flows"].extend((seq, now, name, f) for f in flows)
    st["counts"]["chf_accepted"] += 1
    st["counts"]["flows_accepted"] += len(flows)
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
             "headers": _redact(request.headers), "body_b64": base64.b64encode(raw).decode(),
             "body_len": len(raw), "status": None, "time": time.time(), "dropped": False}
    st["requests"].append(entry)
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

def _flow_json(seq: int, t: float, name: str, f: tuple, col_names: dict[int, str]) -> dict:
    d = dict(zip(FLOW_FIELDS, f))
    d["customs"] = {col_names.get(i, str(i)): v for i, v in f[17]}
    d.update(device_name=name, request_seq=seq, received_at=t)
    return d


async def list_flows(request: web.Request) -> web.Response:
    st = request.app[STATE]
    q = request.query
    device = q.get("device")
    since = int(q.get("since_seq", 0))
    offset, limit = int(q.get("offset", 0)), int(q.get("limit", 10 ** 9))
    names: dict[str, dict[int, str]] = {
        n: {int(c["field_id"]): c["col_name"] for c in d["custom_column_data"]} for n, d in st["devices"].items()}
    sel = [r for r in st["flows"] if (device is None or r[2] == device) and r[0] > since]
    out = [_flow_json(s, t, n, f, names.get(n, {})) for s, t, n, f in sel[offset:offset + limit]]
    return web.json_response({"count": len(sel), "flows": out})


async def list_requests(request: web.Request) -> web.Response:
    reqs = request.app[STATE]["requests"]
    if request.query.get("body", "1") == "0":
        reqs = [{k: v for k, v in r.items() if k != "body_b64"} for r in reqs]
    return web.json_response({"requests": reqs})


async def list_devices(request: web.Request) -> web.Response:
    return web.json_response({"devices": [_public_device(d) for d in request.app[STATE]["devices"].values()]})


async def list_heartbeats(request: web.Request) -> web.Response:
    return web.json_response({"heartbeats": request.app[STATE]["heartbeats"]})


def _reset_state(app: web.Application) -> None:
    st = app[STATE]
    fresh = _new_state(st["company_id"])
    st.clear()
    st.update(fresh)
    _refresh_stats(app)


def _refresh_stats(app: web.Application) -> None:
    st = app[STATE]
    app[STATS]["kentik"] = dict(st["counts"], devices=len(st["devices"]), heartbeats=len(st["heartbeats"]),
                                flows_stored=len(st["flows"]))


@web.middleware
async def stats_middleware(request: web.Request, handler):
    if request.path == "/_emulator/stats":
        _refresh_stats(request.app)
    return await handler(request)


def make_app(token: str = DEFAULT_TOKEN, email: str = DEFAULT_EMAIL, company_id: str = "1001",
             client_max_size: int = 256 * 1024 * 1024) -> web.Application:
    # built like common.make_base_app, with the request recorder outside the fault injector
    app = web.Application(middlewares=[record_middleware, faults_option_middleware, stats_middleware,
                                       fault_middleware],
                          client_max_size=client_max_size,
                          handler_args={"auto_decompress": False})   # /chf bodies are kept as sent
    app[FAULTS] = []
    app[STATS] = {"requests": {}, "faults_applied": 0}
    app[RESET_HOOKS] = [_reset_state]
    app[STATE] = _new_state(str(company_id))
    app[CFG] = {"token": token, "email": email}
    add_emulator_routes(app)
    for root in API_ROOTS:
        app.router.add_get(root + "/device/{name}", get_device)
        app.router.add_post(root + "/device/", create_device)
        app.router.add_post(root + "/device", create_device)
        app.router.add_put(root + "/cloudExport/status/{export_id}", export_status)
    app.router.add_post("/chf", post_chf)
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
