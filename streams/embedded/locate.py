"""Where the embedded broker lives: the data directory, the worker's lock on it, and the runtime file through
which `blueflow status|replay|deadletter|topics` on the same host find the broker of a running worker.

`<data_dir>/embedded.json` holds the worker's pid, the broker's pid and its bootstrap address; it is written
once the broker answers and removed when the worker stops (a stale one — the worker was killed — is told
apart by the pid no longer running).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Callable, Mapping

EMBEDDED = "embedded"
RUNTIME_FILE = "embedded.json"
LOCK_FILE = "embedded.lock"


class DataDirError(RuntimeError):
    """The data directory cannot be used (not writable, or held by another worker): one line for the operator."""


def is_embedded(bootstrap: str) -> bool:
    """No Kafka bootstrap configured (the default, or `embedded` written out)."""
    return bootstrap.strip().lower() in ("", EMBEDDED)


def protocol_conflict(bootstrap: str, security_protocol: str) -> str | None:
    """Why a security protocol other than PLAINTEXT cannot go with no bootstrap (a cluster's settings with its
    address forgotten: running an embedded Kafka instead would surprise), or None."""
    if is_embedded(bootstrap) and security_protocol.upper() != "PLAINTEXT":
        return (f"--kafka_security_protocol={security_protocol} needs --kafka_bootstrap (BLUEFLOW_KAFKA_BOOTSTRAP): "
                f"the cluster's brokers; without both, the worker runs an embedded Kafka (PLAINTEXT on 127.0.0.1)")
    return None


def default_data_dir(environ: Mapping[str, str], home: Path) -> Path:
    """The per-user state directory: $XDG_STATE_HOME/blueflow, else ~/.local/state/blueflow (the image sets
    BLUEFLOW_DATA_DIR=/var/lib/blueflow, a volume)."""
    state = environ.get("XDG_STATE_HOME", "").strip()
    return (Path(state) if state else home / ".local" / "state") / "blueflow"


def data_dir_of(configured: str, environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if configured.strip():
        return Path(configured).expanduser()
    return default_data_dir(environ, Path.home())


def check_writable(data_dir: Path) -> None:
    """Create `data_dir` if needed and write a probe file in it; DataDirError(one line) when that fails."""
    probe = data_dir / f".write-probe-{os.getpid()}"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as exc:
        raise DataDirError(f"the embedded Kafka's data directory {data_dir} cannot be written "
                           f"({exc.strerror or exc}); give a writable --data_dir (BLUEFLOW_DATA_DIR), e.g. a "
                           f"volume mounted at /var/lib/blueflow, or --kafka_bootstrap for a Kafka cluster") from None


def hold_lock(data_dir: Path) -> int:
    """Lock the data directory for this worker (released when the process ends, even by SIGKILL); the open
    file descriptor. DataDirError when another running worker holds it."""
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        holder = read_runtime(data_dir) or {}
        raise DataDirError(f"the data directory {data_dir} is in use by another blueflow worker "
                           f"(pid {holder.get('worker_pid', '?')}); give this one another --data_dir, or "
                           f"--kafka_bootstrap={holder.get('bootstrap', '<its broker>')} to share that worker's "
                           f"Kafka") from None
    return fd


def write_runtime(data_dir: Path, record: dict) -> None:
    tmp = data_dir / f".{RUNTIME_FILE}.tmp"
    tmp.write_text(json.dumps(record) + "\n")
    tmp.replace(data_dir / RUNTIME_FILE)


def remove_runtime(data_dir: Path, worker_pid: int) -> None:
    record = read_runtime(data_dir)
    if record is not None and record.get("worker_pid") == worker_pid:
        (data_dir / RUNTIME_FILE).unlink(missing_ok=True)


def read_runtime(data_dir: Path) -> dict | None:
    try:
        record = json.loads((data_dir / RUNTIME_FILE).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (one of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_bootstrap(record: dict | None, data_dir: Path,
                      alive: Callable[[int], bool] = pid_alive) -> tuple[str | None, str]:
    """(bootstrap of the running embedded broker, None) or (None, why there is none, in operator words)."""
    how = (f"start `blueflow worker` (with --data_dir={data_dir} if it runs with one), or give "
           f"--kafka_bootstrap / BLUEFLOW_KAFKA_BOOTSTRAP for a Kafka cluster")
    if record is None:
        return None, f"no embedded Kafka is running with data in {data_dir}; {how}"
    if not alive(int(record.get("worker_pid") or 0)) or not alive(int(record.get("broker_pid") or 0)):
        return None, (f"the worker that ran the embedded Kafka in {data_dir} (pid {record.get('worker_pid')}) "
                      f"is no longer running; {how}")
    return str(record["bootstrap"]), ""
