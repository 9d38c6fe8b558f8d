"""The local stack: real Kafka (KRaft) and S3Proxy servers plus the project's stand-ins, on loopback.

`up()` fetches the Apache Kafka and S3Proxy jars once by the lock file (streams/embedded/jars.py; cached under
~/.cache/blueflow/jars or $BLUEFLOW_CACHE), starts every component as a detached process group
(devstack/stack/components.py, procs.py), checks each one for real (checks.py) and writes the connection
settings to `.devstack/env` (shell KEY=value) and `.devstack/env.json` (env.py: where the state lives, ports).
`down()` stops every process group it started; `status()` reports them; `ensure_up()` is the idempotent
entry point for tests and the demo; `stop_component` / `start_component` serve the fault suite.

CLI (devstack/stack/cli.py): python -m devstack.stack up [--keep-data] | down | status | env
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from typing import Any, Callable

from devstack.stack import components, kafka_secure
from devstack.stack.checks import kafka_version_from_log
from devstack.stack.env import StackError, forget_env, ports, read_env, settings, state_dir, write_env
from devstack.stack.procs import (alive, group_alive, load_pids, lock, port_open, reap, save_pids, spawn, stop_group,
                                  wait)


def up(keep_data: bool = False, log: Callable[[str], None] = print) -> dict[str, str]:
    """Start the whole stack (stopping a previous one first) and return its settings."""
    with lock():
        return _up_locked(keep_data, log)


def _fresh_state(keep_data: bool) -> None:
    d = state_dir()
    if not keep_data:
        shutil.rmtree(d / "kafka-data", ignore_errors=True)
        shutil.rmtree(d / "s3data", ignore_errors=True)
    shutil.rmtree(d / "logs", ignore_errors=True)
    for sub in ("kafka-data", "s3data", "logs", "conf"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    forget_env()


def _free_ports(p: dict[str, int]) -> None:
    busy_until = time.monotonic() + 5  # a just-stopped stack may take a moment to release its ports
    while (busy := [f"{n}:{port}" for n, port in p.items() if port_open(port)]) and time.monotonic() < busy_until:
        time.sleep(0.2)
    if busy:
        raise StackError(f"ports already in use by something else: {', '.join(busy)} "
                         f"(set BLUEFLOW_DEVSTACK_PORT_BASE to move the stack)")


def _up_locked(keep_data: bool, log: Callable[[str], None]) -> dict[str, str]:
    t0 = time.monotonic()
    _down_locked(log=lambda _m: None)
    d, p = state_dir(), ports()
    _free_ports(p)
    chosen = components.find_java()
    log(f"devstack: {chosen.describe()}")
    jar_dirs = components.ensure_jars(log)
    vers = components.versions()
    _fresh_state(keep_data)
    pids: dict[str, dict[str, Any]] = {}
    values = settings(p)
    try:
        pids.update(components.start_s3proxies(chosen.path, jar_dirs["s3proxy"], d, p))
        save_pids(pids)
        pids.update(components.start_standins(p, values, log))
        save_pids(pids)
        pids["kafka"] = components.start_kafka(chosen.path, jar_dirs["kafka"], d, p, values, log)
        save_pids(pids)
        components.check_all(pids, p, values)
    except BaseException:
        save_pids(pids)
        _down_locked(log=lambda _m: None)
        raise
    kafka_version = kafka_version_from_log(pids["kafka"]["log"]) or vers["kafka"]
    values.update({
        "BLUEFLOW_DEVSTACK_KAFKA_VERSION": kafka_version,
        "BLUEFLOW_DEVSTACK_S3PROXY_VERSION": vers["s3proxy"],
        "BLUEFLOW_DEVSTACK_JAVA": chosen.describe(),
        "BLUEFLOW_DEVSTACK_COMPONENTS": ",".join(sorted(pids)),
    })
    write_env(values)
    log(f"devstack up in {time.monotonic() - t0:.1f}s: Kafka {kafka_version}, S3Proxy {vers['s3proxy']}, "
        f"Java {chosen.major} ({chosen.source}); settings in {d / 'env'}")
    return values


def down(log: Callable[[str], None] = print) -> list[str]:
    """Stop every process group the stack started; returns the names stopped. Raises if one survives."""
    with lock():
        return _down_locked(log)


def _signal_all(live: dict[str, dict], sig: int, seconds: float) -> dict[str, dict]:
    """Signal every group of `live`; those still alive after `seconds`."""
    for e in live.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(e["pgid"], sig)
    deadline = time.monotonic() + seconds
    while live and time.monotonic() < deadline:
        reap()
        live = {n: e for n, e in live.items() if group_alive(e["pgid"])}
        if live:
            time.sleep(0.05)
    return live


def _down_locked(log: Callable[[str], None]) -> list[str]:
    pids = load_pids()
    live = {n: e for n, e in pids.items() if alive(e["pid"], e.get("start_time")) or group_alive(e["pgid"])}
    live = _signal_all(live, signal.SIGTERM, 15)
    for name in live:
        log(f"  {name} did not stop on SIGTERM; killing")
    live = _signal_all(live, signal.SIGKILL, 5)
    stopped = [n for n in pids if n not in live]
    (state_dir() / "pids.json").unlink(missing_ok=True)
    forget_env()
    if live:
        raise StackError(f"processes survived SIGKILL: {sorted(live)}")
    if stopped:
        log(f"devstack down: stopped {', '.join(stopped)}")
    return stopped


def status() -> list[dict[str, Any]]:
    """One row per started component: name, pid, port, alive, listening."""
    rows = []
    for name, e in load_pids().items():
        rows.append({"name": name, "pid": e["pid"], "port": e.get("port"),
                     "alive": alive(e["pid"], e.get("start_time")),
                     "listening": bool(e.get("port")) and port_open(e["port"]), "log": e.get("log")})
    return rows


def is_up() -> bool:
    """True if a stack started by up() is running completely (every process alive and listening)."""
    rows = status()
    env = read_env()
    if not rows or not env:
        return False
    expected = set(env.get("BLUEFLOW_DEVSTACK_COMPONENTS", "").split(","))
    return expected <= {r["name"] for r in rows} and all(r["alive"] and r["listening"] for r in rows)


def ensure_up(keep_data: bool = False, log: Callable[[str], None] = print) -> dict[str, str]:
    """Return the settings of the running stack, starting it first if it is not (fully) up."""
    with lock():
        if is_up() and kafka_secure.matches(read_env()):
            return read_env()
        return _up_locked(keep_data=keep_data, log=log)


# ---------------------------------------------------------------- one component (fault tests)

def _entry(pids: dict[str, dict], name: str) -> dict[str, Any]:
    if name not in pids:
        raise StackError(f"no component {name!r} (have {sorted(pids)})")
    return pids[name]


def stop_component(name: str, *, kill: bool = False, timeout: float = 30.0) -> bool:
    """Stop one running component (e.g. 'kafka', 's3proxy', 'kentik'), keeping its data and its entry in
    pids.json so `start_component` can start it again. SIGTERM (or SIGKILL with `kill`), then wait.
    Returns True if it was running."""
    with lock():
        e = _entry(load_pids(), name)
        if not group_alive(e["pgid"]):
            return False
        stop_group(e["pgid"], signal.SIGKILL if kill else signal.SIGTERM, timeout)
        return True


def start_component(name: str, *, cmd: list[str] | None = None,
                    timeout: float = components.START_TIMEOUT) -> dict[str, Any]:
    """Start one stopped component again with its recorded command line (or `cmd`, which is then recorded)
    and wait until its port answers. Kafka keeps its formatted data directory."""
    with lock():
        pids = load_pids()
        old = _entry(pids, name)
        if group_alive(old["pgid"]):
            raise StackError(f"{name} is still running (pid {old['pid']}); stop_component first")
        command = list(cmd or old["cmd"])
        entry = spawn(name, command, env=components.component_env(command), port=old.get("port"))
        pids[name] = entry
        save_pids(pids)
    port = entry.get("port")
    if port:
        wait(name, lambda: port_open(port), time.monotonic() + timeout, entry)
    return entry


def component_cmd(name: str) -> list[str]:
    """The recorded command line of a component."""
    return list(load_pids()[name]["cmd"])
