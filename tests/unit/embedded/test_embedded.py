"""The embedded Kafka's decisions without a broker: when it is used, where its data goes, how its death is
handled, how the operator commands find it, and the one-line errors of a data directory that cannot be used."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.ops import cli
from streams.embedded import broker, locate
from streams.embedded.supervisor import EmbeddedKafka, RestartPolicy
from streams.config.option_table import BY_NAME

ROOT = Path(__file__).resolve().parents[3]


def test_no_bootstrap_means_embedded_and_is_the_default():
    assert BY_NAME["kafka_bootstrap"].default == locate.EMBEDDED
    assert locate.is_embedded("embedded") and locate.is_embedded(" Embedded ") and locate.is_embedded("")
    assert not locate.is_embedded("127.0.0.1:9092") and not locate.is_embedded("b-0:9093,b-1:9093")


def test_a_cluster_protocol_without_its_bootstrap_is_refused_not_run_embedded():
    assert "needs --kafka_bootstrap" in locate.protocol_conflict("", "SASL_SSL")
    assert locate.protocol_conflict("embedded", "PLAINTEXT") is None
    assert locate.protocol_conflict("b:9093", "SASL_SSL") is None


def test_the_data_dir_is_the_flag_else_the_per_user_state_dir(tmp_path):
    assert locate.default_data_dir({}, tmp_path) == tmp_path / ".local" / "state" / "blueflow"
    assert locate.default_data_dir({"XDG_STATE_HOME": "/s"}, tmp_path) == Path("/s/blueflow")
    assert locate.data_dir_of("/var/lib/blueflow", {}) == Path("/var/lib/blueflow")


def test_restarts_back_off_and_are_bounded_within_the_window():
    policy = RestartPolicy(max_restarts=3, window_s=100, first_delay_s=1, max_delay_s=3)
    assert [policy.decide(t) for t in (0, 1, 2)] == [1, 2, 3]
    assert policy.decide(3) is None  # a fourth death within 100 s: give up
    fresh = RestartPolicy(max_restarts=2, window_s=10)
    assert fresh.decide(0) is not None and fresh.decide(5) is not None
    assert fresh.decide(20) == 1  # the old deaths left the window


def test_an_unwritable_data_dir_is_one_line_naming_the_fix(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(locate.DataDirError) as err:
        locate.check_writable(blocker / "data")
    text = str(err.value)
    assert "\n" not in text and str(blocker / "data") in text and "--data_dir" in text


def test_a_second_worker_on_the_same_data_dir_is_refused_with_the_first_ones_address(tmp_path):
    fd = locate.hold_lock(tmp_path)
    try:
        locate.write_runtime(tmp_path, {"worker_pid": 4242, "broker_pid": 4243, "bootstrap": "127.0.0.1:5555"})
        with pytest.raises(locate.DataDirError, match=r"pid 4242.*--kafka_bootstrap=127\.0\.0\.1:5555"):
            locate.hold_lock(tmp_path)
    finally:
        os.close(fd)
    os.close(locate.hold_lock(tmp_path))  # released with its descriptor (and with the process)


def test_operator_commands_find_a_running_broker_and_say_why_not_otherwise(tmp_path):
    assert "no embedded Kafka is running" in locate.running_bootstrap(None, tmp_path)[1]
    record = {"worker_pid": 10, "broker_pid": 11, "bootstrap": "127.0.0.1:4000"}
    assert locate.running_bootstrap(record, tmp_path, alive=lambda pid: True) == ("127.0.0.1:4000", "")
    bootstrap, why = locate.running_bootstrap(record, tmp_path, alive=lambda pid: pid != 11)
    assert bootstrap is None and "(pid 10) is no longer running" in why
    locate.write_runtime(tmp_path, record)
    assert locate.read_runtime(tmp_path) == record
    locate.remove_runtime(tmp_path, worker_pid=99)  # another worker's file stays
    assert locate.read_runtime(tmp_path) == record
    locate.remove_runtime(tmp_path, worker_pid=10)
    assert locate.read_runtime(tmp_path) is None


def test_the_broker_listens_on_loopback_only_with_a_static_single_voter_quorum(tmp_path):
    text = broker.server_properties(40001, 40002, tmp_path / "kafka")
    props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:40001,CONTROLLER://127.0.0.1:40002"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:40001"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:40002"
    assert props["log.dirs"] == str(tmp_path / "kafka") and "$" not in text
    assert int(props["log.cleaner.dedupe.buffer.size"]) <= 16 * 1024 * 1024  # fits the bounded heap


def test_the_embedded_jvm_has_a_bounded_heap_and_quiet_logs(tmp_path):
    cmd = broker.jvm_command("/j/bin/java", tmp_path, broker.EMBEDDED_JVM, tmp_path, "WARN")
    assert f"-Xmx{broker.HEAP_MB}m" in cmd and broker.HEAP_MB == 256
    assert "-Dblueflow.kafka.log.level=WARN" in cmd and cmd[-2:] == ["-cp", f"{tmp_path}/*"]


class ShortLived(EmbeddedKafka):
    """The supervisor's watching, restarting and giving up, on a real process that exits at once (no JVM)."""

    def _launch(self) -> float:
        self.launches = getattr(self, "launches", 0) + 1
        self.proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(7)"])
        return 0.0


def test_a_broker_that_keeps_dying_is_restarted_a_bounded_number_of_times_then_the_worker_is_told(tmp_path):
    kafka = ShortLived(tmp_path, "java", tmp_path, "4.1.1", lock_fd=-1,
                       policy=RestartPolicy(max_restarts=2, window_s=60, first_delay_s=0.01, max_delay_s=0.02))
    told = threading.Event()
    kafka.on_give_up = told.set
    kafka.start()
    assert told.wait(10)
    assert kafka.failed and kafka.launches == 3 and kafka.restarts == 2
    assert json.loads((tmp_path / "embedded.json").read_text())["restarts"] == 2
    kafka.stop()
    assert not (tmp_path / "embedded.json").exists()


def test_a_stopped_broker_is_not_restarted(tmp_path):
    class Sleeping(EmbeddedKafka):
        def _launch(self) -> float:
            self.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
            return 0.0

    kafka = Sleeping(tmp_path, "java", tmp_path, "4.1.1", lock_fd=-1, policy=RestartPolicy(first_delay_s=0.01))
    kafka.start()
    assert kafka.stop() is not None  # SIGTERM ended it
    assert kafka.restarts == 0 and not kafka.failed


def _worker(tmp_path, *flags: str, **env_extra: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BLUEFLOW_", "KENTIK_", "IBM_"))}
    env.update({"BLUEFLOW_COS_HMAC_SECRET_KEY": "s", "KENTIK_API_TOKEN": "t", **env_extra})
    return subprocess.run([sys.executable, "-m", "streams.ops.cli", "worker", "--bucket_name=b", "--service_endpoint=c",
                           "--cos_hmac_access_key=a", "--api_email=e@x", "--plan_id=1", "--regions=none", *flags],
                          capture_output=True, text=True, timeout=60, env=env, cwd=str(ROOT))


def test_worker_with_an_unwritable_data_dir_exits_2_with_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    done = _worker(tmp_path, f"--data_dir={tmp_path / 'file' / 'data'}")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("blueflow worker: error: the embedded Kafka's data directory")


def test_worker_with_sasl_but_no_bootstrap_exits_2_rather_than_run_embedded(tmp_path):
    done = _worker(tmp_path, f"--data_dir={tmp_path}", "--kafka_security_protocol=SASL_SSL",
                   BLUEFLOW_KAFKA_SASL_PASSWORD="p")
    assert done.returncode == 2 and "needs --kafka_bootstrap" in done.stderr
    assert not (tmp_path / "kafka").exists()


def test_operator_command_without_a_running_embedded_kafka_exits_3_with_one_line(tmp_path):
    result = CliRunner().invoke(cli.main, ["deadletter", "list", f"--data_dir={tmp_path}"])
    assert result.exit_code == 3
    assert "no embedded Kafka is running with data in" in result.output and str(tmp_path) in result.output


def test_faust_entry_point_without_a_bootstrap_says_to_use_blueflow_worker(monkeypatch):
    import importlib

    import streams.app as app_module

    for name in [k for k in os.environ if k.startswith("BLUEFLOW_")]:
        monkeypatch.delenv(name)
    importlib.reload(app_module)
    with pytest.raises(RuntimeError, match="needs BLUEFLOW_KAFKA_BOOTSTRAP.*blueflow worker"):
        app_module.app  # noqa: B018 - the lazy attribute builds the app
