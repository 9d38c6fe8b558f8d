"""`blueflow check` against the local stack: every check passes with the stack's settings (exit 0), a wrong
key fails with the line naming it and its fix (exit 1), and nothing is written, deleted or sent."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import requests

from connectors.cos import list_objects
from tests.integration.pipeline_support import hmac_client

pytestmark = pytest.mark.stack

CLEAN = {k: v for k, v in os.environ.items() if not k.startswith(("BLUEFLOW_", "KENTIK_", "IBM_"))}


def check(stack: dict, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.ops.cli", "check", *args], capture_output=True, text=True,
                          timeout=120, env={**CLEAN, **stack, **env})


def kentik_stats(stack: dict) -> dict:
    return requests.get(stack["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/stats", timeout=5).json()


def test_check_passes_on_the_local_stack_and_changes_nothing(stack):
    requests.post(stack["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/reset", timeout=5).raise_for_status()
    keys_before = {o.key for o in list_objects(hmac_client(stack), stack["BLUEFLOW_BUCKET"], "")}
    done = check(stack, "--json", "--plan_id=11467")
    assert done.returncode == 0, done.stdout + done.stderr
    doc = json.loads(done.stdout)
    assert doc["ok"] is True
    states = {c["check"]: c["state"] for c in doc["checks"]}
    regions = stack["BLUEFLOW_REGIONS"].split(",")
    assert states["settings"] == "ok"
    assert states[f"cos list (source default, bucket {stack['BLUEFLOW_BUCKET']})"] == "ok"
    assert states["iam token (VPC API key of source default)"] == "ok"
    assert [states[f"vpc api (source default, region {r})"] for r in regions] == ["ok"] * len(regions)
    assert states[f"kentik api (user source default, {stack['KENTIK_API_EMAIL']})"] == "ok"
    assert states["kentik plan 11467 (source default)"] == "skipped"  # the stand-in lists no plans
    assert states[f"kafka {stack['BLUEFLOW_KAFKA_BOOTSTRAP']} (PLAINTEXT)"] == "ok"
    assert states["kafka topics (prefix blueflow.)"] == "ok"
    # read-only: the bucket is as it was, Kentik saw only GETs (no device, heartbeat or flow)
    assert {o.key for o in list_objects(hmac_client(stack), stack["BLUEFLOW_BUCKET"], "")} == keys_before
    stats = kentik_stats(stack)
    assert stats["requests"] and {route.split()[0] for route in stats["requests"]} == {"GET"}
    assert (stats["kentik"]["chf_requests"], stats["kentik"]["devices"], stats["kentik"]["heartbeats"]) == (0, 0, 0)


@pytest.mark.parametrize("env, failed, fix", [
    ({"IBM_VPC_API_KEY": "wrong-key"}, "FAILED  iam token (VPC API key of source default):",
     "create a new API key"),
    ({"KENTIK_API_TOKEN": "wrong-token"}, "FAILED  kentik api (user source default,", "check KENTIK_API_TOKEN"),
    ({"BLUEFLOW_COS_HMAC_SECRET_KEY": "wrong-secret"}, "FAILED  cos list (source default,",
     "check the COS credentials"),
])
def test_a_wrong_key_fails_with_its_line_and_fix(stack, env, failed, fix):
    done = check(stack, "--plan_id=11467", **env)  # the Kentik sink needs a plan (start checks)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    bad = [line for line in lines if line.startswith("FAILED")]
    assert len(bad) == 1 and bad[0].startswith(failed) and fix in bad[0], done.stdout
    assert lines[-1].endswith("1 failed")
    assert "Traceback" not in done.stderr and list(env.values())[0] not in done.stdout + done.stderr
