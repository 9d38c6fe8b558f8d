"""End to end with no Kafka configured: `blueflow worker` run as Kentik's v1 image was (its flags, secrets in the
environment, no Kafka setting at all) starts its embedded Kafka and drains a bucket into the Kentik stand-in
through S3Proxy; the operator commands on the same host find that broker; SIGTERM stops both.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from devstack.referee import compare
from devstack.workers import REPO_ROOT, WorkerProcess
from tests.integration.pipeline_support import kentik, prepare, wait_for

pytestmark = pytest.mark.stack

BAD_KINDS = ["not_gzip", "bad_ip"]
# what Kentik's v1 image took as flags; everything else stays in the environment (the stand-ins' addresses)
V1_FLAGS = {"BLUEFLOW_BUCKET": "bucket_name", "BLUEFLOW_COS_ENDPOINT": "service_endpoint",
            "KENTIK_API_EMAIL": "api_email", "KENTIK_PLAN_ID": "plan_id", "KENTIK_EXPORT_ID": "export_id"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def run(stack, tmp_path_factory):
    r = prepare(30, bad=len(BAD_KINDS), bad_kinds=BAD_KINDS, seed=23)
    data_dir = tmp_path_factory.mktemp("embedded") / "data"
    env = r.worker_env(BLUEFLOW_DATA_DIR=str(data_dir))
    env.pop("BLUEFLOW_KAFKA_BOOTSTRAP")
    flags = [f"--{flag}={env.pop(var)}" for var, flag in V1_FLAGS.items()] + ["--log_level=info"]
    worker = WorkerProcess("w1", env, r.log_dir, tuple(flags)).start()
    r.workers.append(worker)
    try:
        done = wait_for(lambda: r.bucket_keys() <= r.bad_keys and r.counts().get("deadlettered", 0) >= len(r.bad_keys),
                        timeout_s=240, interval_s=2)
        assert done, f"the embedded worker did not drain the bucket; counts={r.counts()}\n{r.logs()}"
        r.data_dir, r.ops_env = data_dir, env
        r.record = json.loads((data_dir / "embedded.json").read_text())
        yield r
    finally:
        r.stop_all()


def blueflow(run, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.ops.cli", *args], env=run.ops_env, cwd=str(REPO_ROOT),
                          capture_output=True, text=True, timeout=120)


def test_every_flow_arrives_through_the_embedded_kafka(run):
    verdict = compare(run.good, kentik(run.env, "/_emulator/flows"))
    assert verdict.owed > 500
    assert (verdict.lost, verdict.duplicates, verdict.unexpected) == (0, 0, 0)
    assert verdict.accepted == verdict.owed
    assert run.bucket_keys() == run.bad_keys


def test_the_worker_says_once_that_it_runs_embedded_and_how_to_switch(run):
    text = run.workers[0].log_path.read_text()
    lines = [line for line in text.splitlines() if "embedded single-node Apache Kafka" in line]
    assert len(lines) == 1, lines
    assert run.record["bootstrap"] in lines[0] and "--kafka_bootstrap" in lines[0] and str(run.data_dir) in lines[0]
    assert run.record["bootstrap"].startswith("127.0.0.1:")
    assert run.record["worker_pid"] == run.workers[0].proc.pid and _alive(run.record["broker_pid"])


def test_operator_commands_find_the_running_embedded_kafka(run):
    letters = blueflow(run, "deadletter", "list", "--json")
    assert letters.returncode == 0, letters.stderr
    assert json.loads(letters.stdout)["count"] == len(BAD_KINDS)
    where = blueflow(run, "embedded", "where", "--json")
    assert where.returncode == 0 and json.loads(where.stdout)["bootstrap"] == run.record["bootstrap"]
    topics = blueflow(run, "topics", "ensure", "--json")
    assert topics.returncode == 0, topics.stderr
    assert {t["state"] for t in json.loads(topics.stdout)["topics"]} == {"exists"}


def test_sigterm_stops_worker_and_broker_and_then_no_command_finds_it(run):
    worker = run.workers[0]
    started = time.monotonic()
    assert worker.stop(40) == 0
    assert time.monotonic() - started < 30
    assert wait_for(lambda: not _alive(run.record["broker_pid"]), 10, 0.2)
    assert not (run.data_dir / "embedded.json").exists()
    letters = blueflow(run, "deadletter", "list")
    assert letters.returncode == 3 and "no embedded Kafka is running" in letters.stderr
    assert len(letters.stderr.strip().splitlines()) == 1
