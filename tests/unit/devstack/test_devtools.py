"""The product and the development tools apart: two distributions (pyproject.toml, devstack/pyproject.toml),
and `blueflow-dev <product command>` handing the product the local stack's settings as environment
(devstack/product.py), including `status` finding the local workers (devstack/workers.py records them)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

from devstack.product import COMMANDS, newest_run, stack_environ, status_args
from devstack.workers import discover

ROOT = Path(__file__).resolve().parents[3]


def project(path: Path) -> dict:
    return tomllib.loads(path.read_text())


def test_the_product_distribution_holds_the_product_only():
    product = project(ROOT / "pyproject.toml")
    assert product["project"]["scripts"] == {"blueflow": "streams.ops.cli:main"}
    assert product["tool"]["setuptools"]["packages"]["find"]["include"] == ["streams*", "connectors*", "schemas*"]
    assert "devstack" not in product["tool"]["setuptools"]["package-data"]
    assert not any("devstack" in dep or "blueflow" in dep
                   for deps in product["project"]["optional-dependencies"].values() for dep in deps)


def test_the_dev_tools_distribution_has_blueflow_dev_and_every_devstack_package():
    dev = project(ROOT / "devstack" / "pyproject.toml")
    assert dev["project"]["name"] == "blueflow-dev"
    assert dev["project"]["scripts"] == {"blueflow-dev": "devstack.cli:main"}
    assert "blueflow" in dev["project"]["dependencies"]
    assert dev["tool"]["setuptools"]["package-dir"] == {"devstack": "."}
    on_disk = {"devstack" + "".join("." + part for part in p.parent.relative_to(ROOT / "devstack").parts)
               for p in (ROOT / "devstack").rglob("__init__.py")}
    assert set(dev["tool"]["setuptools"]["packages"]) == on_disk


def test_dev_script_installs_both_distributions_editable():
    text = (ROOT / "dev").read_text()
    assert "pip install --quiet -e '.[test]' -e ./devstack" in text
    assert "devstack/pyproject.toml -nt" in text  # a change of either re-installs


def test_the_stack_settings_go_under_the_environment_already_set():
    env = stack_environ({"IBM_VPC_API_KEY": "dev-key", "BLUEFLOW_BUCKET": "flowlogs"}, {"IBM_VPC_API_KEY": "wrong"})
    assert env == {"IBM_VPC_API_KEY": "wrong", "BLUEFLOW_BUCKET": "flowlogs"}


def test_status_follows_the_newest_run_of_local_workers(tmp_path):
    records = [{"url": "http://127.0.0.1:1", "pid": 11, "app_id": "told", "topic_prefix": "told.", "started_at": 1},
               {"url": "http://127.0.0.1:2", "pid": 12, "app_id": "tnew", "topic_prefix": "tnew.", "started_at": 5},
               {"url": "http://127.0.0.1:3", "pid": 13, "app_id": "tnew", "topic_prefix": "tnew.", "started_at": 6},
               {"url": "http://127.0.0.1:4", "pid": 14, "app_id": "tnew", "topic_prefix": "tnew.", "started_at": 7}]
    for i, record in enumerate(records):
        (tmp_path / f"w{i}.json").write_text(json.dumps(record))
    live = discover(tmp_path, alive=lambda pid: pid != 14)
    assert [r["pid"] for r in live] == [13, 12, 11] and not (tmp_path / "w3.json").exists()  # dead one forgotten
    urls, run = newest_run(live)
    assert urls == ["http://127.0.0.1:3", "http://127.0.0.1:2"]
    assert run == {"app_id": "tnew", "topic_prefix": "tnew.", "other_runs": 1}
    assert newest_run([]) == ([], {})

    notes, environ = [], {"BLUEFLOW_APP_ID": "mine"}
    args = status_args(["--json"], environ, live, say=notes.append)
    assert args == ["--json", "--worker", "http://127.0.0.1:3", "--worker", "http://127.0.0.1:2"]
    assert environ == {"BLUEFLOW_APP_ID": "mine", "BLUEFLOW_TOPIC_PREFIX": "tnew."}  # what was set stays
    assert notes == ["note: 1 older run(s) of local workers are also up; showing the newest (app id tnew)"]


def test_status_leaves_named_workers_alone_and_says_when_none_runs():
    environ, notes = {}, []
    assert status_args(["--worker=http://h:1"], environ, [{"url": "http://x", "app_id": "a"}]) == ["--worker=http://h:1"]
    assert status_args(["--worker-dns", "pods:8083"], environ, [{"url": "http://x"}]) == ["--worker-dns", "pods:8083"]
    assert status_args([], environ, [], say=notes.append) == [] and environ == {}
    assert notes == ["note: no worker of the local stack is running; trying http://127.0.0.1:8083"]


def dev_cli(*args: str, state: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BLUEFLOW_", "KENTIK_", "IBM_"))}
    return subprocess.run([sys.executable, "-m", "devstack.cli", *args], capture_output=True, text=True, timeout=60,
                          env=dict(clean, BLUEFLOW_DEVSTACK_DIR=str(state), **env))


def test_blueflow_dev_runs_the_product_command_with_the_stack_settings_under_env_and_flags(tmp_path):
    (tmp_path / "env.json").write_text(json.dumps({"BLUEFLOW_TOPIC_PREFIX": "stack."}))
    assert "stack.objects -> stack.flows" in dev_cli("topology", state=tmp_path).stdout
    assert "env.objects -> env.flows" in dev_cli("topology", state=tmp_path, BLUEFLOW_TOPIC_PREFIX="env.").stdout
    assert "flag.objects -> flag.flows" in dev_cli("topology", "--topic_prefix", "flag.", state=tmp_path).stdout


def test_blueflow_dev_without_a_running_stack_says_how_to_start_it_but_still_helps(tmp_path):
    done = dev_cli("status", "--json", state=tmp_path)
    assert done.returncode == 2 and "blueflow-dev devstack up" in done.stderr
    helped = dev_cli("status", "--help", state=tmp_path)
    assert helped.returncode == 0 and "--worker-dns" in helped.stdout


def test_blueflow_dev_lists_the_dev_tools_and_the_product_commands(tmp_path):
    out = dev_cli("--help", state=tmp_path).stdout
    commands = {line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()}
    assert commands == {"demo", "devstack", "faults", "generate", *COMMANDS}
