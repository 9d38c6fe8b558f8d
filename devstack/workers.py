"""Worker processes on the local stack: start, watch, stop — used by `blueflow-dev demo` and the tests.

Each worker is a real `blueflow worker` process with its own HTTP port, its settings in its environment
(`run_environment`: the stack's settings, as any deployment gives them); its counters are read from
`/service/info`. Workers of one run share a topic prefix and app id, so runs never see each other. Each started
worker leaves a record (URL, pid, app id, topic prefix) in `<devstack dir>/workers/`, removed when it is
stopped; `discover()` reads the live ones, so `blueflow-dev status` finds them (devstack/product.py).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from streams.embedded.locate import pid_alive

REPO_ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_environment(stack_env: dict[str, str], run_id: str, **overrides: str) -> dict[str, str]:
    """The environment of a worker of run `run_id`: the stack's settings plus an isolated prefix and app id."""
    env = dict(os.environ)
    env.update(stack_env)
    env.update({
        "BLUEFLOW_TOPIC_PREFIX": f"{run_id}.",
        "BLUEFLOW_APP_ID": run_id,
        "BLUEFLOW_POLL_INTERVAL": "2",
        "BLUEFLOW_METADATA_INTERVAL": "300",
        "BLUEFLOW_HEARTBEAT_INTERVAL": "10",
        "BLUEFLOW_PARTITIONS": "4",
        "KENTIK_PLAN_ID": "11467",
        "KENTIK_EXPORT_ID": "3302",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(overrides)
    return env


class WorkerProcess:
    """One `blueflow worker` subprocess with its log file and HTTP port."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, extra_args: tuple[str, ...] = ()):
        self.name = name
        self.port = free_port()
        self.env = dict(env, BLUEFLOW_HTTP_PORT=str(self.port))
        self.log_path = log_dir / f"{name}.log"
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.peak_rss_kb = 0  # VmHWM as last read: read again before every stop or kill

    def read_peak_rss(self) -> int:
        """The worker's peak resident memory so far in kB (Linux VmHWM), remembered after it exits."""
        if self.alive:
            self.peak_rss_kb = max(self.peak_rss_kb, vm_hwm_kb(self.proc.pid))
        return self.peak_rss_kb

    def start(self) -> "WorkerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "streams.ops.cli", "worker", *self.extra_args],
                                     env=self.env, cwd=str(REPO_ROOT), stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        self._record()
        return self

    @property
    def record_path(self) -> Path:
        from devstack.stack.env import state_dir

        pid = self.proc.pid if self.proc is not None else 0
        return state_dir() / "workers" / f"{self.env.get('BLUEFLOW_APP_ID', 'blueflow')}-{self.name}-{pid}.json"

    def _record(self) -> None:
        record = {"url": f"http://127.0.0.1:{self.port}", "pid": self.proc.pid, "name": self.name,
                  "app_id": self.env.get("BLUEFLOW_APP_ID", ""),
                  "topic_prefix": self.env.get("BLUEFLOW_TOPIC_PREFIX", ""), "started_at": time.time(),
                  "log": str(self.log_path)}
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        self.record_path.write_text(json.dumps(record) + "\n")

    def _forget(self) -> None:
        try:
            self.record_path.unlink()
        except FileNotFoundError:
            pass

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def info(self, timeout: float = 2.0) -> dict | None:
        try:
            reply = requests.get(f"http://127.0.0.1:{self.port}/service/info", timeout=timeout)
            return reply.json() if reply.status_code == 200 else None
        except (requests.RequestException, ValueError):
            return None

    def health(self, timeout: float = 2.0) -> int:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=timeout).status_code
        except requests.RequestException:
            return 0

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, wait, then SIGKILL. Returns the exit code."""
        if self.proc is None:
            return None
        self.read_peak_rss()
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._forget()
        return self.proc.poll()

    def kill(self) -> None:
        """SIGKILL the worker (crash test)."""
        if self.proc is not None and self.proc.poll() is None:
            self.read_peak_rss()
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self._forget()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def sum_counts(infos: list[dict | None]) -> dict[str, int]:
    """Counters added up over the workers that answered."""
    total: dict[str, int] = {}
    for info in infos:
        for key, value in ((info or {}).get("counts") or {}).items():
            total[key] = total.get(key, 0) + int(value)
    return total


def vm_hwm_kb(pid: int) -> int:
    """Peak resident set size of process `pid` in kB (VmHWM in /proc/<pid>/status); 0 if unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def wait_until(predicate, timeout_s: float, interval_s: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())


def discover(directory: Path | None = None, alive=pid_alive) -> list[dict]:
    """Records of the workers started on the local stack whose process still runs, newest first; records of
    dead processes (a crashed test, a SIGKILL) are removed."""
    from devstack.stack.env import state_dir

    directory = directory or state_dir() / "workers"
    found = []
    for path in sorted(directory.glob("*.json")) if directory.is_dir() else []:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if alive(int(record.get("pid") or 0)):
            found.append(record)
        else:
            path.unlink(missing_ok=True)
    return sorted(found, key=lambda r: (-float(r.get("started_at") or 0), r.get("name", "")))
