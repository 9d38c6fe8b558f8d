"""The local stack's settings and state: where it lives, its ports and keys, and its env file.

State lives in <repo>/.devstack, or in $BLUEFLOW_DEVSTACK_DIR (the state directory itself). Ports:
$BLUEFLOW_DEVSTACK_PORT_BASE (default 19000) + fixed offsets. `settings()` are the connection settings a worker
needs, under the product's own environment variable names; the stack writes them to `.devstack/env` (shell
KEY=value) and `.devstack/env.json` while it runs, and that is all the product ever sees of it.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

HMAC_ACCESS_KEY = "blueflow-access"
HMAC_SECRET_KEY = "blueflow-secret-dev"
BUCKET = "flowlogs"
DEV_API_KEY = "blueflow-dev-key"
DEV_API_KEY_B = "blueflow-dev-key-b"  # a second account's key (several sources: different credentials) ...
SERVICE_INSTANCE = "dev-instance"
KENTIK_TOKEN = "blueflow-dev-token"
KENTIK_EMAIL = "dev@example.com"
WORLD_SEED = 1
WORLD_SEED_STEP = 97  # ... whose VPC world is build_world(WORLD_SEED + WORLD_SEED_STEP) (devstack/sources_stack.py)
REGIONS = ("us-south", "eu-de")

# component -> port offset from the base
PORT_OFFSETS = {
    "kafka": 92, "kafka-controller": 93, "s3proxy": 80, "cos-iam-proxy": 81, "iam": 82,
    "s3proxy-open": 83, "vpc": 84, "kentik": 85,
}


class StackError(RuntimeError):
    """The local stack could not be assembled, started or checked; the message says what and why."""


def second_account() -> str:
    """The account of DEV_API_KEY_B: that of the second world, which the VPC stand-in serves to its tokens."""
    from devstack.synth.worldgen import build_world

    return build_world(WORLD_SEED + WORLD_SEED_STEP, REGIONS).account


def state_dir() -> Path:
    env = os.environ.get("BLUEFLOW_DEVSTACK_DIR")
    return Path(env).resolve() if env else REPO_ROOT / ".devstack"


def ports() -> dict[str, int]:
    base = int(os.environ.get("BLUEFLOW_DEVSTACK_PORT_BASE", "19000"))
    return {name: base + off for name, off in PORT_OFFSETS.items()}


def settings(p: dict[str, int] | None = None) -> dict[str, str]:
    """The contract keys of `.devstack/env` for the given ports."""
    p = p or ports()
    return {
        "BLUEFLOW_KAFKA_BOOTSTRAP": f"127.0.0.1:{p['kafka']}",
        "BLUEFLOW_COS_ENDPOINT": f"http://127.0.0.1:{p['s3proxy']}",
        "BLUEFLOW_COS_IAM_ENDPOINT": f"http://127.0.0.1:{p['cos-iam-proxy']}",
        "BLUEFLOW_COS_HMAC_ACCESS_KEY": HMAC_ACCESS_KEY,
        "BLUEFLOW_COS_HMAC_SECRET_KEY": HMAC_SECRET_KEY,
        "BLUEFLOW_BUCKET": BUCKET,
        "BLUEFLOW_IAM_URL": f"http://127.0.0.1:{p['iam']}",
        "BLUEFLOW_VPC_URL_TEMPLATE": f"http://127.0.0.1:{p['vpc']}/{{region}}/v1",
        "BLUEFLOW_KENTIK_API_ROOT": f"http://127.0.0.1:{p['kentik']}/api/internal",
        "BLUEFLOW_KENTIK_FLOW_URL": f"http://127.0.0.1:{p['kentik']}/chf",
        "BLUEFLOW_KENTIK_EMULATOR": f"http://127.0.0.1:{p['kentik']}",
        "IBM_VPC_API_KEY": DEV_API_KEY,
        "IBM_COS_API_KEY": DEV_API_KEY,
        "IBM_SERVICE_INSTANCE": SERVICE_INSTANCE,
        "KENTIK_API_TOKEN": KENTIK_TOKEN,
        "KENTIK_API_EMAIL": KENTIK_EMAIL,
        "BLUEFLOW_WORLD_SEED": str(WORLD_SEED),
        "BLUEFLOW_REGIONS": ",".join(REGIONS),
    }


def read_env() -> dict[str, str]:
    """The settings of the running stack (`.devstack/env.json`); {} if the stack never ran."""
    path = state_dir() / "env.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_env(values: dict[str, str]) -> None:
    d = state_dir()
    (d / "env.json").write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    lines = [f"{k}={shell_quote(v)}" for k, v in sorted(values.items())]
    (d / "env").write_text("# written by devstack/stack; source it or read env.json\n" + "\n".join(lines) + "\n")


def forget_env() -> None:
    """The settings describe a running stack only: removed when it stops or restarts."""
    for name in ("env", "env.json"):
        (state_dir() / name).unlink(missing_ok=True)


def shell_quote(v: str) -> str:
    return v if re.fullmatch(r"[A-Za-z0-9_.,:/@%+=-]*", v) else "'" + v.replace("'", "'\"'\"'") + "'"
