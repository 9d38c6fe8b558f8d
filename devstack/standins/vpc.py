"""Local stand-in for the IBM Cloud VPC API (regional, `/{region}/v1/...`), serving the seeded World.

Read-only collections shaped like the real API: vpcs, subnets, instances (legacy
`primary_network_interface`/`network_interfaces`, plus `network_attachments` for VNI instances),
`instances/{id}/network_interfaces`, `instances/{id}/network_attachments`, virtual_network_interfaces,
floating_ips (NIC/VNI targets and public-gateway addresses), load_balancers, vpn_gateways,
public_gateways, each also as `/{collection}/{id}`.

Like IBM: every request needs `version=YYYY-MM-DD` and `generation=2` (else 400), and
`Authorization: Bearer <jwt>` (else 401). With `--iam-url` tokens are checked against the IAM
stand-in's `/_emulator/verify` (results cached until the token's exp); without it any well-formed,
unexpired three-part JWT is accepted. Collections page with `limit` (default 50, max 100; 400 outside
1..100; silently capped at `--max-limit` when that is lower, to force paging in tests) and opaque
`start` tokens; answers carry `limit`, `total_count`, `first.href` and `next.href` (absent on the last page).
Fault injection and stats: see devstack.standins.common.

    python -m devstack.standins.vpc --host 127.0.0.1 --port 19084 --seed 1 --regions us-south,eu-de \
        [--iam-url http://127.0.0.1:19082] [--max-limit 100]
"""

from __future__ import annotations

import datetime as dt
import re
import time
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from devstack.standins.common import RESET_HOOKS, base_parser, json_error, make_base_app, run_main
from devstack.standins.iam import decode_jwt_unverified
from devstack.standins.vpc_render import Renderer
from devstack.synth.world import World
from devstack.synth.worldgen import build_world

__all__ = ["make_app", "main", "COLLECTIONS"]

STATE = web.AppKey("vpc_state", dict)
COLLECTIONS = ("vpcs", "subnets", "instances", "virtual_network_interfaces", "floating_ips", "load_balancers",
               "vpn_gateways", "public_gateways")
_FILTERS = ("name", "vpc.id", "vpc.crn", "vpc.name", "zone.name", "resource_group.id", "subnet.id", "target.id")
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _world(app: web.Application, request: web.Request) -> World:
    """The world of the token's account (several accounts: `--extra-world-seed`), else the default one."""
    claims = decode_jwt_unverified(request.headers.get("Authorization", "")[7:].strip()) or {}
    account = (claims.get("account") or {}).get("bss") if isinstance(claims.get("account"), dict) else None
    return app[STATE]["worlds"].get(account, app[STATE]["world"])


def _rendered(app: web.Application, region: str, base: str, world: World) -> dict[str, list[dict]]:
    st = app[STATE]
    key = (region, base, world.account)
    cols = st["cache"].get(key)
    if cols is None:
        if len(st["cache"]) > 64:
            st["cache"].clear()
        renderer = Renderer(world, region, base)
        cols = st["cache"][key] = renderer.collections()
        cols["_by_id"] = {c: {r["id"]: r for r in rows} for c, rows in cols.items()}
        cols["_renderer"] = renderer
    return cols


# ---------------------------------------------------------------------------------------------
# Request checks

async def _authorized(request: web.Request) -> web.Response | None:
    st = request.app[STATE]
    auth = request.headers.get("Authorization", "")
    if not auth.lower().startswith("bearer ") or not auth[7:].strip():
        return json_error(401, "not_authorized", "The request does not contain a valid bearer token.")
    token = auth[7:].strip()
    claims = decode_jwt_unverified(token)
    now = time.time()
    if claims is None or not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= now:
        return json_error(401, "not_authorized", "The bearer token is malformed or expired.")
    if not st["iam_url"]:
        return None
    cache: dict = st["token_cache"]
    exp = cache.get(token)
    if exp is not None and exp > now:
        return None
    try:
        session: aiohttp.ClientSession = st["session"]
        async with session.get(f"{st['iam_url']}/_emulator/verify", params={"token": token}) as resp:
            ok = resp.status == 200
    except (aiohttp.ClientError, TimeoutError) as exc:
        return json_error(503, "iam_unavailable", f"could not verify the token with IAM: {type(exc).__name__}")
    if not ok:
        return json_error(401, "not_authorized", "The bearer token was not accepted by IAM.")
    if len(cache) > 10000:
        cache.clear()
    cache[token] = float(claims["exp"])
    return None


def _check_version(request: web.Request) -> web.Response | None:
    version = request.query.get("version")
    if not version:
        return json_error(400, "missing_version", "The 'version' query parameter is required.")
    if not _VERSION_RE.match(version):
        return json_error(400, "invalid_version", f"The version '{version}' is not a date in YYYY-MM-DD format.")
    try:
        d = dt.date.fromisoformat(version)
    except ValueError:
        return json_error(400, "invalid_version", f"The version '{version}' is not a valid date.")
    if d > dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1) or d < dt.date(2019, 1, 1):
        return json_error(400, "invalid_version", f"The version '{version}' is outside the supported range.")
    gen = request.query.get("generation")
    if gen is None:
        return json_error(400, "missing_generation", "The 'generation' query parameter is required.")
    if gen != "2":
        return json_error(400, "invalid_generation", "Only generation=2 is supported.")
    return None


def _base(request: web.Request, region: str) -> str:
    return f"{request.url.origin()}/{region}/v1"


def _get_path(obj: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


# ---------------------------------------------------------------------------------------------
# Handlers

async def _guard(request: web.Request) -> tuple[web.Response | None, dict | None]:
    err = await _authorized(request)
    if err is None:
        err = _check_version(request)
    if err is not None:
        return err, None
    region = request.match_info["region"]
    world = _world(request.app, request)
    if region not in world.regions:
        return json_error(404, "not_found", f"Region '{region}' is not served by this endpoint."), None
    return None, _rendered(request.app, region, _base(request, region), world)


async def _list(request: web.Request) -> web.Response:
    err, cols = await _guard(request)
    if err is not None:
        return err
    coll = request.match_info["collection"]
    if coll not in COLLECTIONS:
        return json_error(404, "not_found", f"Unknown collection '{coll}'.")
    st = request.app[STATE]
    rows = cols[coll]
    filters = {k: v for k, v in request.query.items() if k in _FILTERS}
    if filters:
        rows = [r for r in rows if all(_get_path(r, k) == v for k, v in filters.items())]
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        return json_error(400, "invalid_limit", "The 'limit' query parameter must be an integer.")
    if not 1 <= limit <= 100:
        return json_error(400, "invalid_limit", "The 'limit' query parameter must be between 1 and 100.")
    limit = min(limit, st["max_limit"])
    offset = 0
    start = request.query.get("start")
    if start:
        ids = [r["id"] for r in rows]
        if start not in ids:
            return json_error(400, "invalid_start", "The 'start' token is not valid for this collection.")
        offset = ids.index(start)
    page = rows[offset:offset + limit]
    base_url = f"{_base(request, request.match_info['region'])}/{coll}"
    keep = {k: v for k, v in request.query.items() if k in _FILTERS}
    body = {coll: page, "limit": limit, "total_count": len(rows),
            "first": {"href": f"{base_url}?{urlencode({**keep, 'limit': limit})}"}}
    if offset + limit < len(rows):
        nxt = rows[offset + limit]["id"]
        body["next"] = {"href": f"{base_url}?{urlencode({**keep, 'limit': limit, 'start': nxt})}"}
    return web.json_response(body)


async def _get_one(request: web.Request) -> web.Response:
    err, cols = await _guard(request)
    if err is not None:
        return err
    coll, rid = request.match_info["collection"], request.match_info["id"]
    if coll not in COLLECTIONS:
        return json_error(404, "not_found", f"Unknown collection '{coll}'.")
    row = cols["_by_id"][coll].get(rid)
    if row is None:
        return json_error(404, "not_found", f"{coll[:-1]} '{rid}' not found.")
    return web.json_response(row)


def _instance_or_404(request: web.Request):
    try:
        inst = _world(request.app, request).instance(request.match_info["id"])
    except KeyError:
        return None
    return inst if inst.region == request.match_info["region"] else None


async def _instance_sub(request: web.Request) -> web.Response:
    err, cols = await _guard(request)
    if err is not None:
        return err
    inst = _instance_or_404(request)
    if inst is None:
        return json_error(404, "not_found", f"instance '{request.match_info['id']}' not found.")
    r: Renderer = cols["_renderer"]
    sub = request.match_info["sub"]
    if sub == "network_interfaces":
        rows = [r.nic_full(inst, n) for n in inst.nics]
    elif sub == "network_attachments":
        rows = [r.attachment_full(inst, n) for n in inst.nics] if inst.uses_vni else []
    else:
        return json_error(404, "not_found", f"Unknown sub-collection '{sub}'.")
    sub_id = request.match_info.get("sub_id")
    if sub_id:
        row = next((x for x in rows if x["id"] == sub_id), None)
        return web.json_response(row) if row else json_error(404, "not_found", f"'{sub_id}' not found.")
    return web.json_response({sub: rows})


async def _startup(app: web.Application) -> None:
    st = app[STATE]
    if st["iam_url"]:
        st["session"] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))


async def _cleanup(app: web.Application) -> None:
    session = app[STATE].get("session")
    if session is not None:
        await session.close()


def _reset_hook(app: web.Application) -> None:
    app[STATE]["token_cache"].clear()


def make_app(*, seed: int = 1, regions=("us-south", "eu-de"), world: World | None = None, iam_url: str | None = None,
             max_limit: int = 100, vpcs_per_region: int = 2, subnets_per_vpc: int = 3,
             instances_per_subnet: int = 4, extra_world_seeds=()) -> web.Application:
    """The VPC stand-in app serving `world` (or `build_world(seed, regions, ...)`), and to tokens of another
    account the world of that account among `build_world(s, regions, ...)` for s in `extra_world_seeds`."""
    if isinstance(regions, str):
        regions = tuple(r.strip() for r in regions.split(",") if r.strip())
    if world is None:
        world = build_world(seed, tuple(regions), vpcs_per_region=vpcs_per_region, subnets_per_vpc=subnets_per_vpc,
                            instances_per_subnet=instances_per_subnet)
    app = make_base_app()
    extra = [build_world(s, tuple(world.regions), vpcs_per_region=vpcs_per_region, subnets_per_vpc=subnets_per_vpc,
                         instances_per_subnet=instances_per_subnet) for s in extra_world_seeds]
    app[STATE] = {"world": world, "worlds": {w.account: w for w in extra}, "iam_url": (iam_url or "").rstrip("/"),
                  "max_limit": max(1, min(100, max_limit)),
                  "cache": {}, "token_cache": {}, "session": None}
    app[RESET_HOOKS].append(_reset_hook)
    app.on_startup.append(_startup)
    app.on_cleanup.append(_cleanup)
    r = app.router
    r.add_get("/{region}/v1/instances/{id}/{sub}", _instance_sub)
    r.add_get("/{region}/v1/instances/{id}/{sub}/{sub_id}", _instance_sub)
    r.add_get("/{region}/v1/{collection}", _list)
    r.add_get("/{region}/v1/{collection}/{id}", _get_one)
    return app


def main(argv: list[str] | None = None) -> None:
    p = base_parser("IBM Cloud VPC API stand-in serving the seeded devstack world")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--regions", default="us-south,eu-de", help="comma-separated regions (default us-south,eu-de)")
    p.add_argument("--iam-url", default=None, help="IAM stand-in base URL used to verify bearer tokens")
    p.add_argument("--max-limit", type=int, default=100, help="largest page size served (default 100)")
    p.add_argument("--vpcs-per-region", type=int, default=2)
    p.add_argument("--subnets-per-vpc", type=int, default=3)
    p.add_argument("--instances-per-subnet", type=int, default=4)
    p.add_argument("--extra-world-seed", type=int, action="append", default=[],
                   help="another account's world (repeatable): served to tokens of that world's account")
    run_main(p, lambda a: make_app(seed=a.seed, regions=a.regions, iam_url=a.iam_url, max_limit=a.max_limit,
                                   vpcs_per_region=a.vpcs_per_region, subnets_per_vpc=a.subnets_per_vpc,
                                   instances_per_subnet=a.instances_per_subnet,
                                   extra_world_seeds=a.extra_world_seed), argv)


if __name__ == "__main__":
    main()
