"""Shared pytest fixtures: the `stack` session fixture (the local Kafka/S3Proxy/stand-in stack).

Tests marked `@pytest.mark.stack` take the `stack` fixture: it reuses a running stack (`.devstack/`) or
starts one, and stops it at session end only if this session started it. The report header names the
Kafka, S3Proxy and Java versions in use.
"""

from __future__ import annotations

import contextlib

import pytest

from devstack import stack as devstack
from devstack.stack import env as stack_env
from devstack.stack.components import versions


def pytest_report_header(config: pytest.Config) -> list[str]:
    env = stack_env.read_env()
    if env and devstack.is_up():
        return [f"devstack: running - Kafka {env.get('BLUEFLOW_DEVSTACK_KAFKA_VERSION')}, "
                f"S3Proxy {env.get('BLUEFLOW_DEVSTACK_S3PROXY_VERSION')}, {env.get('BLUEFLOW_DEVSTACK_JAVA')}"]
    try:
        v = versions()
    except Exception as exc:  # noqa: BLE001 - a header must never break collection
        return [f"devstack: not running ({exc})"]
    return [f"devstack: not running; `stack` tests start Kafka {v['kafka']} and S3Proxy {v['s3proxy']}"]


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> dict[str, str]:
    """The settings of the running local stack (contract keys of `.devstack/env`)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capman = request.config.pluginmanager.get_plugin("capturemanager")

    def say(msg: str) -> None:  # straight to the terminal, past output capture
        if reporter is None:
            return
        ctx = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
        with ctx:
            reporter.write_line(f"[devstack] {msg}")

    was_up = devstack.is_up()
    try:
        settings = devstack.ensure_up(log=say)
    except stack_env.StackError as exc:
        pytest.fail(f"the local stack could not start:\n{exc}", pytrace=False)
    say(f"Kafka {settings.get('BLUEFLOW_DEVSTACK_KAFKA_VERSION')} at {settings['BLUEFLOW_KAFKA_BOOTSTRAP']}, "
        f"S3Proxy {settings.get('BLUEFLOW_DEVSTACK_S3PROXY_VERSION')} at {settings['BLUEFLOW_COS_ENDPOINT']}, "
        f"{settings.get('BLUEFLOW_DEVSTACK_JAVA')}" + ("" if was_up else " (started by this session)"))
    yield settings
    if not was_up:
        devstack.down(log=say)
