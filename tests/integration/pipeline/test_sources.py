"""Two sources, one deployment, on the local stack: two buckets in the one S3Proxy reached with two credential
sets (HMAC directly, an IAM API key through the bearer-token proxy), two Kentik plans and exports on the one
Kentik stand-in, objects of two different VPC worlds.

- Each source's flows reach its own devices, in its own plan and export; nothing crosses; both buckets empty.
- One source's COS failing (every request to its bucket answered 503) does not hold the other: it keeps
  flowing and the worker stays healthy; once the COS answers again the waiting source drains, 0 lost.
- Each source has its sink: acct-a to Kentik, acct-b (`sink: ipfix`) to an nfcapd on 127.0.0.1; each
  destination receives exactly its source's records.
"""
from __future__ import annotations

import textwrap
import time
import uuid

import pytest
import requests

from connectors.cos import list_objects
from devstack import nfcapd, stack
from devstack.stack import env as stack_env
from devstack.stack.bucket import empty_bucket, hmac_client
from devstack.synth.generator import generate_objects
from devstack.synth.writer import write_objects
from devstack.referee import compare, compare_collector
from devstack.workers import WorkerProcess, run_environment
from devstack.synth.worldgen import build_world
from streams.formats.flowlog.flowlog import parse_object_key
from streams.formats.translate import device_name_for_subnet
from tests.integration.pipeline_support import kentik, wait_for

pytestmark = pytest.mark.stack

PLANS = {"acct-a": (11467, 3302), "acct-b": (5555, 7777)}


class TwoSources:
    def __init__(self, objects_each: int, seed: int, b_sink: str = ""):
        """`b_sink`: extra lines of source acct-b (e.g. its own sink)."""
        self.env = stack.ensure_up()
        self.run_id = f"s{uuid.uuid4().hex[:10]}"
        self.client = hmac_client(self.env)
        self.buckets = {"acct-a": self.env["BLUEFLOW_BUCKET"], "acct-b": f"{self.run_id}-b"}
        empty_bucket(self.client, self.buckets["acct-a"])
        self.client.create_bucket(Bucket=self.buckets["acct-b"])
        requests.post(self.env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/reset", timeout=5).raise_for_status()
        requests.post(self.env["BLUEFLOW_COS_IAM_ENDPOINT"] + "/_emulator/reset", timeout=5).raise_for_status()
        regions = tuple(self.env["BLUEFLOW_REGIONS"].split(","))
        world_seed = int(self.env["BLUEFLOW_WORLD_SEED"])
        self.objects = {}
        for number, (name, bucket) in enumerate(self.buckets.items()):
            world = build_world(seed=world_seed + 97 * number, regions=regions)  # different subnets per account
            generated = generate_objects(world, objects=objects_each, seed=seed + number, mean_flows=50, bad=0,
                                         empty_share=0.1)
            assert not write_objects(self.client, bucket, generated).failed
            self.objects[name] = generated
        self.log_dir = stack_env.state_dir() / "logs" / self.run_id
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.config = self.log_dir / "blueflow.yaml"
        self.config.write_text(textwrap.dedent(f"""\
            poll_interval: 2
            sources:
              - name: acct-a
                bucket: {self.buckets['acct-a']}
                endpoint: {self.env['BLUEFLOW_COS_ENDPOINT']}
                hmac_access_key: {self.env['BLUEFLOW_COS_HMAC_ACCESS_KEY']}
                hmac_secret_key_env: BLUEFLOW_COS_HMAC_SECRET_KEY
                kentik_token_env: KENTIK_API_TOKEN
                plan_id: {PLANS['acct-a'][0]}
                export_id: {PLANS['acct-a'][1]}
              - name: acct-b
                bucket: {self.buckets['acct-b']}
                endpoint: {self.env['BLUEFLOW_COS_IAM_ENDPOINT']}
                cos_api_key_env: IBM_COS_API_KEY
                service_instance: {self.env['IBM_SERVICE_INSTANCE']}
                plan_id: {PLANS['acct-b'][0]}
                export_id: {PLANS['acct-b'][1]}
            """) + textwrap.indent(b_sink, " " * 4))
        self.workers: list[WorkerProcess] = []

    def start_worker(self, name: str, **overrides: str) -> WorkerProcess:
        env = run_environment(self.env, self.run_id, BLUEFLOW_CONFIG=str(self.config), BLUEFLOW_UNHEALTHY_AFTER="20",
                              **overrides)
        worker = WorkerProcess(name, env, self.log_dir).start()
        self.workers.append(worker)
        return worker

    def left(self, name: str) -> set[str]:
        return {o.key for o in list_objects(self.client, self.buckets[name], "")}

    def fail_cos_of(self, name: str, objects_only: bool = False, status: int = 503) -> None:
        """Every request to the source's bucket answers `status` (listing included unless `objects_only`); 403:
        its credentials refused (revoked)."""
        prefix = f"/{self.buckets[name]}" + ("/" if objects_only else "")
        fault = {"status": status, "count": 10 ** 6, "path_prefix": prefix}
        requests.post(self.env["BLUEFLOW_COS_IAM_ENDPOINT"] + "/_emulator/faults", json=fault,
                      timeout=5).raise_for_status()

    def heal_cos(self) -> None:
        requests.delete(self.env["BLUEFLOW_COS_IAM_ENDPOINT"] + "/_emulator/faults", timeout=5).raise_for_status()

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.log_tail(60)}" for w in self.workers)

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.heal_cos()
        empty_bucket(self.client, self.buckets["acct-b"])
        self.client.delete_bucket(Bucket=self.buckets["acct-b"])


def per_source_verdicts(run: TwoSources) -> dict:
    """Per source: the flows of its own devices judged against its own objects; and its devices' plans."""
    flows = kentik(run.env, "/_emulator/flows")
    devices = {d["device_name"]: d for d in kentik(run.env, "/_emulator/devices")}
    out = {}
    for name, objects in run.objects.items():
        own = {device_name_for_subnet(parse_object_key(o.key).subnet_id) for o in objects}
        own_flows = [f for f in flows if f["device_name"] in own]
        plans = {(devices[d]["plan_id"], devices[d]["cloud_export_id"]) for d in own if d in devices}
        out[name] = (compare(objects, own_flows), plans)
    return out


@pytest.fixture
def two_sources():
    run = TwoSources(objects_each=25, seed=61)
    yield run
    run.close()


def test_each_source_reaches_its_own_devices_plan_and_export_and_nothing_crosses(stack, two_sources):
    run = two_sources
    started = time.monotonic()
    worker = run.start_worker("w1")
    assert wait_for(lambda: not run.left("acct-a"), 240, interval_s=1), run.logs()
    print(f"\n[sources] both healthy: acct-a drained in {time.monotonic() - started:.1f}s")
    assert wait_for(lambda: not run.left("acct-a") and not run.left("acct-b"), 240, interval_s=2), run.logs()
    verdicts = per_source_verdicts(run)
    all_flows = kentik(run.env, "/_emulator/flows")
    for name, (verdict, plans) in verdicts.items():
        assert verdict.owed > 0 and (verdict.lost, verdict.unexpected, verdict.duplicates) == (0, 0, 0), (name, verdict)
        assert plans == {(PLANS[name][0], str(PLANS[name][1]))} or plans == {PLANS[name]}, (name, plans)
    assert sum(v.owed for v, _ in verdicts.values()) == len(all_flows)  # every flow belongs to one source
    info = worker.info()
    assert [s["source"] for s in info["sources"]] == ["acct-a", "acct-b"] and info["healthy"], info


@pytest.mark.parametrize("objects_only, status", [(False, 503), (True, 503), (False, 403)],
                         ids=["bucket-down", "gets-and-deletes-fail", "credentials-revoked"])
def test_one_sources_cos_failing_does_not_hold_the_other_which_stays_healthy(stack, two_sources, objects_only, status):
    """Bucket down: nothing of acct-b is even listed. Gets and deletes failing (listing works): acct-b's objects
    are published, each parse gives up after a bounded time and the object waits in the bucket until it is
    published again (`stuck_after`, 20 s here). Credentials revoked: every request of acct-b refused (403)
    until they are restored."""
    run = two_sources
    run.fail_cos_of("acct-b", objects_only, status)
    started = time.monotonic()
    worker = run.start_worker("w1", BLUEFLOW_STUCK_AFTER="20")
    assert wait_for(lambda: not run.left("acct-a"), 180, interval_s=1), run.logs()
    print(f"\n[sources] acct-b failing ({'gets/deletes' if objects_only else 'whole bucket'} {status}): acct-a drained in "
          f"{time.monotonic() - started:.1f}s")
    assert len(run.left("acct-b")) == len(run.objects["acct-b"])  # nothing deleted while its COS fails
    time.sleep(25)  # longer than BLUEFLOW_UNHEALTHY_AFTER: the worker must stay healthy all the same
    reply = requests.get(f"http://127.0.0.1:{worker.port}/healthz", timeout=5)
    assert reply.status_code == 200, reply.text
    info = worker.info()
    problems = {s["source"]: s["problem"] for s in info["sources"]}
    assert not problems["acct-a"] and run.buckets["acct-b"] in problems["acct-b"], problems
    run.heal_cos()
    assert wait_for(lambda: not run.left("acct-b"), 240, interval_s=2), run.logs()
    for name, (verdict, _) in per_source_verdicts(run).items():
        assert (verdict.lost, verdict.unexpected) == (0, 0), (name, verdict)


@pytest.mark.skipif(nfcapd.missing() is not None, reason=str(nfcapd.missing()))
def test_each_source_goes_to_its_own_sink_kentik_or_an_ipfix_collector(stack, tmp_path):
    collector = nfcapd.NfCapd(tmp_path / "nfcapd")
    run = TwoSources(objects_each=15, seed=67, b_sink=f"sink: ipfix\nipfix_collectors: {collector.address}\n")
    try:
        run.start_worker("w1")
        assert wait_for(lambda: not run.left("acct-a") and not run.left("acct-b"), 240, interval_s=2), run.logs()
        for worker in run.workers:
            worker.stop()
        rows = collector.stop_and_read()
        verdicts = per_source_verdicts(run)
    finally:
        collector.kill()
        run.close()
    kentik_verdict, plans = verdicts["acct-a"]
    assert kentik_verdict.owed > 0 and (kentik_verdict.lost, kentik_verdict.duplicates) == (0, 0), kentik_verdict
    assert verdicts["acct-b"][0].accepted == 0  # nothing of the IPFIX source reached Kentik
    ipfix_verdict = compare_collector(run.objects["acct-b"], rows)
    assert ipfix_verdict.owed > 0 and ipfix_verdict.received == ipfix_verdict.owed, ipfix_verdict
    assert (ipfix_verdict.lost, ipfix_verdict.duplicates, ipfix_verdict.unexpected) == (0, 0, 0), ipfix_verdict
