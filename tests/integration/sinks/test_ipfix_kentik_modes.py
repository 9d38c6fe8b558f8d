"""The two Kentik modes against the Kentik stand-in (in-process, no stack): with an IBM cloud export (devices
tied to it, export heartbeats) and without one (`--export_id` unset: devices by plan only, of the configured
type/subtype, no heartbeat) — the stage shells deliver every flow and delete the object either way."""
from __future__ import annotations

import asyncio

import pytest
import requests

from connectors.bounded_http import Limits
from connectors.kentik import KentikClient
from devstack.synth import generator
from devstack.standins.common import BackgroundServer
from devstack.standins.kentik import make_app
from devstack.synth.worldgen import build_world
from streams.stages import leader
from devstack.harness.driver import Driver

TOKEN, EMAIL = "sekret-token-42", "dev@example.com"


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(make_app(token=TOKEN, email=EMAIL)) as srv:
        yield srv


@pytest.fixture()
def kentik(server):
    requests.post(server.url + "/_emulator/reset", timeout=5).raise_for_status()
    client = KentikClient(api_root=server.url + "/api/internal", flow_url=server.url + "/chf", email=EMAIL,
                          token=TOKEN, limits=Limits(2.0, 5.0, 10.0, 2.0))
    yield client
    client.close()


@pytest.fixture(scope="module")
def obj():
    objs = generator.generate_objects(build_world(seed=1), objects=10, seed=5, mean_flows=80, empty_share=0.0)
    return max(objs, key=lambda o: o.flow_count)


def emulator(server, route: str, name: str) -> list:
    return requests.get(server.url + route, timeout=10).json()[name]


def deliver(d: Driver, obj) -> None:
    d.cos.put(obj.key, obj.body)
    d.parse(d.ref(obj.key))
    d.enrich_all()
    for raw in d.kflow_messages():
        d.sink(raw)


def heartbeats_after(d: Driver, seconds: float) -> None:
    async def run():
        try:
            await asyncio.wait_for(leader.heartbeat_loop(d.ctx), seconds)
        except asyncio.TimeoutError:
            pass

    d.run(run())


@pytest.mark.parametrize("mode", ["with_export", "without_export"])
def test_both_kentik_modes_deliver_every_flow(server, kentik, obj, mode):
    settings = {"KENTIK_PLAN_ID": "11467", "BLUEFLOW_HEARTBEAT_INTERVAL": "1"}
    if mode == "with_export":
        settings["KENTIK_EXPORT_ID"] = "3302"
    else:
        settings.update(BLUEFLOW_KENTIK_DEVICE_TYPE="router", BLUEFLOW_KENTIK_DEVICE_SUBTYPE="router")
    d = Driver(kentik=kentik, **settings)
    deliver(d, obj)
    assert obj.key not in d.cos.objects and d.ledger()[0].deleted
    flows = emulator(server, "/_emulator/flows", "flows")
    assert len(flows) == obj.chf_count
    [device] = emulator(server, "/_emulator/devices", "devices")
    assert device["plan_id"] == 11467
    heartbeats_after(d, 1.5)
    beats = emulator(server, "/_emulator/heartbeats", "heartbeats")
    if mode == "with_export":
        assert (device["cloud_export_id"], device["device_subtype"]) == (3302, "ibm_subnet")
        assert device["cloud_region"] == "us-south" and device["cloud_zone"]
        assert beats and beats[0]["status"] == "START"
    else:
        assert (device["cloud_export_id"], device["cloud_region"]) == (None, None)
        assert (device["device_type"], device["device_subtype"]) == ("router", "router")
        assert beats == []  # no export: no export status to report
