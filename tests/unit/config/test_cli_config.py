"""One configuration path: the option table types the flags, checks flags and variables the same way, and a
command gets a Settings object (nothing goes through os.environ). Bad values: one line, exit status 2."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from streams.ops import cli, worker_cli
from streams.config.option_table import ALL_OPTIONS, BY_NAME, OPS_OPTIONS, OPTIONS
from streams.config.settings import Settings, resolve_values
from streams.config.values import SettingError, convert

WORKER_ENV = {"BLUEFLOW_BUCKET": "b", "BLUEFLOW_COS_ENDPOINT": "cos.example", "BLUEFLOW_COS_HMAC_ACCESS_KEY": "a",
              "BLUEFLOW_COS_HMAC_SECRET_KEY": "s", "KENTIK_API_TOKEN": "t", "KENTIK_API_EMAIL": "e@x",
              "IBM_VPC_API_KEY": "v", "BLUEFLOW_REGIONS": "us-south"}


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BLUEFLOW_", "KENTIK_", "IBM_"))}
    return subprocess.run([sys.executable, "-m", "streams.ops.cli", *args], capture_output=True, text=True, timeout=60,
                          env=dict(clean, **(env or {})))


@pytest.mark.parametrize("args, env, names", [
    (["worker", "--plan_id=abc"], {}, "--plan_id"),
    (["worker"], {"KENTIK_PLAN_ID": "abc"}, "KENTIK_PLAN_ID"),
    (["plan_id=abc"], {}, "--plan_id"),  # Kentik's manifest style goes through the same check
    (["worker", "--log_level=verbose"], {}, "--log_level"),
    (["worker"], {"BLUEFLOW_LOG_LEVEL": "verbose"}, "BLUEFLOW_LOG_LEVEL"),
    (["worker", "--http_port=70000"], {}, "--http_port"),
    (["worker"], {"BLUEFLOW_POLL_INTERVAL": "30s"}, "BLUEFLOW_POLL_INTERVAL"),
])
def test_a_bad_value_is_one_line_naming_the_flag_or_variable_and_exit_status_2(args, env, names):
    done = run_cli(*args, env=env)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("blueflow worker: error: invalid value")


def test_a_command_checks_only_the_options_it_reads():
    env = {"BLUEFLOW_POLL_INTERVAL": "30s", "BLUEFLOW_KAFKA_BOOTSTRAP": "k:1"}
    settings = Settings.resolve(environ=env, uses=OPS_OPTIONS)  # status, replay, deadletter never poll
    assert (settings.kafka_bootstrap, settings.poll_interval) == ("k:1", 30.0)
    with pytest.raises(SettingError, match="BLUEFLOW_KAFKA_SECURITY_PROTOCOL"):
        Settings.resolve(environ={"BLUEFLOW_KAFKA_SECURITY_PROTOCOL": "TLS"}, uses=OPS_OPTIONS)


def test_flags_beat_the_environment_which_beats_the_configuration_file_which_beats_defaults():
    values = resolve_values({"partitions": 3}, {"BLUEFLOW_PARTITIONS": "5", "BLUEFLOW_APP_ID": "env"}, ALL_OPTIONS,
                            {"partitions": "7", "app_id": "file", "bucket_name": "flowlogs"})
    assert (values["partitions"], values["app_id"], values["bucket_name"], values["topic_prefix"]) == (
        3, "env", "flowlogs", "blueflow.")


def test_values_are_typed_and_checked_the_same_way_whatever_their_source():
    assert convert(BY_NAME["log_level"], "WARNING") == "warning"
    assert convert(BY_NAME["kafka_security_protocol"], "sasl_ssl") == "SASL_SSL"
    assert convert(BY_NAME["keep_objects"], "yes") is True and convert(BY_NAME["dry_run"], "off") is False
    for name, raw in [("keep_objects", "maybe"), ("partitions", "0"), ("poll_interval", "-1"), ("plan_id", "1.5")]:
        with pytest.raises(ValueError):
            convert(BY_NAME[name], raw)
    assert Settings.from_env({"KENTIK_PLAN_ID": ""}).plan_id == 0  # an empty variable is "not set"


def test_a_secret_in_an_error_is_not_echoed():
    with pytest.raises(SettingError) as err:
        Settings.resolve(environ={"BLUEFLOW_KAFKA_SECURITY_PROTOCOL": "hunter2"}, uses=ALL_OPTIONS)
    assert "hunter2" in str(err.value)  # not a secret: shown
    secret = next(o for o in OPTIONS if o.secret)
    assert "s3cret" not in str(SettingError(secret, "env", "s3cret", "bad"))


def test_help_shows_types_variables_and_defaults_and_hides_secrets():
    out = CliRunner().invoke(cli.main, ["worker", "--help"]).output
    assert "--poll_interval SECONDS" in out and "--partitions INTEGER" in out
    assert "[debug|info|warning|error]" in out
    assert "BLUEFLOW_POLL_INTERVAL; default: 30]" in " ".join(out.split())
    assert "--kafka_sasl_password" not in out and "--kentik_api_token" not in out


def test_version():
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.strip().startswith("blueflow 0.")


def test_the_worker_gets_a_settings_object_and_the_environment_is_left_alone(monkeypatch):
    seen = {}
    import logging

    from streams.observe import logs

    # the worker would route every logger through a scrubber of these (one-letter) secrets: not in tests
    monkeypatch.setattr(logs, "configure", lambda *args, **kwargs: logging.NullHandler())
    monkeypatch.setattr(worker_cli, "require_kafka", lambda settings: {"bootstrap.servers": "x"})
    monkeypatch.setattr(worker_cli, "ensure_topics_for", lambda settings, conf: type("R", (), {"mismatched": {}}))
    monkeypatch.setattr(worker_cli, "run_worker", lambda settings, handler: seen.setdefault("settings", settings) and 0)
    monkeypatch.setattr(worker_cli.os, "_exit", lambda code: (_ for _ in ()).throw(SystemExit(code)))
    for key, value in {**WORKER_ENV, "BLUEFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9"}.items():  # no embedded Kafka
        monkeypatch.setenv(key, value)
    before = dict(os.environ)
    result = CliRunner().invoke(cli.main, ["worker", "--plan_id=5", "--poll_interval=2.5", "--keep_objects",
                                           "--log_level=DEBUG"])
    assert result.exit_code == 0, result.output
    s = seen["settings"]
    assert (s.plan_id, s.poll_interval, s.keep_objects, s.log_level, s.bucket_name) == (5, 2.5, True, "debug", "b")
    assert dict(os.environ) == before


def test_build_makes_the_app_from_settings_and_nothing_is_built_at_import():
    import streams.app as app_module

    assert "app" not in vars(app_module)  # `faust -A streams.app` builds it on first access only
    app = app_module.build(Settings.from_env(dict(WORKER_ENV, BLUEFLOW_APP_ID="cfg-test", BLUEFLOW_HTTP_PORT="18999")))
    assert (app.conf.id, app.conf.web_port) == ("cfg-test", 18999)
    app2 = app_module.build(Settings.from_env(dict(WORKER_ENV, BLUEFLOW_TOPIC_PREFIX="other.")))
    assert {a.channel.topics for a in app2.agents.values()} == {("other.objects",), ("other.flows",), ("other.kflow",)}


def test_the_http_port_binds_the_configured_host():
    from streams.app import make_app
    from streams.config.settings import Settings

    assert Settings.from_env({}).http_host == "0.0.0.0"
    app = make_app(Settings.from_env({"BLUEFLOW_HTTP_HOST": "127.0.0.1", "BLUEFLOW_APP_ID": "t-http-host"}))
    assert app.conf.web_bind == "127.0.0.1" and app.conf.web_host == "127.0.0.1"  # bound, and advertised
    assert not app.conf.web_router_enabled and not app.conf.web_tables_enabled  # Faust's pages: off
    asked = make_app(Settings.from_env({"BLUEFLOW_HTTP_FAUST_PAGES": "true", "BLUEFLOW_APP_ID": "t-pages"}))
    assert asked.conf.web_router_enabled and asked.conf.web_tables_enabled and asked.conf.web_bind == "0.0.0.0"


def test_malloc_is_tuned_unless_the_environment_chose(monkeypatch):
    """glibc's arenas are capped (one) and its mmap and trim thresholds fixed before any thread of the worker starts
    (W2 peak RSS 265 -> 219 MB with one arena from the start, 267 -> 234 with the thresholds); what an operator set
    in the environment is left alone (glibc read it at start-up)."""
    import platform

    from streams.ops.worker_cli import tune_malloc

    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    for name in ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.setenv(name, "4")
    assert tune_malloc() is False
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert tune_malloc() is glibc  # the other two stay the environment's
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
        monkeypatch.delenv(name)
    assert tune_malloc() is glibc


def test_gc_is_tuned_for_the_hot_path():
    """Once the app is built, what is alive moves to the permanent generation and a young collection comes every
    10,000 container allocations (not 700); the older generations keep their relative thresholds."""
    import gc

    from streams.ops.worker_cli import GC_YOUNG_THRESHOLD, tune_gc

    before = gc.get_threshold()
    built = []  # alive when the app is built
    try:
        assert tune_gc() == (GC_YOUNG_THRESHOLD, before[1], before[2])
        later = []
        tracked = {id(o) for o in gc.get_objects()}  # the collector's generations: frozen objects are not in them
        assert id(built) not in tracked and id(later) in tracked
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
