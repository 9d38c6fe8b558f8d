"""Event Streams' wire on the local stack: SASL_SSL (PLAIN, user `token`, the API key as password, TLS with a
CA made at stack start) — the worker pipeline, `topics ensure`, `replay`, `status` and `deadletter` all over it,
and the one line each of the three ways a connection fails.

Needs the stack's SASL_SSL listener: BLUEFLOW_DEVSTACK_KAFKA_SASL_SSL=1 (.ci/run sets it; a stack running
without it is restarted with it when this variable is set).
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from devstack.stack import kafka_secure
from devstack.referee import compare
from tests.integration.pipeline_support import kentik, prepare, wait_for

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def run(stack):
    if not stack.get("BLUEFLOW_DEVSTACK_KAFKA_SASL_SSL_BOOTSTRAP"):
        pytest.skip(f"the local stack runs without its SASL_SSL listener: set {kafka_secure.SASL_SSL_FLAG}=1")
    r = prepare(6, bad=1, bad_kinds=["json_array"], seed=61, mean_flows=30, empty_share=0.0)
    r.sasl = {"BLUEFLOW_KAFKA_BOOTSTRAP": stack["BLUEFLOW_DEVSTACK_KAFKA_SASL_SSL_BOOTSTRAP"],
              "BLUEFLOW_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "BLUEFLOW_KAFKA_SASL_USERNAME": "token",
              "BLUEFLOW_KAFKA_SASL_PASSWORD": stack["BLUEFLOW_DEVSTACK_KAFKA_SASL_PASSWORD"],
              "BLUEFLOW_KAFKA_SSL_CA": stack["BLUEFLOW_DEVSTACK_KAFKA_CA"]}
    worker = r.start_worker("w1", **r.sasl)
    r.url = f"http://127.0.0.1:{worker.port}"
    try:
        done = wait_for(lambda: r.bucket_keys() == r.bad_keys and r.counts().get("deadlettered", 0) == 1, 120)
        assert done, f"run over SASL_SSL did not drain; counts={r.counts()}\n{r.logs()}"
        yield r
    finally:
        r.stop_all()


def blueflow(run, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.ops.cli", *args], env=run.worker_env(**dict(run.sasl, **env)),
                          capture_output=True, text=True, timeout=120)


def test_the_pipeline_runs_over_sasl_ssl(run):
    verdict = compare(run.objects, kentik(run.env, "/_emulator/flows"))
    assert (verdict.lost, verdict.duplicates, verdict.unexpected) == (0, 0, 0), verdict
    assert run.counts()["objects_deleted"] == len(run.good)


def test_topics_ensure_status_deadletter_and_replay_over_sasl_ssl(run):
    ensured = blueflow(run, "topics", "ensure", "--json")
    assert ensured.returncode == 0, ensured.stderr
    doc = json.loads(ensured.stdout)
    assert {t["state"] for t in doc["topics"]} == {"exists"} and doc["total_partitions"] == 3 * 4 + 5
    assert doc["topics"][-1]["topic"] == f"{run.run_id}-__assignor-__leader"

    status = blueflow(run, "status", "--json", "--interval", "1", "--worker", run.url)
    doc = json.loads(status.stdout.strip().splitlines()[-1])
    assert doc["errors"] == [] and doc["deadletters"]["objects"] == 1 and set(doc["lag"]) == {"parse", "enrich",
                                                                                               "sink"}
    dead = blueflow(run, "deadletter", "list", "--json")
    assert dead.returncode == 0, dead.stderr
    assert [o["key"] for o in json.loads(dead.stdout.strip().splitlines()[-1])["objects"]] == sorted(run.bad_keys)

    before = len(kentik(run.env, "/_emulator/flows"))
    replay = blueflow(run, "replay", "--json", "--stage", "sink", "--from", "0")
    assert replay.returncode == 0, replay.stderr
    summary = json.loads(replay.stdout.strip().splitlines()[-1])
    assert summary["sent"] >= 1
    assert wait_for(lambda: len(kentik(run.env, "/_emulator/flows")) == 2 * before, 60), (before, run.logs())


@pytest.mark.parametrize("env, names", [
    ({"BLUEFLOW_KAFKA_SASL_PASSWORD": "not-the-key"}, "check BLUEFLOW_KAFKA_SASL_PASSWORD"),
    ({"BLUEFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9"}, "check the broker list --kafka_bootstrap / BLUEFLOW_KAFKA_BOOTSTRAP"),
    ({"BLUEFLOW_KAFKA_SSL_CA": ""}, "check --kafka_ssl_ca / BLUEFLOW_KAFKA_SSL_CA"),
])
def test_each_connection_failure_is_one_line_naming_what_to_fix(run, env, names):
    done = blueflow(run, "topics", "ensure", **env)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3 and len(lines) == 1, done.stderr
    assert lines[0].startswith("blueflow topics ensure: error: Kafka at ") and names in lines[0], lines[0]
    assert "not-the-key" not in lines[0]
