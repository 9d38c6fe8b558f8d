"""The Kentik stand-in's device API: ``GET {root}/device/{name}``, ``POST {root}/device/`` and the export
heartbeat ``PUT {root}/cloudExport/status/{export_id}`` (see devstack/standins/kentik.py), plus the
credential check every route shares.
"""
from __future__ import annotations

import time

from aiohttp import web

API_ROOTS = ("/api/internal", "/api/v5")
CUSTOM_COLUMNS = tuple(f"STR{k:02d}" for k in range(19))
STATE = web.AppKey("kentik_state", dict)
CFG = web.AppKey("kentik_cfg", dict)


def authorized(request: web.Request) -> bool:
    cfg = request.app[CFG]
    return (request.headers.get("X-CH-Auth-Email") == cfg["email"]
            and request.headers.get("X-CH-Auth-API-Token") == cfg["token"])


def unauthorized() -> web.Response:
    return web.json_response({"error": "Authentication failed: bad X-CH-Auth-Email / X-CH-Auth-API-Token"},
                             status=401)


def bad(reason: str, status: int = 400) -> web.Response:
    return web.json_response({"error": reason}, status=status)


def public_device(dev: dict, with_columns: bool = True) -> dict:
    out = {k: v for k, v in dev.items() if not k.startswith("_")}
    if not with_columns:
        out.pop("custom_column_data", None)
    return out


async def get_device(request: web.Request) -> web.Response:
    if not authorized(request):
        return unauthorized()
    dev = request.app[STATE]["devices"].get(request.match_info["name"])
    if dev is None:
        return web.json_response({"error": "Device not found"}, status=404)
    return web.json_response({"device": public_device(dev)})


async def create_device(request: web.Request) -> web.Response:
    if not authorized(request):
        return unauthorized()
    try:
        body = await request.json()
        spec = body["device"]
        name = spec["device_name"]
    except (ValueError, KeyError, TypeError):
        return bad('body must be {"device": {"device_name": ..., ...}}')
    st = request.app[STATE]
    if not isinstance(name, str) or not name:
        return bad("device_name must be a non-empty string")
    if name in st["devices"]:
        return bad(f"Device name {name} already exists", 409)
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
    return web.json_response({"device": public_device(dev, with_columns=False)}, status=201)


async def export_status(request: web.Request) -> web.Response:
    if not authorized(request):
        return unauthorized()
    try:
        body = await request.json()
    except ValueError:
        return bad("body must be JSON")
    if not isinstance(body, dict):
        return bad("body must be a JSON object")
    request.app[STATE]["heartbeats"].append({
        "export_id": request.match_info["export_id"], "body_export_id": body.get("export_id"),
        "status": body.get("status"), "message": body.get("message"), "time": time.time()})
    return web.json_response({"ok": True})
