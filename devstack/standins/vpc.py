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
import uuid
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from devstack.standins.common import RESET_HOOKS, base_parser, json_error, make_base_app, run_main
from devstack.standins.iam import decode_jwt_unverified
from devstack.synth.world import World, build_world, crn, zone_prefix

__all__ = ["make_app", "main", "COLLECTIONS"]

STATE = web.AppKey("vpc_state", dict)
COLLECTIONS = ("vpcs", "subnets", "instances", "virtual_network_interfaces", "floating_ips", "load_balancers",
               "vpn_gateways", "public_gateways")
_FILTERS = ("name", "vpc.id", "vpc.crn", "vpc.name", "zone.name", "resource_group.id", "subnet.id", "target.id")
_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CREATED = "2024-03-11T09:24:57.000Z"
_NS = uuid.UUID("6f1c1b2e-6f0a-4f3e-9a55-0d6c2b7f4e11")


def _derived_id(prefix: str, *parts: str) -> str:
    """A stable IBM-shaped id derived from other ids (reserved IPs, VNIs' helpers, ...)."""
    return f"{prefix}-{uuid.uuid5(_NS, '/'.join(parts))}"


def _ip_name(inst, n) -> str:
    return f"{n.name}-ip" if n.name.startswith(inst.name) else f"{inst.name}-{n.name}-ip"


# ---------------------------------------------------------------------------------------------
# Rendering the world as VPC API JSON (per region, per base URL)


class _Renderer:
    def __init__(self, world: World, region: str, base: str):
        self.w, self.region, self.base = world, region, base
        self.acct = world.account
        rg = world.resource_group_id or "0" * 32
        self.rg = {"href": f"https://resource-controller.cloud.ibm.com/v2/resource_groups/{rg}", "id": rg,
                   "name": "Default"}
        self.pgw_by_vpc_zone = {(g.vpc_id, g.zone): g for g in world.gateways if g.kind == "public"}

    def zone(self, z: str) -> dict:
        return {"href": f"{self.base}/regions/{self.region}/zones/{z}", "name": z}

    def vpc_ref(self, vid: str) -> dict:
        v = self.w.vpc(vid)
        return {"crn": v.crn, "href": f"{self.base}/vpcs/{v.id}", "id": v.id, "name": v.name, "resource_type": "vpc"}

    def subnet_ref(self, sid: str) -> dict:
        s = self.w.subnet(sid)
        return {"crn": s.crn, "href": f"{self.base}/subnets/{s.id}", "id": s.id, "name": s.name,
                "resource_type": "subnet"}

    def reserved_ip(self, sid: str, address: str, owner: str, name: str) -> dict:
        rid = _derived_id(zone_prefix(self.w.subnet(sid).zone), "rip", owner, address)
        return {"address": address, "href": f"{self.base}/subnets/{sid}/reserved_ips/{rid}", "id": rid,
                "name": name, "resource_type": "subnet_reserved_ip"}

    def pgw_fip(self, g) -> dict:
        fid = _derived_id(g.id.split("-")[0], "pgw-fip", g.id)
        return {"address": g.public_ip, "crn": crn(self.acct, g.zone, "floating-ip", fid),
                "href": f"{self.base}/floating_ips/{fid}", "id": fid, "name": f"{g.name}-fip"}

    # -- resources --------------------------------------------------------------------------------
    def vpc(self, v) -> dict:
        sg = _derived_id(v.id.split("-")[0], "sg", v.id)
        acl = _derived_id(v.id.split("-")[0], "acl", v.id)
        rt = _derived_id(v.id.split("-")[0], "rt", v.id)
        return {
            "classic_access": False, "created_at": _CREATED, "crn": v.crn,
            "cse_source_ips": [], "default_network_acl": {"crn": crn(self.acct, v.region, "network-acl", acl),
                                                          "href": f"{self.base}/network_acls/{acl}", "id": acl,
                                                          "name": f"{v.name}-default-acl"},
            "default_routing_table": {"href": f"{self.base}/vpcs/{v.id}/routing_tables/{rt}", "id": rt,
                                      "name": f"{v.name}-default-rt", "resource_type": "routing_table"},
            "default_security_group": {"crn": crn(self.acct, v.region, "security-group", sg),
                                       "href": f"{self.base}/security_groups/{sg}", "id": sg,
                                       "name": f"{v.name}-default-sg"},
            "dns": {"enable_hub": False, "resolution_binding_count": 0,
                    "resolver": {"type": "system", "configuration": "default", "servers": []}},
            "health_reasons": [], "health_state": "ok", "href": f"{self.base}/vpcs/{v.id}", "id": v.id,
            "name": v.name, "resource_group": self.rg, "resource_type": "vpc", "status": "available",
        }

    def subnet(self, s) -> dict:
        used = 5 + sum(1 for _ in self.w.instances_in_subnet(s.id))
        out = {
            "available_ipv4_address_count": 256 - used, "created_at": _CREATED, "crn": s.crn,
            "href": f"{self.base}/subnets/{s.id}", "id": s.id, "ip_version": "ipv4", "ipv4_cidr_block": s.cidr,
            "name": s.name, "resource_group": self.rg, "resource_type": "subnet", "status": "available",
            "total_ipv4_address_count": 256, "vpc": self.vpc_ref(s.vpc_id), "zone": self.zone(s.zone),
        }
        g = self.pgw_by_vpc_zone.get((s.vpc_id, s.zone))
        if g is not None:
            out["public_gateway"] = {"crn": g.crn, "href": f"{self.base}/public_gateways/{g.id}", "id": g.id,
                                     "name": g.name, "resource_type": "public_gateway"}
        return out

    def nic_ref(self, inst, n) -> dict:
        return {"href": f"{self.base}/instances/{inst.id}/network_interfaces/{n.id}", "id": n.id, "name": n.name,
                "primary_ip": self.reserved_ip(n.subnet_id, n.ip, n.id, _ip_name(inst, n)),
                "resource_type": "network_interface", "subnet": self.subnet_ref(n.subnet_id)}

    def vni_ref(self, inst, n) -> dict:
        return {"crn": crn(self.acct, inst.zone, "virtual-network-interface", n.vni_id),
                "href": f"{self.base}/virtual_network_interfaces/{n.vni_id}", "id": n.vni_id,
                "name": f"{inst.name}-vni-{n.name.rsplit('-', 1)[-1]}", "resource_type": "virtual_network_interface"}

    def attachment_ref(self, inst, n) -> dict:
        return {"href": f"{self.base}/instances/{inst.id}/network_attachments/{n.id}", "id": n.id, "name": n.name,
                "primary_ip": self.reserved_ip(n.subnet_id, n.ip, n.id, _ip_name(inst, n)),
                "resource_type": "instance_network_attachment", "subnet": self.subnet_ref(n.subnet_id),
                "virtual_network_interface": self.vni_ref(inst, n)}

    def instance(self, inst) -> dict:
        nic_refs = [self.nic_ref(inst, n) for n in inst.nics]
        out = {
            "availability_policy": {"host_failure": "restart"}, "bandwidth": 4000,
            "created_at": _CREATED, "crn": inst.crn, "disks": [], "health_reasons": [], "health_state": "ok",
            "href": f"{self.base}/instances/{inst.id}", "id": inst.id,
            "image": {"crn": crn(self.acct, self.region, "image", "r006-ubuntu-24-04"),
                      "href": f"{self.base}/images/r006-ubuntu-24-04", "id": "r006-ubuntu-24-04",
                      "name": "ibm-ubuntu-24-04-minimal-amd64-1", "resource_type": "image"},
            "lifecycle_reasons": [], "lifecycle_state": "stable", "memory": 8,
            "metadata_service": {"enabled": False, "protocol": "http", "response_hop_limit": 1},
            "name": inst.name, "network_attachments": [], "network_interfaces": nic_refs,
            "primary_network_interface": nic_refs[0],
            "profile": {"href": f"{self.base}/instance/profiles/bx2-2x8", "name": "bx2-2x8",
                        "resource_type": "instance_profile"},
            "reservation_affinity": {"policy": "disabled", "pool": []},
            "resource_group": self.rg, "resource_type": "instance", "startable": True, "status": "running",
            "status_reasons": [], "total_network_bandwidth": 3000, "total_volume_bandwidth": 1000,
            "vcpu": {"architecture": "amd64", "count": 2, "manufacturer": "intel"}, "volume_attachments": [],
            "vpc": self.vpc_ref(inst.vpc_id), "zone": self.zone(inst.zone),
        }
        if inst.uses_vni:
            atts = [self.attachment_ref(inst, n) for n in inst.nics]
            out["network_attachments"] = atts
            out["primary_network_attachment"] = atts[0]
        return out

    def nic_full(self, inst, n) -> dict:
        f = self.w.floating_ip_of_nic(n.id)
        fips = [] if f is None or inst.uses_vni else [{
            "address": f.address, "crn": crn(self.acct, f.zone, "floating-ip", f.id),
            "href": f"{self.base}/floating_ips/{f.id}", "id": f.id, "name": f.name}]
        ref = self.nic_ref(inst, n)
        ref.update({"allow_ip_spoofing": False, "created_at": _CREATED, "floating_ips": fips, "port_speed": 1000,
                    "security_groups": [], "status": "available",
                    "type": "primary" if n is inst.nics[0] else "secondary"})
        return ref

    def attachment_full(self, inst, n) -> dict:
        ref = self.attachment_ref(inst, n)
        ref.update({"created_at": _CREATED, "lifecycle_state": "stable", "port_speed": 1000,
                    "type": "primary" if n is inst.nics[0] else "secondary"})
        return ref

    def vni(self, inst, n) -> dict:
        ref = self.vni_ref(inst, n)
        prim = self.reserved_ip(n.subnet_id, n.ip, n.id, _ip_name(inst, n))
        ref.update({
            "allow_ip_spoofing": False, "auto_delete": True, "created_at": _CREATED,
            "enable_infrastructure_nat": True, "ips": [prim], "lifecycle_state": "stable",
            "mac_address": "02:00:" + ":".join(n.vni_id[5:13][i:i + 2] for i in range(0, 8, 2)),
            "primary_ip": prim, "protocol_state_filtering_mode": "auto", "resource_group": self.rg,
            "security_groups": [], "subnet": self.subnet_ref(n.subnet_id),
            "target": {"href": f"{self.base}/instances/{inst.id}/network_attachments/{n.id}", "id": n.id,
                       "name": n.name, "resource_type": "instance_network_attachment"},
            "vpc": self.vpc_ref(inst.vpc_id), "zone": self.zone(inst.zone),
        })
        return ref

    def floating_ip(self, f) -> dict:
        inst = self.w.instance_of_nic(f.target_nic_id)
        n = self.w.nic(f.target_nic_id)
        target = self.vni_ref(inst, n) if inst.uses_vni else self.nic_ref(inst, n)
        return {"address": f.address, "created_at": _CREATED, "crn": crn(self.acct, f.zone, "floating-ip", f.id),
                "href": f"{self.base}/floating_ips/{f.id}", "id": f.id, "name": f.name, "resource_group": self.rg,
                "status": "available", "target": target, "zone": self.zone(f.zone)}

    def pgw_floating_ip(self, g) -> dict:
        ref = self.pgw_fip(g)
        ref.update({"created_at": _CREATED, "resource_group": self.rg, "status": "available",
                    "target": {"crn": g.crn, "href": f"{self.base}/public_gateways/{g.id}", "id": g.id,
                               "name": g.name, "resource_type": "public_gateway"},
                    "zone": self.zone(g.zone)})
        return ref

    def load_balancer(self, lb) -> dict:
        return {
            "availability": "region", "created_at": _CREATED, "crn": lb.crn,
            "hostname": f"{lb.id.split('-')[1]}-{self.region}.lb.appdomain.cloud",
            "href": f"{self.base}/load_balancers/{lb.id}", "id": lb.id, "instance_groups_supported": False,
            "is_private_path": False, "is_public": True, "listeners": [], "logging": {"datapath": {"active": False}},
            "name": lb.name, "operating_status": "online", "pools": [],
            "private_ips": [self.reserved_ip(sid, ip, lb.id, f"{lb.name}-ip-{i}")
                            for i, (sid, ip) in enumerate(zip(lb.subnet_ids, lb.private_ips))],
            "profile": {"family": "application", "href": f"{self.base}/load_balancer/profiles/dynamic",
                        "name": "dynamic"},
            "provisioning_status": "active", "public_ips": [{"address": a} for a in lb.public_ips],
            "resource_group": self.rg, "resource_type": "load_balancer", "route_mode": False,
            "security_groups": [], "security_groups_supported": True, "source_ip_session_persistence_supported": False,
            "subnets": [self.subnet_ref(s) for s in lb.subnet_ids], "udp_supported": False,
        }

    def vpn_gateway(self, g) -> dict:
        member = {"public_ip": {"address": g.public_ip}, "role": "active", "lifecycle_state": "stable",
                  "lifecycle_reasons": [], "health_state": "ok", "health_reasons": []}
        if g.private_ip:
            member["private_ip"] = self.reserved_ip(g.subnet_id, g.private_ip, g.id, f"{g.name}-member-ip")
        out = {"connections": [], "created_at": _CREATED, "crn": g.crn, "health_reasons": [], "health_state": "ok",
               "href": f"{self.base}/vpn_gateways/{g.id}", "id": g.id, "lifecycle_reasons": [],
               "lifecycle_state": "stable", "members": [member], "mode": "route", "name": g.name,
               "resource_group": self.rg, "resource_type": "vpn_gateway", "vpc": self.vpc_ref(g.vpc_id)}
        if g.subnet_id:
            out["subnet"] = self.subnet_ref(g.subnet_id)
        return out

    def public_gateway(self, g) -> dict:
        return {"created_at": _CREATED, "crn": g.crn, "floating_ip": self.pgw_fip(g),
                "href": f"{self.base}/public_gateways/{g.id}", "id": g.id, "name": g.name,
                "resource_group": self.rg, "resource_type": "public_gateway", "status": "available",
                "vpc": self.vpc_ref(g.vpc_id), "zone": self.zone(g.zone)}

    def collections(self) -> dict[str, list[dict]]:
        w = self.w
        insts = [i for i in w.instances if i.region == self.region]
        gws = [g for g in w.gateways if g.region == self.region]
        return {
            "vpcs": [self.vpc(v) for v in w.vpcs if v.region == self.region],
            "subnets": [self.subnet(s) for s in w.subnets if s.region == self.region],
            "instances": [self.instance(i) for i in insts],
            "virtual_network_interfaces": [self.vni(i, n) for i in insts if i.uses_vni for n in i.nics],
            "floating_ips": ([self.floating_ip(f) for f in w.floating_ips if f.region == self.region]
                             + [self.pgw_floating_ip(g) for g in gws if g.kind == "public"]),
            "load_balancers": [self.load_balancer(lb) for lb in w.load_balancers if lb.region == self.region],
            "vpn_gateways": [self.vpn_gateway(g) for g in gws if g.kind == "vpn"],
            "public_gateways": [self.public_gateway(g) for g in gws if g.kind == "public"],
        }


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
        renderer = _Renderer(world, region, base)
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
    r: _Renderer = cols["_renderer"]
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
