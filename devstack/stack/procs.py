"""The local stack's processes: each component a detached process group, recorded in `<state>/pids.json`
(pid, process group, port, log, start time, command line) under a file lock, so another process can stop it."""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from devstack.stack.env import REPO_ROOT, StackError, state_dir


def proc_start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 else None  # field 22 = starttime


def alive(pid: int, start_time: str | None = None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        if sys.platform.startswith("linux"):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    state = stat.rsplit(")", 1)[1].split()[0]
    if state in ("Z", "X"):
        return False
    return start_time is None or proc_start_time(pid) == start_time


def group_alive(pgid: int) -> bool:
    """True while a non-zombie process of the group exists."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def reap() -> None:
    """Collect exited children of this process (the stack's processes when up() ran in-process)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def spawn(name: str, cmd: list[str], *, env: dict[str, str] | None = None, port: int | None = None) -> dict[str, Any]:
    logs = state_dir() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{name}.log"
    with open(log_path, "ab") as logf:
        logf.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}: {' '.join(cmd)}\n".encode())
        logf.flush()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                cwd=str(REPO_ROOT), env=env, start_new_session=True, close_fds=True)
    return {"name": name, "pid": proc.pid, "pgid": proc.pid, "port": port, "log": str(log_path),
            "start_time": proc_start_time(proc.pid), "cmd": cmd}


def load_pids() -> dict[str, dict[str, Any]]:
    try:
        return json.loads((state_dir() / "pids.json").read_text())
    except (OSError, ValueError):
        return {}


def save_pids(pids: dict[str, dict[str, Any]]) -> None:
    state_dir().mkdir(parents=True, exist_ok=True)
    tmp = state_dir() / "pids.json.tmp"
    tmp.write_text(json.dumps(pids, indent=2) + "\n")
    tmp.replace(state_dir() / "pids.json")


@contextlib.contextmanager
def lock():
    d = state_dir()
    d.mkdir(parents=True, exist_ok=True)
    with open(d / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def log_tail(name: str, lines: int = 40) -> str:
    path = state_dir() / "logs" / f"{name}.log"
    try:
        data = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return f"--- last {min(lines, len(data))} lines of {path}\n" + "\n".join(data[-lines:])


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait(what: str, check: Callable[[], Any], deadline: float, entry: dict[str, Any], interval: float = 0.2) -> Any:
    """`check()`'s first true result before `deadline`; StackError with the log's tail if the process exits or
    time runs out."""
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if not alive(entry["pid"]):
            raise StackError(f"{what} exited during startup\n{log_tail(entry['name'])}")
        try:
            result = check()
            if result is not None and result is not False:
                return result
        except Exception as exc:  # noqa: BLE001 - startup probes fail in many ways until the server is ready
            last = exc
        time.sleep(interval)
    raise StackError(f"{what} did not become healthy in time (last error: {last!r})\n{log_tail(entry['name'])}")


def stop_group(pgid: int, sig: int, timeout: float) -> None:
    """Signal a process group and wait for it to go (SIGKILL after `timeout`)."""
    import signal

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    deadline = time.monotonic() + timeout
    while group_alive(pgid) and time.monotonic() < deadline:
        reap()
        time.sleep(0.1)
    if group_alive(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        while group_alive(pgid):
            reap()
            time.sleep(0.1)
    reap()
