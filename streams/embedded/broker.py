"""One single-node Apache Kafka (KRaft, broker and controller in one JVM) on 127.0.0.1: its configuration, its
storage format, its process (start, readiness, stop). Used by the worker's embedded mode
(streams/embedded/supervisor.py) and by the local stack (devstack/stack/) — one copy of how Kafka is run.

The JVM's memory is bounded by `EMBEDDED_JVM` (heap 256 MB; README "Embedded Kafka" states the measured RSS).
The process runs in a session of its own (a Ctrl-C at the terminal reaches the worker, which stops it after
Faust has committed) and gets SIGTERM from the kernel if the worker dies (PR_SET_PDEATHSIG), so a crashed
worker never leaves an orphan broker holding the data directory.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import string
import subprocess
import time
import uuid
from base64 import urlsafe_b64encode
from pathlib import Path
from typing import Callable

CONF_DIR = Path(__file__).resolve().parent / "conf"
SERVER_TEMPLATE = CONF_DIR / "kafka-server.properties"
LOG4J_CONFIG = CONF_DIR / "kafka-log4j2.properties"
HEAP_MB = 256
# the embedded broker: small heap, serial GC (one VM, low traffic: fewer GC threads, less RSS than G1)
EMBEDDED_JVM = ("-Xms64m", f"-Xmx{HEAP_MB}m", "-XX:+UseSerialGC", "-XX:MaxDirectMemorySize=64m",
                "-XX:ReservedCodeCacheSize=64m", "-XX:TieredStopAtLevel=1", "-Xss512k")
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0


class BrokerError(RuntimeError):
    """The broker could not be formatted, started or checked; the message says what and where its log is."""


def kafka_cluster_id() -> str:
    """A random KRaft cluster id: a UUID in URL-safe base64, never starting with '-' (Kafka's own Uuid does the
    same: the storage tool's argument parser would take '-…' for an option; 1 run in 64 failed that way)."""
    while True:
        cid = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def server_properties(broker_port: int, controller_port: int, log_dir: Path) -> str:
    """The broker's configuration text (listeners on 127.0.0.1 only, data in `log_dir`)."""
    return string.Template(SERVER_TEMPLATE.read_text()).substitute(
        broker_port=str(broker_port), controller_port=str(controller_port), log_dir=str(log_dir))


def jvm_command(java: str, jars_dir: Path, jvm_flags: tuple[str, ...], logs_dir: Path,
                log_level: str = "INFO") -> list[str]:
    """`java ... -cp <jars>/*` for a Kafka main class (append the class and its arguments)."""
    return [java, *jvm_flags, "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dblueflow.kafka.log.level={log_level}", f"-Dkafka.logs.dir={logs_dir}", "-cp", str(jars_dir / "*")]


def java_env(java: str) -> dict[str, str]:
    env = dict(os.environ)
    env["JAVA_HOME"] = str(Path(java).resolve().parent.parent)
    return env


def format_storage(jvm: list[str], props: Path, log_dir: Path, env: dict[str, str], cwd: Path) -> str | None:
    """Format `log_dir` for a new single-node cluster unless it already holds one; the tool's output, or None
    when there was nothing to do. BrokerError when the tool fails."""
    if (log_dir / "meta.properties").exists():
        return None
    cmd = jvm + ["kafka.tools.StorageTool", "format", "-t", kafka_cluster_id(), "-c", str(props)]
    fmt = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(cwd), timeout=120)
    if fmt.returncode != 0:
        raise BrokerError(f"kafka StorageTool format failed (exit {fmt.returncode}):\n"
                          f"{(fmt.stdout + fmt.stderr)[-3000:]}")
    return fmt.stdout + fmt.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


_PR_SET_PDEATHSIG = 1
try:
    _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
except OSError:  # no glibc (macOS): the worker's stop path still stops the broker
    _LIBC = None


def _die_with_parent(parent: int) -> Callable[[], None] | None:
    """A preexec function: SIGTERM this child when the thread that started it ends (Linux)."""
    if _LIBC is None or not hasattr(_LIBC, "prctl"):
        return None

    def preexec() -> None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def spawn(cmd: list[str], log_path: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """Start the broker process: output appended to `log_path`, its own session, SIGTERM if we die."""
    with open(log_path, "ab") as logf:
        logf.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting Kafka\n".encode())
        logf.flush()
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                cwd=str(cwd), env=env, start_new_session=True, close_fds=True,
                                preexec_fn=_die_with_parent(os.getpid()))


def answers(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when the broker serves metadata (it has joined its own quorum and registered)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout_s * 1000),
                         "logger": _quiet_logger()})
    try:
        meta = admin.list_topics(timeout=timeout_s)
    except Exception:  # noqa: BLE001 - KafkaException while it starts
        return False
    return bool(meta.brokers)


def _quiet_logger():
    import logging

    quiet = logging.getLogger("blueflow.embedded.probe")
    quiet.setLevel(logging.CRITICAL)
    quiet.propagate = False
    return quiet


def wait_ready(proc: subprocess.Popen, bootstrap: str, port: int, log_path: Path,
               timeout_s: float = READY_TIMEOUT_S) -> float:
    """Seconds until the broker answered; BrokerError when it exited or did not answer in time."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if proc.poll() is not None:
            raise BrokerError(f"Kafka exited with status {proc.returncode} while starting; see {log_path}")
        if port_open(port) and answers(bootstrap):
            return time.monotonic() - t0
        time.sleep(0.5)
    raise BrokerError(f"Kafka did not answer at {bootstrap} within {timeout_s:.0f}s; see {log_path}")


def stop(proc: subprocess.Popen, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
    """SIGTERM (Kafka's controlled shutdown: logs flushed, clean-shutdown marker written), then SIGKILL after
    `timeout_s`. The exit status (None if it could not be collected)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
    return proc.poll()
