"""Integration tests: connectors.kentik + streams.formats.kflow.kflow against the Kentik stand-in.

The stand-in (devstack/standins/kentik.py) runs in-process on an ephemeral loopback port.
"""
from __future__ import annotations

import base64
import gzip
import subprocess
import sys
import time

import pytest
import requests

from streams.formats.kflow import kflow
from connectors.bounded_http import Limits
from connectors.kentik import (Device, KentikAuthError, KentikClient, KentikError, KentikTransportError, PostResult,
                               parse_retry_after)
from devstack.standins.common import BackgroundServer
from devstack.standins.kentik import make_app
from devstack.workers import wait_until
from tests.unit.formats.test_kflow import make_batch

TOKEN = "sekret-token-123456"
EMAIL = "dev@example.com"


@pytest.fixture(scope="module")
def server():
    with BackgroundServer(make_app(token=TOKEN, email=EMAIL)) as srv:
        yield srv


@pytest.fixture()
def emu(server):
    requests.post(server.url + "/_emulator/reset", timeout=5).raise_for_status()
    return server.url


def client(url: str, root: str = "/api/internal", token: str = TOKEN,
           limits: Limits = Limits(connect_s=2.0, read_s=5.0, deadline_s=8.0, body_s=2.0)) -> KentikClient:
    return KentikClient(api_root=url + root, flow_url=url + "/chf", email=EMAIL, token=token, limits=limits)


def post(c: KentikClient, dev: Device, body: bytes) -> int:
    """HTTP status of one flow POST (200 = accepted)."""
    return c.post_flows_result(dev, body).status


def fault(url: str, **kw) -> None:
    requests.post(url + "/_emulator/faults", json=kw, timeout=5).raise_for_status()


def make_device(url: str, name: str = "ibm_0727_abc", root: str = "/api/internal") -> Device:
    return client(url, root).resolve_device(name, plan_id=11, export_id=77, region="us-south",
                                            zone="us-south-2", description="subnet abc")


def test_resolve_creates_once_then_finds(emu):
    c = client(emu)
    assert c.get_device("ibm_0727_abc") is None
    dev = make_device(emu)
    assert dev.name == "ibm_0727_abc" and dev.id > 0 and dev.company_id
    assert sorted(dev.custom_ids) == [f"STR{k:02d}" for k in range(19)]
    assert len(set(dev.custom_field_ids())) == 19
    again = make_device(emu)
    assert again == dev and again.custom_ids == dev.custom_ids
    devices = requests.get(emu + "/_emulator/devices", timeout=5).json()["devices"]
    assert len(devices) == 1
    d = devices[0]
    assert (d["plan_id"], d["cloud_export_id"], d["cloud_region"], d["cloud_zone"]) == (11, 77, "us-south",
                                                                                          "us-south-2")
    assert (d["device_type"], d["device_subtype"], d["device_sample_rate"]) == (
        "host-nprobe-dns-www", "ibm_subnet", "1")


@pytest.mark.parametrize("root", ["/api/internal", "/api/v5"])
def test_both_api_roots(emu, root):
    dev = make_device(emu, "ibm_dev_" + root.rsplit("/", 1)[1], root)
    assert client(emu, root).get_device(dev.name) == dev
    other = "/api/v5" if root == "/api/internal" else "/api/internal"
    assert client(emu, other).get_device(dev.name) == dev
    assert client(emu, root).heartbeat(77, "OK", "all good") == 200
    hb = requests.get(emu + "/_emulator/heartbeats", timeout=5).json()["heartbeats"]
    assert hb[-1]["status"] == "OK" and hb[-1]["export_id"] == "77" and hb[-1]["body_export_id"] == 77


def post_batch(emu: str, dev: Device, n: int, seed: int = 1):
    cols = make_batch(n, seed=seed)
    body = kflow.frame_body(kflow.encode_packed_chf(cols, dev.id, dev.custom_field_ids()))
    return cols, body, client(emu).post_flows_result(dev, body).status


def test_post_500_flows_roundtrip(emu):
    dev = make_device(emu)
    cols, body, status = post_batch(emu, dev, 500)
    assert status == 200
    got = requests.get(emu + "/_emulator/flows", timeout=10).json()
    assert got["count"] == 500
    cols_names = [f"STR{k:02d}" for k in range(19)]
    for i, f in enumerate(got["flows"]):
        for k in kflow.INT_COLUMNS:
            assert f[k] == cols[k][i], (i, k)
        assert (f["sample_rate"], f["sample_adj"], f["app_protocol"], f["big"], f["device_id"]) == (
            100, True, 0, False, dev.id)
        assert f["device_name"] == dev.name and f["request_seq"] >= 1
        want = {cols_names[j]: kflow.cut_custom(cols["strings"][cols["custom_idx"][19 * i + j]]).decode()
                for j in range(19)}
        assert f["customs"] == want
    reqs = requests.get(emu + "/_emulator/requests", timeout=5).json()["requests"]
    assert len(reqs) == 1 and reqs[0]["status"] == 200
    assert reqs[0]["query"] == {"sid": "0", "sender_id": f"{dev.company_id}:{dev.name}:{dev.id}"}
    assert base64.b64decode(reqs[0]["body_b64"]) == body
    stats = requests.get(emu + "/_emulator/stats", timeout=5).json()["kentik"]
    assert stats["flows_accepted"] == 500 and stats["chf_accepted"] == 1


def test_bad_token_401_and_never_leaks(emu):
    dev = make_device(emu)
    wrong = "wrong-token-ABCDEF"
    bad = client(emu, token=wrong)
    with pytest.raises(KentikAuthError) as ei:
        bad.get_device(dev.name)
    assert ei.value.status == 401 and wrong not in str(ei.value) and TOKEN not in str(ei.value)
    with pytest.raises(KentikAuthError) as ei:
        bad.resolve_device("x", 1, 2, "r", "z")
    assert wrong not in str(ei.value) and wrong not in repr(bad)
    body = kflow.frame_body(kflow.encode_packed_chf(make_batch(2), dev.id, dev.custom_field_ids()))
    res = bad.post_flows_result(dev, body)
    assert res.status == 401 and wrong not in res.reason
    # good requests too: the token never shows in the recorded requests
    assert client(emu).post_flows_result(dev, body).status == 200
    text = requests.get(emu + "/_emulator/requests", timeout=5).text
    assert wrong not in text and TOKEN not in text and "REDACTED" in text
    assert requests.get(emu + "/_emulator/flows", timeout=5).json()["count"] == 2   # only the 200 one


def test_transport_error_does_not_leak_token():
    dead = KentikClient(api_root="http://127.0.0.1:9/api/internal", flow_url="http://127.0.0.1:9/chf",
                        email=EMAIL, token=TOKEN, limits=Limits(0.5, 0.5, 1.0, 0.5))
    with pytest.raises(KentikTransportError) as ei:
        dead.get_device("x")
    assert TOKEN not in str(ei.value) and ei.value.status is None


def test_fault_503_then_200(emu):
    dev = make_device(emu)
    fault(emu, status=503, count=2, path_prefix="/chf", retry_after=3)
    c = client(emu)
    _, body, _ = post_batch(emu, dev, 1)   # consumes the first fault
    r = c.post_flows_result(dev, body)
    assert r.status == 503 and r.retry_after == 3.0
    assert c.post_flows_result(dev, body).status == 200
    reqs = requests.get(emu + "/_emulator/requests?body=0", timeout=5).json()["requests"]
    assert [q["status"] for q in reqs] == [503, 503, 200] and "body_b64" not in reqs[0]
    assert requests.get(emu + "/_emulator/flows", timeout=5).json()["count"] == 1


@pytest.mark.parametrize("status", [429, 413, 500])
def test_fault_statuses(emu, status):
    dev = make_device(emu)
    fault(emu, status=status, count=1, path_prefix="/chf")
    _, body, got = post_batch(emu, dev, 1)
    assert got == status
    assert requests.get(emu + "/_emulator/flows", timeout=5).json()["count"] == 0


def test_drop_raises_transport_error(emu):
    dev = make_device(emu)
    fault(emu, drop=True, count=1, path_prefix="/chf")
    cols = make_batch(1)
    body = kflow.frame_body(kflow.encode_packed_chf(cols, dev.id, dev.custom_field_ids()))
    with pytest.raises(KentikTransportError):
        client(emu).post_flows_result(dev, body).status
    assert client(emu).post_flows_result(dev, body).status == 200
    reqs = requests.get(emu + "/_emulator/requests?body=0", timeout=5).json()["requests"]
    assert reqs[0]["dropped"] is True and reqs[-1]["status"] == 200


def test_latency_and_timeout(emu):
    dev = make_device(emu)
    cols = make_batch(1)
    body = kflow.frame_body(kflow.encode_packed_chf(cols, dev.id, dev.custom_field_ids()))
    fault(emu, latency_ms=300, count=1, path_prefix="/chf")
    t0 = time.monotonic()
    assert client(emu).post_flows_result(dev, body).status == 200
    assert time.monotonic() - t0 >= 0.28
    fault(emu, latency_ms=1500, count=1, path_prefix="/chf")
    with pytest.raises(KentikTransportError, match="timeout"):
        client(emu, limits=Limits(1.0, 0.5, 2.0, 0.5)).post_flows_result(dev, body).status


def test_chf_rejections(emu):
    dev = make_device(emu)
    other = make_device(emu, "ibm_other")
    cols = make_batch(2)
    packed = kflow.encode_packed_chf(cols, dev.id, dev.custom_field_ids())
    url = emu + "/chf"
    hdr = {"X-CH-Auth-Email": EMAIL, "X-CH-Auth-API-Token": TOKEN, "Content-Type": "application/binary",
           "Content-Encoding": "gzip"}
    q = {"sid": "0", "sender_id": dev.sender_id}
    ok = requests.post(url, params=q, headers=hdr, data=kflow.frame_body(packed), timeout=5)
    assert ok.status_code == 200
    # wrong device id inside the CHF
    r = requests.post(url, params={"sid": "0", "sender_id": other.sender_id}, headers=hdr,
                      data=kflow.frame_body(packed), timeout=5)
    assert r.status_code == 400 and "deviceId" in r.text
    # no 80-byte prefix
    r = requests.post(url, params=q, headers=hdr, data=gzip.compress(packed), timeout=5)
    assert r.status_code == 400
    # not gzip / wrong content type / unknown sender
    r = requests.post(url, params=q, headers=dict(hdr, **{"Content-Encoding": "identity"}),
                      data=bytes(80) + packed, timeout=5)
    assert r.status_code == 400
    r = requests.post(url, params=q, headers=dict(hdr, **{"Content-Type": "application/json"}),
                      data=kflow.frame_body(packed), timeout=5)
    assert r.status_code == 415
    r = requests.post(url, params={"sid": "0", "sender_id": "1:nope:5"}, headers=hdr,
                      data=kflow.frame_body(packed), timeout=5)
    assert r.status_code == 400
    assert requests.get(emu + "/_emulator/flows", timeout=5).json()["count"] == 2


def test_create_conflict_resolves(emu):
    c = client(emu)
    dev = make_device(emu, "ibm_race")
    with pytest.raises(KentikError) as ei:
        c.create_device("ibm_race", 1, 2, "us-south", "us-south-1")
    assert ei.value.status == 409
    assert c.resolve_device("ibm_race", 1, 2, "us-south", "us-south-1") == dev


def test_parse_retry_after():
    assert parse_retry_after("5") == 5.0 and parse_retry_after(None) is None and parse_retry_after("x") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_main_runs_as_module():
    proc = subprocess.Popen([sys.executable, "-m", "devstack.standins.kentik", "--port", "0", "--token", TOKEN],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:") and TOKEN not in line
        url = line.split()[-1]
        r = requests.get(url + "/api/v5/device/none", headers={"X-CH-Auth-Email": "dev@example.com",
                                                               "X-CH-Auth-API-Token": TOKEN}, timeout=5)
        assert r.status_code == 404
    finally:
        proc.terminate()
        proc.wait(10)


# --- a misbehaving Kentik (devstack/standins/kentik_modes.py) -------------------------------------------

FAST = Limits(connect_s=2.0, read_s=1.0, deadline_s=3.0, body_s=1.0)


def modes(url: str, *items: dict) -> None:
    requests.post(url + "/_emulator/chf_modes", json=list(items), timeout=5).raise_for_status()


def one_body(dev: Device, n: int = 3) -> bytes:
    return kflow.frame_body(kflow.encode_packed_chf(make_batch(n), dev.id, dev.custom_field_ids()))


def accepted_flows(url: str) -> int:
    return requests.get(url + "/_emulator/stats", timeout=5).json()["kentik"]["flows_accepted"]


@pytest.fixture(scope="module")
def decoy():
    from devstack.standins.kentik_modes import make_decoy_app

    with BackgroundServer(make_decoy_app()) as srv:
        yield srv


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_not_followed_and_token_stays_home(emu, decoy, status):
    dev = make_device(emu)
    before = len(requests.get(decoy.url + "/_decoy/requests", timeout=5).json()["requests"])
    modes(emu, {"mode": "redirect", "status": status, "location": decoy.url + "/chf?steal=" + TOKEN})
    res = client(emu).post_flows_result(dev, one_body(dev))
    assert res.status == status
    assert "not followed" in res.reason and "127.0.0.1" in res.reason
    assert TOKEN not in res.reason and "steal" not in res.reason     # the Location host only
    assert len(requests.get(decoy.url + "/_decoy/requests", timeout=5).json()["requests"]) == before
    assert accepted_flows(emu) == 0
    assert post(client(emu), dev, one_body(dev)) == 200       # the pool still works


def test_device_api_redirects_are_errors_not_followed(emu, decoy):
    dev = make_device(emu)
    before = len(requests.get(decoy.url + "/_decoy/requests", timeout=5).json()["requests"])
    modes(emu, {"mode": "redirect", "status": 302, "location": decoy.url + "/x", "path_prefix": "/api"},
          {"mode": "redirect", "status": 307, "location": decoy.url + "/y", "path_prefix": "/api"})
    with pytest.raises(KentikError) as ei:
        client(emu).get_device(dev.name)
    assert ei.value.status == 302 and "not followed" in str(ei.value)
    assert client(emu).heartbeat(77, "OK") == 307
    assert len(requests.get(decoy.url + "/_decoy/requests", timeout=5).json()["requests"]) == before


def test_200_with_undecodable_body_is_accepted(emu):
    dev = make_device(emu)
    modes(emu, {"mode": "bad_body", "count": 2})
    c = client(emu)
    assert c.post_flows_result(dev, one_body(dev, 4)) == PostResult(200)
    assert post(c, dev, one_body(dev, 4)) == 200
    reqs = requests.get(emu + "/_emulator/requests?body=0", timeout=5).json()["requests"]
    assert [(r["status"], r["mode"], r["flows"]) for r in reqs] == [(200, "bad_body", 4)] * 2
    assert accepted_flows(emu) == 8


def test_slow_answer_beyond_the_read_timeout_is_a_transport_error(emu):
    dev = make_device(emu)
    modes(emu, {"mode": "slow", "seconds": 2.5})
    t0 = time.monotonic()
    with pytest.raises(KentikTransportError, match="timeout"):
        post(client(emu, limits=FAST), dev, one_body(dev))
    assert time.monotonic() - t0 < 2.0

    def slow_entry():
        reqs = requests.get(emu + "/_emulator/requests?body=0", timeout=5).json()["requests"]
        return [(r["mode"], r["flows"]) for r in reqs if r["mode"]]
    # Kentik had it: re-sending it will be a duplicate (the price of a timeout)
    assert wait_until(lambda: slow_entry() == [("slow", 3)], 5, 0.1)


def test_slow_answer_within_the_read_timeout_is_waited_for(emu):
    dev = make_device(emu)
    modes(emu, {"mode": "slow", "seconds": 1.5})
    assert post(client(emu, limits=Limits(connect_s=2.0, read_s=3.0, deadline_s=4.0, body_s=1.0)),
                dev, one_body(dev)) == 200


@pytest.mark.parametrize("status", [200, 503])
def test_trickled_body_is_cut_after_the_body_budget(emu, status):
    dev = make_device(emu)
    modes(emu, {"mode": "trickle", "status": status, "bytes": 1000, "interval_s": 0.2})
    c = client(emu, limits=FAST)
    t0 = time.monotonic()
    assert c.post_flows_result(dev, one_body(dev)).status == status
    assert time.monotonic() - t0 < 1.8      # body_s = 1 s, the whole body would take 200 s
    assert post(c, dev, one_body(dev)) == 200
    assert accepted_flows(emu) == (6 if status == 200 else 3)


def test_huge_200_body_is_not_read(emu):
    import resource

    dev = make_device(emu)
    modes(emu, {"mode": "huge_body", "bytes": 300 * 1024 * 1024})
    c = client(emu)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    assert post(c, dev, one_body(dev)) == 200
    assert time.monotonic() - t0 < 2.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 64 * 1024   # KiB: < 64 MB more at peak
    assert post(c, dev, one_body(dev)) == 200


def test_flows_are_decoded_only_when_asked_for(emu, server):
    from devstack.standins.kentik_devices import STATE

    dev = make_device(emu)
    c = client(emu)
    for seed in (1, 2):
        assert post(c, dev, kflow.frame_body(kflow.encode_packed_chf(make_batch(5, seed=seed), dev.id,
                                                                          dev.custom_field_ids()))) == 200
    st = server.app[STATE]
    assert (len(st["bodies"]), st["decoded"], len(st["flows"])) == (2, 0, 0)
    assert requests.get(emu + "/_emulator/stats", timeout=5).json()["kentik"]["flows_stored"] == 10
    assert requests.get(emu + "/_emulator/flows", timeout=5).json()["count"] == 10
    assert (st["decoded"], len(st["flows"])) == (2, 10)
    assert post(c, dev, one_body(dev, 1)) == 200
    got = requests.get(emu + "/_emulator/flows?since_seq=2", timeout=5).json()
    assert got["count"] == 1 and got["flows"][0]["request_seq"] == 3


def test_a_wrong_device_id_the_sample_misses_is_dropped_when_decoded(emu, server):
    """The /chf path reads the deviceId of up to 32 CHF spread over the message (reading all cost a quarter of
    a worker's CPU); the decode checks every one: a flow with another device's id is dropped and counted, so
    the referee sees it as lost."""
    from streams.formats.kflow.chf_segment import CHF_WORDS, DEVICE_SLOT32, HEAD_WORDS
    from streams.formats.kflow.kflow import build_segment, pack_segment
    from devstack.standins.chf_store import SAMPLE

    dev = make_device(emu)
    n = SAMPLE * 4
    segment = build_segment(make_batch(n), dev.id, dev.custom_field_ids())
    at = (HEAD_WORDS + 1 * CHF_WORDS) * 8 + DEVICE_SLOT32 * 4  # CHF #1's deviceId: not among the sampled
    segment[at:at + 4] = (dev.id + 1).to_bytes(4, "little")
    assert post(client(emu), dev, kflow.frame_body(pack_segment(segment))) == 200
    assert requests.get(emu + "/_emulator/flows", timeout=5).json()["count"] == n - 1
    assert requests.get(emu + "/_emulator/stats", timeout=5).json()["kentik"]["flows_wrong_device"] == 1


def test_deferred_check_accepts_at_once_and_drops_an_unreadable_body_when_decoded(emu):
    dev = make_device(emu)
    requests.post(emu + "/_emulator/chf_check", json={"check": "deferred"}, timeout=5).raise_for_status()
    c = client(emu)
    good = kflow.frame_body(kflow.encode_packed_chf(make_batch(5), dev.id, dev.custom_field_ids()))
    assert post(c, dev, good) == 200
    assert post(c, dev, kflow.frame_body(b"\xff" * 40)) == 200  # not unpacked before the answer
    assert requests.get(emu + "/_emulator/flows", timeout=5).json()["count"] == 5
    stats = requests.get(emu + "/_emulator/stats", timeout=5).json()["kentik"]
    assert stats["bodies_unreadable"] == 1 and stats["flows_accepted"] == 5
    requests.post(emu + "/_emulator/reset", timeout=5).raise_for_status()  # back to the full check
    dev = make_device(emu)
    assert post(client(emu), dev, kflow.frame_body(b"\xff" * 40)) == 400


def test_deleting_the_pending_modes_keeps_devices_and_flows(emu):
    """The kentikstall scenario stops its redirects this way: a reset would forget the devices, so the
    workers' cached device ids would be refused (400 unknown sender_id) after the stall."""
    dev = make_device(emu)
    c = client(emu)
    modes(emu, {"mode": "redirect", "count": 0, "location": "https://kentik.invalid/chf"})
    assert post(c, dev, one_body(dev)) == 307
    assert requests.delete(emu + "/_emulator/chf_modes", timeout=5).json() == {"modes": []}
    assert post(c, dev, one_body(dev)) == 200
    devices = requests.get(emu + "/_emulator/devices", timeout=5).json()["devices"]
    assert [d["device_name"] for d in devices] == [dev.name] and accepted_flows(emu) == 3
