"""First contact with the `blueflow` command (issue 27): readable help, -h everywhere, no traceback for a bad
choice, bad times rejected before Kafka is asked, Ctrl-C honoured at once, --config wherever settings are
read, both flag spellings, switches with =true/false, case-insensitive choices listed in --help."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import click
import pytest
from click.testing import CliRunner

from streams.ops import cli, worker_cli
from streams.config.option_table import OPTIONS

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("BLUEFLOW_", "KENTIK_", "IBM_"))}


def run_cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.ops.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=dict(CLEAN_ENV, **(env or {})))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def every_command(group: click.Group, path: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield path + (name,)
        if isinstance(command, click.Group):
            yield from every_command(command, path + (name,))


# ------------------------------------------------------------------------------------------------ help
@pytest.mark.parametrize("args", [[], ["deadletter"], ["topics"]])
def test_a_bare_group_prints_its_help_as_lines_not_an_error(args):
    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("Usage: blueflow") and len(lines) > 8
    assert "Commands:" in lines and "error" not in done.stdout


@pytest.mark.parametrize("path", list(every_command(cli.main)))
def test_dash_h_works_on_every_command(path):
    result = CliRunner().invoke(cli.main, [*path, "-h"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: blueflow " + " ".join(path))


def test_dash_h_on_the_group():
    result = CliRunner().invoke(cli.main, ["-h"])
    assert result.exit_code == 0 and "Commands:" in result.output


# ---------------------------------------------------------------------------------- choices and flags
def test_a_bad_choice_is_one_line_and_exit_2_not_a_traceback():
    done = run_cli("topology", "--sink=foo")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "blueflow topology: error: invalid value 'foo' for --sink: expected one of kentik, ipfix"]


def test_choices_are_case_insensitive_and_have_aliases():
    done = run_cli("topology", "--sink", "IPFIX")
    assert done.returncode == 0, done.stderr
    assert "IPFIX" in done.stdout and "Kentik /chf" not in done.stdout


def test_help_lists_the_choices_instead_of_text():
    out = CliRunner().invoke(cli.main, ["worker", "--help"]).output
    for metavar in ("--sink [kentik|ipfix]", "--log_format [text|json]", "--ipfix_transport [udp|tcp]",
                    "--log_level [debug|info|warning|error]"):
        assert metavar in out
    assert "--sink TEXT" not in out


def test_worker_help_names_the_five_secret_variables():
    out = " ".join(CliRunner().invoke(cli.main, ["worker", "--help"]).output.split())
    secrets = [o.env for o in OPTIONS if o.secret]
    assert len(secrets) == 5
    for env in secrets:
        assert env in out


@pytest.fixture
def worker_settings(monkeypatch):
    """Run `blueflow worker ARGS` up to the point where the Faust worker would start; its Settings."""
    import logging

    from streams.observe import logs

    seen = {}
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: logging.NullHandler())
    monkeypatch.setattr(worker_cli, "require_kafka", lambda settings: {"bootstrap.servers": "x"})
    monkeypatch.setattr(worker_cli, "ensure_topics_for", lambda settings, conf: type("R", (), {"mismatched": {}}))
    monkeypatch.setattr(worker_cli, "run_worker", lambda settings, handler: seen.setdefault("s", settings) and 0)
    monkeypatch.setattr(worker_cli.os, "_exit", lambda code: (_ for _ in ()).throw(SystemExit(code)))
    for key, value in {"BLUEFLOW_BUCKET": "b", "BLUEFLOW_COS_ENDPOINT": "c", "BLUEFLOW_COS_HMAC_ACCESS_KEY": "a",
                       "BLUEFLOW_COS_HMAC_SECRET_KEY": "s", "KENTIK_API_TOKEN": "t",
                       "KENTIK_API_EMAIL": "e@x", "BLUEFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9",
                       "KENTIK_PLAN_ID": "1", "BLUEFLOW_REGIONS": "none"}.items():
        monkeypatch.setenv(key, value)  # a bootstrap: no embedded Kafka is started

    def run(*args: str, env: dict | None = None):
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        seen.clear()
        result = CliRunner().invoke(cli.main, ["worker", *args])
        assert result.exit_code == 0, result.output
        return seen["s"]

    return run


@pytest.mark.parametrize("args, dry_run", [
    (["--dry_run"], True), (["--dry-run"], True), (["--dry_run=true"], True), (["--dry-run=yes"], True),
    (["--dry_run=false"], False), (["--dry-run=0"], False), ([], False), (["--dry_run", "--no-dry-run"], False),
])
def test_both_spellings_and_switch_values(worker_settings, args, dry_run):
    assert worker_settings(*args).dry_run is dry_run


def test_a_false_switch_beats_its_variable(worker_settings):
    assert worker_settings("--keep_objects=false", env={"BLUEFLOW_KEEP_OBJECTS": "true"}).keep_objects is False
    assert worker_settings(env={"BLUEFLOW_KEEP_OBJECTS": "true"}).keep_objects is True


def test_levels_and_sinks_in_any_case_and_warn(worker_settings):
    s = worker_settings("--log_level=warn", "--sink", "IPFIX", "--ipfix_collectors=127.0.0.1:4739",
                        "--log-format=JSON", "--ipfix_transport=TCP")
    assert (s.log_level, s.sink, s.log_format, s.ipfix_transport) == ("warning", "ipfix", "json", "tcp")


def test_ops_switches_take_both_spellings_and_values():
    result = CliRunner().invoke(cli.main, ["topics", "ensure", "--dry_run=true", "--json=yes",
                                           f"--kafka-bootstrap=127.0.0.1:{closed_port()}", "--topic-prefix=q."])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["dry_run"] is True
    assert json.loads(result.output)["topics"][0]["topic"].startswith("q.")


# ------------------------------------------------------------------------------------------- --config
def test_topics_ensure_and_topology_read_the_configuration_file(tmp_path):
    path = tmp_path / "blueflow.yaml"
    path.write_text("topic_prefix: fromfile.\npartitions: 3\nsink: ipfix\n")
    ensure = CliRunner().invoke(cli.main, ["topics", "ensure", "--dry-run", "--json", f"--config={path}"])
    assert ensure.exit_code == 0, ensure.output
    topics = {t["topic"]: t["partitions"] for t in json.loads(ensure.output)["topics"]}
    assert topics["fromfile.objects"] == 3
    graph = CliRunner().invoke(cli.main, ["topology", "--config", str(path)])
    assert graph.exit_code == 0, graph.output
    assert "fromfile.kflow" in graph.output and "IPFIX" in graph.output


# ------------------------------------------------------------------------------ before and during Kafka
def test_a_bad_replay_time_is_rejected_before_kafka_is_asked():
    started = time.monotonic()
    done = run_cli("replay", "--stage", "sink", "--from", "yesterday",
                   f"--kafka_bootstrap=127.0.0.1:{closed_port()}")
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - started < 8  # the Kafka probe alone waits 10 s
    assert "yesterday" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_ctrl_c_during_the_kafka_probe_exits_130_within_a_second():
    with socket.socket() as silent:  # accepts connections, never answers: the probe waits its 10 s
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        proc = subprocess.Popen([sys.executable, "-m", "streams.ops.cli", "topics", "ensure",
                                 f"--kafka_bootstrap=127.0.0.1:{port}"], env=CLEAN_ENV,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            silent.settimeout(30)
            conn, _ = silent.accept()  # the probe is under way
            time.sleep(0.3)
            sent = time.monotonic()
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=10)
            took = time.monotonic() - sent
            conn.close()
        finally:
            proc.kill()
            proc.wait()
    assert code == 130, proc.stderr.read()
    assert took < 1.0
    assert "Traceback" not in proc.stderr.read()
