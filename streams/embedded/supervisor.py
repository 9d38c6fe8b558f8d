"""The worker's embedded Kafka: started before the pipeline, watched while it runs, stopped after it.

`start(data_dir, log)` checks the data directory (writable, not held by another worker), finds Java
(streams/embedded/java.py) and the locked Kafka jars (streams/embedded/jars.py: the image has them; a Python
install fetches them once, by the hashed lock, or ahead with `blueflow embedded fetch`), formats the storage
on first use, starts the broker on two free loopback ports and waits until it answers. A thread then waits
on the process: if the broker dies, it is started again on the same ports after a back-off, at most
`RestartPolicy.max_restarts` times within `window_s`; past that the worker is told to stop with a non-zero
status (`on_give_up`), so that a container or systemd restarts the whole. Nothing here runs on the event loop:
the start happens before the Faust worker runs, the watching in its own thread.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from streams.embedded import broker, locate

log = logging.getLogger("blueflow.embedded")
KAFKA_LOG = "kafka.log"
KAFKA_LOG_KEEP_BYTES = 20 * 1024 * 1024  # the broker's log (WARN and up) is started afresh past this size


class SetupError(RuntimeError):
    """Java or the Kafka jars are missing (an installation problem): one line saying how to fix it."""


@dataclass
class RestartPolicy:
    """Restart a dead broker after a growing delay, at most `max_restarts` times within `window_s` seconds."""

    max_restarts: int = 5
    window_s: float = 600.0
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0
    deaths: list[float] = field(default_factory=list)

    def decide(self, now: float) -> float | None:
        """Record a death at `now`: the delay before the restart, or None to give up."""
        self.deaths = [t for t in self.deaths if now - t < self.window_s] + [now]
        if len(self.deaths) > self.max_restarts:
            return None
        return min(self.max_delay_s, self.first_delay_s * 2 ** (len(self.deaths) - 1))


def _resolve_runtime(log_line: Callable[[str], None]) -> tuple[str, Path, str]:
    """(java, Kafka jars directory, Kafka version); SetupError naming the fix."""
    from streams.embedded import jars
    from streams.embedded.java import JavaError, find_java

    try:
        java = find_java()
    except JavaError as exc:
        raise SetupError(f"the embedded Kafka needs Java: {exc}") from None
    try:
        dirs = jars.ensure(log=log_line, components=("kafka",))
        version = jars.versions()["kafka"]
    except jars.JarError as exc:
        raise SetupError(f"the embedded Kafka's jars: {exc}") from None
    return java.path, dirs["kafka"], version


class EmbeddedKafka:
    """The worker's broker: its process, the thread watching it, and the runtime file naming it."""

    def __init__(self, data_dir: Path, java: str, jars_dir: Path, version: str, lock_fd: int,
                 policy: RestartPolicy | None = None):
        self.data_dir, self.java, self.jars_dir, self.version = data_dir, java, jars_dir, version
        self.lock_fd = lock_fd
        self.policy = policy or RestartPolicy()
        self.broker_port, self.controller_port = broker.free_port(), broker.free_port()
        self.bootstrap = f"127.0.0.1:{self.broker_port}"
        self.log_path = data_dir / KAFKA_LOG
        self.props = data_dir / "kafka.properties"
        self.proc = None
        self.failed = False  # gave up restarting: the worker must exit non-zero
        self.restarts = 0
        self._stopping = threading.Event()
        self.on_give_up: Callable[[], None] = lambda: None

    def _jvm(self) -> list[str]:
        return broker.jvm_command(self.java, self.jars_dir, broker.EMBEDDED_JVM, self.data_dir, "WARN")

    def _launch(self) -> float:
        """Start the process and wait until it answers; the seconds it took."""
        self.props.write_text(broker.server_properties(self.broker_port, self.controller_port,
                                                       self.data_dir / "kafka"))
        self._trim_log()
        env = broker.java_env(self.java)
        broker.format_storage(self._jvm(), self.props, self.data_dir / "kafka", env, self.data_dir)
        self.proc = broker.spawn(self._jvm() + ["kafka.Kafka", str(self.props)], self.log_path, env, self.data_dir)
        return broker.wait_ready(self.proc, self.bootstrap, self.broker_port, self.log_path)

    def _trim_log(self) -> None:
        """Keep the broker's log bounded: past KAFKA_LOG_KEEP_BYTES it becomes kafka.log.1 (one generation)."""
        try:
            if self.log_path.stat().st_size > KAFKA_LOG_KEEP_BYTES:
                self.log_path.replace(self.log_path.with_suffix(".log.1"))
        except OSError:
            pass

    def start(self) -> float:
        took = self._launch()
        locate.write_runtime(self.data_dir, {
            "worker_pid": os.getpid(), "broker_pid": self.proc.pid, "bootstrap": self.bootstrap,
            "kafka_version": self.version, "data_dir": str(self.data_dir), "started_at": time.time()})
        threading.Thread(target=self._watch, name="blueflow-embedded-kafka", daemon=True).start()
        return took

    def _watch(self) -> None:
        """Wait on the broker; restart it when it dies (bounded), or give up and tell the worker."""
        while not self._stopping.is_set():
            status = self.proc.wait()
            if self._stopping.is_set():
                return
            delay = self.policy.decide(time.monotonic())
            if delay is None:
                log.error("the embedded Kafka exited (status %s) %d times within %.0fs; giving up: the worker stops "
                          "with status 1 (see %s)", status, len(self.policy.deaths), self.policy.window_s,
                          self.log_path)
                self.failed = True
                self.on_give_up()
                return
            log.warning("the embedded Kafka exited (status %s); starting it again in %.0fs (see %s)",
                        status, delay, self.log_path)
            if self._stopping.wait(delay):
                return
            try:
                took = self._launch()
                self.restarts += 1
                self._update_runtime()
                log.warning("the embedded Kafka is back at %s after %.1fs", self.bootstrap, took)
            except (broker.BrokerError, OSError, Exception) as exc:  # noqa: BLE001 - the thread must go on
                log.warning("the embedded Kafka did not come back: %s", exc)
                if self.proc is not None and self.proc.poll() is None:
                    broker.stop(self.proc)  # started but never answered: the next round decides

    def _update_runtime(self) -> None:
        record = locate.read_runtime(self.data_dir) or {}
        record.update(broker_pid=self.proc.pid, restarts=self.restarts)
        locate.write_runtime(self.data_dir, record)

    def stop(self) -> int | None:
        """Stop the broker cleanly (bounded), remove the runtime file; the broker's exit status."""
        self._stopping.set()
        status = broker.stop(self.proc) if self.proc is not None else None
        locate.remove_runtime(self.data_dir, os.getpid())
        return status


def start(data_dir: Path, log_line: Callable[[str], None] = log.info) -> tuple[EmbeddedKafka, float]:
    """The running embedded broker of this worker and the seconds its start took. Raises
    locate.DataDirError (data directory unusable), SetupError (no Java or jars), broker.BrokerError."""
    locate.check_writable(data_dir)
    lock_fd = locate.hold_lock(data_dir)
    java, jars_dir, version = _resolve_runtime(log_line)
    kafka = EmbeddedKafka(data_dir, java, jars_dir, version, lock_fd)
    return kafka, kafka.start()
