"""Issue 28 end to end, one worker on the local stack:
- a poison object (valid flows, header `number_of_flow_logs` = 2^70) listed in one group with good objects:
  every good flow accepted and every good object deleted, the poison dead-lettered alone under its own key,
  naming the field;
- `BLUEFLOW_HTTP_HOST=127.0.0.1` binds the HTTP port there (the socket, as `ss -ltn` lists it), and Faust's
  /router/ and /table/ pages are not served.
"""
from __future__ import annotations

import gzip
import json
import random
import subprocess

import pytest
import requests

from devstack.synth import traffic
from devstack.stack.bucket import hmac_client
from devstack.referee import compare
from devstack.synth.worldgen import build_world
from streams.formats.avro import Codec
from tests.integration.pipeline_support import kentik, prepare, read_topic, wait_for

pytestmark = pytest.mark.stack

HUGE = 1 << 70


@pytest.fixture(scope="module")
def run(stack):
    r = prepare(8, seed=28, mean_flows=30, empty_share=0.0)
    world = build_world(seed=int(r.env["BLUEFLOW_WORLD_SEED"]), regions=tuple(r.env["BLUEFLOW_REGIONS"].split(",")))
    sample = traffic.sample(world, random.Random(28), flows=5)
    r.poison = sample.key()
    body = gzip.compress(json.dumps(dict(sample.doc, number_of_flow_logs=HUGE)).encode())
    hmac_client(r.env).put_object(Bucket=r.env["BLUEFLOW_BUCKET"], Key=r.poison, Body=body)
    r.bad_keys.add(r.poison)
    r.worker = r.start_worker("w1", BLUEFLOW_HTTP_HOST="127.0.0.1")  # one worker: the whole group on it
    try:
        done = wait_for(lambda: r.bucket_keys() == {r.poison} and r.counts().get("deadlettered", 0) >= 1,
                        timeout_s=180, interval_s=2)
        assert done, f"the good objects were not all delivered; counts={r.counts()}\n{r.logs()}"
        yield r
    finally:
        r.stop_all()


def test_a_poison_header_is_dead_lettered_alone_and_the_good_objects_of_its_group_go_on(run):
    verdict = compare(run.good, kentik(run.env, "/_emulator/flows"))
    assert verdict.owed > 0 and (verdict.lost, verdict.duplicates, verdict.unexpected) == (0, 0, 0)
    codec = Codec("deadletter")
    letters = [codec.decode(value) for _, value, _ in read_topic(run.env, f"{run.run_id}.deadletter")]
    assert [letter["key"] for letter in letters] == [run.poison]
    assert letters[0]["stage"] == "validate" and "number_of_flow_logs" in letters[0]["reason"]
    assert str(HUGE) in letters[0]["reason"]


def test_http_host_binds_the_port_there_and_faust_pages_are_off(run):
    port = run.worker.port
    listening = subprocess.run(["ss", "-ltnH", f"( sport = :{port} )"], capture_output=True, text=True,
                               check=True).stdout.split("\n")
    addresses = {line.split()[3] for line in listening if line.strip()}
    assert addresses == {f"127.0.0.1:{port}"}, listening
    base = f"http://127.0.0.1:{port}"
    assert requests.get(base + "/healthz", timeout=5).status_code == 200
    assert requests.get(base + "/readyz", timeout=5).status_code == 200
    for page in ("/router/", "/table/"):
        assert requests.get(base + page, timeout=5).status_code == 404, page
