"""Integration: the local stack's settings file and component status."""

from __future__ import annotations

import pytest

from devstack import stack as devstack
from devstack.stack import env as stack_env

pytestmark = pytest.mark.stack

CONTRACT_KEYS = {
    "BLUEFLOW_KAFKA_BOOTSTRAP", "BLUEFLOW_COS_ENDPOINT", "BLUEFLOW_COS_IAM_ENDPOINT", "BLUEFLOW_COS_HMAC_ACCESS_KEY",
    "BLUEFLOW_COS_HMAC_SECRET_KEY", "BLUEFLOW_BUCKET", "BLUEFLOW_IAM_URL", "BLUEFLOW_VPC_URL_TEMPLATE",
    "BLUEFLOW_KENTIK_API_ROOT", "BLUEFLOW_KENTIK_FLOW_URL", "BLUEFLOW_KENTIK_EMULATOR", "IBM_VPC_API_KEY",
    "IBM_COS_API_KEY", "IBM_SERVICE_INSTANCE", "KENTIK_API_TOKEN", "KENTIK_API_EMAIL", "BLUEFLOW_WORLD_SEED",
    "BLUEFLOW_REGIONS",
}


def test_env_files_hold_the_contract_keys(stack):
    assert CONTRACT_KEYS <= set(stack)
    assert stack_env.read_env() == stack
    lines = (stack_env.state_dir() / "env").read_text().splitlines()
    keys = {line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")}
    assert CONTRACT_KEYS <= keys
    assert stack["BLUEFLOW_DEVSTACK_KAFKA_VERSION"].startswith("4.")


def test_every_component_is_alive_and_listening(stack):
    rows = devstack.status()
    names = {r["name"] for r in rows}
    assert {"kafka", "s3proxy", "s3proxy-open", "cos-iam-proxy"} <= names
    assert all(r["alive"] and r["listening"] for r in rows), rows
    assert devstack.is_up()
    # ensure_up on a running stack is a no-op that returns the same settings
    assert devstack.ensure_up() == stack
    assert {r["pid"] for r in devstack.status()} == {r["pid"] for r in rows}
