"""The seeded World (devstack/synth/world.py) rendered as IBM Cloud VPC API JSON, per region and base URL:
vpcs, subnets, instances with their network interfaces or attachments, virtual network interfaces, floating
IPs, load balancers, VPN and public gateways, with IBM's ids, CRNs, hrefs and references (served by vpc.py)."""
from __future__ import annotations

import uuid

from devstack.synth.world import World, crn, zone_prefix

_CREATED = "2024-03-11T09:24:57.000Z"
_NS = uuid.UUID("6f1c1b2e-6f0a-4f3e-9a55-0d6c2b7f4e11")


def _derived_id(prefix: str, *parts: str) -> str:
    """A stable IBM-shaped id derived from other ids (reserved IPs, VNIs' helpers, ...)."""
    return f"{prefix}-{uuid.uuid5(_NS, '/'.join(parts))}"


def _ip_name(inst, n) -> str:
    return f"{n.name}-ip" if n.name.startswith(inst.name) else f"{inst.name}-{n.name}-ip"


class Renderer:
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
