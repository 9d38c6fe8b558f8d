"""Fetch one region's VPC metadata (VPCs, subnets, IP-bearing endpoints) as a plain JSON-able snapshot.

`fetch_region_metadata(region, api_key, ...)` uses the IBM Cloud SDK core (`BaseService` + `IAMAuthenticator`,
what the ibm-vpc SDK's `VpcV1` is built on) with its retry support, pages through the VPC API's collections, and
returns the snapshot dict described in the blueflow contracts (`region`, `fetched_at`, `vpcs`, `subnets`,
`endpoints`). Synchronous: call it from a thread in async code. Failures raise `VpcMetadataError(region, reason)`; reasons never contain the
API key or tokens.
"""

from __future__ import annotations

import ipaddress
import time
from typing import Any

__all__ = ["COLLECTIONS", "DEFAULT_VERSION", "REGIONS", "VpcMetadataError", "build_snapshot", "fetch_region_metadata",
           "list_all", "region_url"]

DEFAULT_VERSION = "2024-04-30"


class VpcMetadataError(Exception):
    """Fetching a region's VPC metadata failed; `reason` is a human explanation without secrets."""

    def __init__(self, region: str, reason: str):
        super().__init__(f"VPC metadata for region {region}: {reason}")
        self.region = region
        self.reason = reason


def _api_reason(exc: Exception, what: str) -> str:
    code = _status(exc)
    message = getattr(exc, "message", None) or str(exc)
    message = str(message).replace("\n", " ")[:300]
    return f"{what} failed (HTTP {code}): {message}" if code else f"{what} failed: {message}"


def _status(exc: Exception) -> int | None:
    return getattr(exc, "status_code", None) or getattr(exc, "code", None)


# IBM's regional VPC API endpoints (https://cloud.ibm.com/docs/vpc?topic=vpc-service-endpoints-for-vpc)
REGIONS = frozenset({"au-syd", "br-sao", "ca-mon", "ca-tor", "eu-de", "eu-es", "eu-gb", "in-che", "in-mum", "jp-osa",
                     "jp-tok", "us-east", "us-south"})
# the collections a snapshot reads: (path and key of the list in each page, what an operator calls it)
COLLECTIONS = (("vpcs", "VPCs"), ("subnets", "subnets"), ("instances", "instances"),
               ("virtual_network_interfaces", "virtual network interfaces"), ("floating_ips", "floating IPs"),
               ("load_balancers", "load balancers"), ("vpn_gateways", "VPN gateways"),
               ("public_gateways", "public gateways"))


def region_url(region: str) -> str | None:
    """The public VPC API endpoint of `region`, None for a region IBM does not list."""
    return f"https://{region}.iaas.cloud.ibm.com/v1" if region in REGIONS else None


def fetch_region_metadata(region: str, api_key: str, *, iam_url: str | None = None, service_url: str | None = None,
                          version: str = DEFAULT_VERSION, page_limit: int = 100, max_retries: int = 4,
                          retry_interval: float = 30.0, timeout: float = 60.0) -> dict:
    """Fetch and return the snapshot for `region` (see module docstring)."""
    try:
        from ibm_cloud_sdk_core import ApiException
    except ImportError as exc:  # pragma: no cover - dependency problem
        raise VpcMetadataError(region, f"the IBM Cloud SDK core is not installed ({exc.name})") from None
    auth = _authenticator(region, api_key, iam_url, timeout)
    url = service_url or region_url(region)
    if not url:
        raise VpcMetadataError(region, f"unknown VPC region (IBM's regions: {', '.join(sorted(REGIONS))})")
    service = _service(region, auth, url, timeout, max_retries, retry_interval)
    raw = {}
    for collection, name in COLLECTIONS:
        try:
            raw[collection] = list_all(service, collection, version=version, limit=page_limit)
        except ApiException as exc:
            raise VpcMetadataError(region, _api_reason(exc, f"listing {name}")) from None
        except Exception as exc:  # noqa: BLE001
            raise VpcMetadataError(region, f"listing {name} failed: {type(exc).__name__}: {str(exc)[:200]}") from None
    return build_snapshot(region, raw)


def _authenticator(region: str, api_key: str, iam_url: str | None, timeout: float):
    """The SDK's IAM authenticator with a token already fetched, so that a bad key gives a clear IAM reason."""
    from ibm_cloud_sdk_core import ApiException
    from ibm_cloud_sdk_core.authenticators import IAMAuthenticator

    if not api_key:
        raise VpcMetadataError(region, "no IBM Cloud API key configured")
    try:
        auth = IAMAuthenticator(api_key, url=iam_url) if iam_url else IAMAuthenticator(api_key)
    except ValueError:
        raise VpcMetadataError(region, "the IBM Cloud API key is malformed (empty, quoted or braced)") from None
    auth.token_manager.http_config = {"timeout": timeout}
    try:
        auth.token_manager.get_token()
    except ApiException as exc:
        raise VpcMetadataError(region, _api_reason(exc, "IAM token request") +
                               (" - check the API key" if _status(exc) in (400, 401, 403) else "")) from None
    except Exception as exc:  # noqa: BLE001 - connection problems etc.
        raise VpcMetadataError(region, f"IAM token request failed: {type(exc).__name__}: "
                                       f"{str(exc)[:200]}") from None
    return auth


def _service(region: str, auth, url: str, timeout: float, max_retries: int, retry_interval: float):
    """The SDK core's service client (IAM bearer, retries of 429/5xx and connection errors, timeouts) on `url`.

    The core, not the generated `ibm_vpc.VpcV1`: importing that module's thousands of model classes made the
    metadata leader ~30 MB larger and cost ~0.3 s of CPU, for eight list calls whose answers are used as dicts."""
    from ibm_cloud_sdk_core import BaseService

    try:
        service = BaseService(service_url=url, authenticator=auth)
    except Exception as exc:  # noqa: BLE001 - bad URL
        raise VpcMetadataError(region, f"cannot set up the VPC client: {exc}") from None
    service.set_http_config({"timeout": timeout})
    service.enable_retries(max_retries=max_retries, retry_interval=retry_interval)
    return service


def list_all(service, collection: str, *, version: str, limit: int) -> list[dict]:
    """Every item of a VPC API collection, page by page (`limit` per page, the `start` token of `next.href`)."""
    from ibm_cloud_sdk_core import get_query_param

    items: list[dict] = []
    start = None
    while True:
        request = service.prepare_request(method="GET", url=f"/{collection}", headers={"Accept": "application/json"},
                                          params={"version": version, "generation": 2, "limit": limit,
                                                  "start": start})
        page = service.send(request).get_result()
        items.extend(page.get(collection) or ())
        href = (page.get("next") or {}).get("href")
        start = get_query_param(href, "start") if href else None
        if not start:
            return items


def _g(obj: Any, *path: str, default: Any = "") -> Any:
    for p in path:
        if not isinstance(obj, dict):
            return default
        obj = obj.get(p)
    return default if obj is None else obj


def build_snapshot(region: str, raw: dict[str, list[dict]], fetched_at: float | None = None) -> dict:
    """Turn raw VPC API collections (dicts as the API returns them) into the snapshot dict. Pure."""
    vpcs = [{"id": v["id"], "crn": v.get("crn", ""), "name": v.get("name", "")} for v in raw.get("vpcs", [])]
    vpc_names = {v["id"]: v["name"] for v in vpcs}
    subnets = []
    for s in raw.get("subnets", []):
        vid = _g(s, "vpc", "id")
        subnets.append({"id": s["id"], "crn": s.get("crn", ""), "name": s.get("name", ""),
                        "cidr": s.get("ipv4_cidr_block", ""), "zone": _g(s, "zone", "name"), "vpc_id": vid,
                        "vpc_name": vpc_names.get(vid) or _g(s, "vpc", "name")})
    by_subnet = {s["id"]: s for s in subnets}
    nets = []
    for s in subnets:
        try:
            nets.append((ipaddress.IPv4Network(s["cidr"]), s))
        except ValueError:
            pass

    endpoints: dict[str, dict] = {}  # ip -> endpoint; first writer wins (most specific sources go first)

    def subnet_of(ip: str, candidates: list[str] | None = None) -> dict | None:
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return None
        for net, s in nets:
            if (candidates is None or s["id"] in candidates) and addr in net:
                return s
        return None

    def add(ip: str, kind: str, *, instance_name: str = "", instance_id: str = "", vnic_id: str = "",
            subnet_id: str = "", vpc_id: str = "", zone: str = "") -> None:
        if not ip or ip in endpoints:
            return
        s = by_subnet.get(subnet_id)
        vpc_id = vpc_id or (s["vpc_id"] if s else "")
        endpoints[ip] = {
            "ip": ip, "kind": kind, "instance_name": instance_name, "instance_id": instance_id, "vnic_id": vnic_id,
            "subnet_id": subnet_id, "subnet_name": s["name"] if s else "", "vpc_id": vpc_id,
            "vpc_name": vpc_names.get(vpc_id, s["vpc_name"] if s else ""), "zone": zone or (s["zone"] if s else ""),
            "region": region,
        }

    # instances: legacy NICs and VNI attachments
    owner_of_vnic: dict[str, dict] = {}   # nic id / attachment id -> endpoint template
    owner_of_vni: dict[str, dict] = {}    # virtual network interface id -> endpoint template
    for inst in raw.get("instances", []):
        base = {"instance_name": inst.get("name", ""), "instance_id": inst.get("id", ""),
                "vpc_id": _g(inst, "vpc", "id"), "zone": _g(inst, "zone", "name")}
        attachments = inst.get("network_attachments") or []
        att_ids = set()
        for att in attachments:
            tpl = {**base, "vnic_id": att.get("id", ""), "subnet_id": _g(att, "subnet", "id")}
            att_ids.add(tpl["vnic_id"])
            owner_of_vnic[tpl["vnic_id"]] = tpl
            vni_id = _g(att, "virtual_network_interface", "id")
            if vni_id:
                owner_of_vni[vni_id] = tpl
            add(_g(att, "primary_ip", "address"), "vni", **tpl)
        nics = list(inst.get("network_interfaces") or [])
        prim = inst.get("primary_network_interface")
        if prim and all(n.get("id") != prim.get("id") for n in nics):
            nics.insert(0, prim)
        for nic in nics:
            if nic.get("id") in att_ids:
                continue
            tpl = {**base, "vnic_id": nic.get("id", ""), "subnet_id": _g(nic, "subnet", "id")}
            owner_of_vnic[tpl["vnic_id"]] = tpl
            add(_g(nic, "primary_ip", "address"), "nic", **tpl)

    # virtual network interfaces: primary + secondary IPs (instance info through the attachment)
    for vni in raw.get("virtual_network_interfaces", []):
        tpl = owner_of_vni.get(vni.get("id", "")) or owner_of_vnic.get(_g(vni, "target", "id"))
        if tpl is None:
            tpl = {"instance_name": vni.get("name", ""), "instance_id": "", "vnic_id": "",
                   "subnet_id": _g(vni, "subnet", "id"), "vpc_id": _g(vni, "vpc", "id"), "zone": _g(vni, "zone", "name")}
        ips = [_g(vni, "primary_ip", "address")] + [_g(ip, "address") for ip in vni.get("ips") or []]
        for ip in ips:
            sub = subnet_of(ip)
            add(ip, "vni", **{**tpl, "subnet_id": sub["id"] if sub else tpl["subnet_id"]})

    # public gateways first-class (their floating IPs also appear in the floating IP list)
    for g in raw.get("public_gateways", []):
        add(_g(g, "floating_ip", "address"), "public_gateway", instance_name=g.get("name", ""),
            vpc_id=_g(g, "vpc", "id"), zone=_g(g, "zone", "name"))

    # floating IPs: carry the target NIC's/VNI's owner
    for f in raw.get("floating_ips", []):
        target = f.get("target") or {}
        rtype = target.get("resource_type", "")
        tid = target.get("id", "")
        tpl = None
        if rtype in ("network_interface", "instance_network_attachment"):
            tpl = owner_of_vnic.get(tid)
        elif rtype == "virtual_network_interface":
            tpl = owner_of_vni.get(tid)
        if tpl is not None:
            add(f.get("address", ""), "floating_ip", **tpl)
        elif rtype == "public_gateway":
            add(f.get("address", ""), "public_gateway", instance_name=target.get("name", ""),
                zone=_g(f, "zone", "name"))
        else:
            add(f.get("address", ""), "floating_ip", instance_name=f.get("name", ""), zone=_g(f, "zone", "name"))

    # load balancers: private IPs in their subnets, public IPs
    for lb in raw.get("load_balancers", []):
        sids = [s.get("id", "") for s in lb.get("subnets") or []]
        lb_vpc = _g(lb, "vpc", "id") or next((by_subnet[s]["vpc_id"] for s in sids if s in by_subnet), "")
        for p in lb.get("private_ips") or []:
            ip = _g(p, "address")
            sub = subnet_of(ip, sids) or subnet_of(ip)
            add(ip, "load_balancer", instance_name=lb.get("name", ""), subnet_id=sub["id"] if sub else "",
                vpc_id=lb_vpc)
        for p in lb.get("public_ips") or []:
            add(_g(p, "address"), "load_balancer", instance_name=lb.get("name", ""), vpc_id=lb_vpc)

    # VPN gateways: member public and private IPs
    for g in raw.get("vpn_gateways", []):
        sid = _g(g, "subnet", "id")
        zone = by_subnet[sid]["zone"] if sid in by_subnet else ""
        for m in g.get("members") or []:
            add(_g(m, "public_ip", "address"), "vpn_gateway", instance_name=g.get("name", ""),
                vpc_id=_g(g, "vpc", "id"), zone=zone)
            add(_g(m, "private_ip", "address"), "vpn_gateway", instance_name=g.get("name", ""), subnet_id=sid,
                vpc_id=_g(g, "vpc", "id"), zone=zone)

    return {"region": region, "fetched_at": time.time() if fetched_at is None else fetched_at,
            "vpcs": vpcs, "subnets": subnets, "endpoints": list(endpoints.values())}
