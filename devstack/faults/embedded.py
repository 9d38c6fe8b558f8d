"""Fault scenarios of the embedded Kafka (issue 23): one worker with no Kafka configured, its broker in a data
directory of the run, faults that hit the broker and its data.

- embedded_kill9: kill -9 the embedded broker mid-run (twice); the worker's supervisor starts it again.
- embedded_crash: kill -9 the worker and its broker together (twice), start the worker again on the same data dir.
- embedded_empty: kill -9 both, delete the data dir, start the worker again on an empty one.

Each is judged as every scenario (verdict.py `judge`: 0 lost, 0 early deletes from the referee and the
COS proxy's request log) while the worker still runs, so the ledger and dead letters are read from its
broker. Duplicates are expected and counted: chunks whose Kentik POST succeeded but whose Kafka offsets (or,
with an empty data dir, everything Kafka knew) were not yet committed are sent again. The broker's peak RSS
(VmHWM) is reported beside the worker's.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Callable

from devstack.faults import phase
from devstack.faults.run import prepare, progress_started
from devstack.faults.verdict import judge, peak_rss_mb
from devstack.workers import vm_hwm_kb, wait_until

SCENARIOS = ("embedded_kill9", "embedded_crash", "embedded_empty")


def _record(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / "embedded.json").read_text())
    except (OSError, ValueError):
        return {}


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class EmbeddedRun:
    """The scenario's one worker and the broker it runs, observed through the data dir's runtime file."""

    def __init__(self, run, data_dir: Path):
        self.run, self.data_dir = run, data_dir
        self.broker_peak_kb = 0

    def sample_broker(self) -> dict:
        record = _record(self.data_dir)
        if record.get("broker_pid"):
            self.broker_peak_kb = max(self.broker_peak_kb, vm_hwm_kb(int(record["broker_pid"])))
        return record

    def start(self, wait_s: float = 120) -> dict:
        """Start the worker; once its broker answers, point the judge's Kafka reads at it."""
        (self.data_dir / "embedded.json").unlink(missing_ok=True)
        worker = self.run.start("w1")
        if not wait_until(lambda: _record(self.data_dir).get("worker_pid") == worker.proc.pid, wait_s, 0.5):
            raise RuntimeError(f"the worker's embedded Kafka did not come up:\n{worker.log_tail()}")
        record = _record(self.data_dir)
        self.run.env = dict(self.run.env, BLUEFLOW_KAFKA_BOOTSTRAP=record["bootstrap"])
        return record

    def kill_both(self) -> None:
        record = self.sample_broker()
        self.run.workers["w1"].kill()
        _kill(int(record.get("broker_pid") or 0))


def fault_kill9(er: EmbeddedRun, rng: random.Random, quick: bool) -> float:
    kills = []
    for _ in range(2):
        time.sleep(rng.uniform(1.5, 4.0))
        phase.feed(er.run, 4, seed=rng.randrange(1 << 30))  # fresh work in flight at every kill
        record = er.sample_broker()
        old = int(record["broker_pid"])
        er.run.mark("broker killed")
        _kill(old)
        came_back = wait_until(lambda o=old: int(er.sample_broker().get("broker_pid") or old) != o, 90, 0.5)
        kills.append({"broker_pid": old, "restarted": came_back})
    er.run.notes["broker_kills"] = kills
    if not all(k["restarted"] for k in kills):
        er.run.notes.setdefault("problems", []).append(f"the worker did not restart its broker: {kills}")
    if not er.run.workers["w1"].alive:
        er.run.notes.setdefault("problems", []).append("the worker died with its broker")
    return time.time()


def fault_crash(er: EmbeddedRun, rng: random.Random, quick: bool) -> float:
    for _ in range(2):
        time.sleep(rng.uniform(1.5, 4.0))
        phase.feed(er.run, 4, seed=rng.randrange(1 << 30))
        er.run.mark("worker and broker killed")
        er.kill_both()
        time.sleep(rng.uniform(0.5, 2.0))
        er.start()
    er.run.notes["restarts_on_same_data_dir"] = 2
    return time.time()


def fault_empty(er: EmbeddedRun, rng: random.Random, quick: bool) -> float:
    time.sleep(rng.uniform(1.5, 4.0))
    phase.feed(er.run, 4, seed=rng.randrange(1 << 30))
    er.run.mark("worker and broker killed, data dir emptied")
    er.kill_both()
    shutil.rmtree(er.data_dir)
    er.run.notes["data_dir_emptied"] = True
    er.start()
    return time.time()


ACTIONS: dict[str, Callable] = {"embedded_kill9": fault_kill9, "embedded_crash": fault_crash,
                                "embedded_empty": fault_empty}


def run_embedded(name: str, env: dict[str, str], objects: int, quick: bool, seed: int,
                 log: Callable[[str], None] = print) -> dict:
    """One embedded-Kafka scenario: prepare the bucket, start the worker, fault, wait drained, judge, stop."""
    run = prepare(env, objects, seed=seed, bad_kinds=["not_gzip", "bad_ip"], log=log)
    data_dir = run.log_dir / "data"
    # no Kafka configured: the run's environment has an empty bootstrap in place of the local stack's
    run.worker_overrides = {"BLUEFLOW_KAFKA_BOOTSTRAP": "", "BLUEFLOW_DATA_DIR": str(data_dir),
                            "BLUEFLOW_UNHEALTHY_AFTER": "60"}
    er = EmbeddedRun(run, data_dir)
    try:
        er.start()
        if not progress_started(run):
            run.notes.setdefault("problems", []).append("no object finished within 120 s of the start")
        run.notes["good_left_at_fault_start"] = len(run.bucket_keys() - run.bad_keys)
        fault_end = ACTIONS[name](er, random.Random(seed), quick)
        drained = wait_until(run.drained, 300 if quick else 900, 2.0)
        drained_at = time.time() if drained else None
        er.sample_broker()
        entry = judge(run, name, fault_end, drained_at)  # while the broker runs: ledger and dead letters
        entry["details"]["broker_peak_rss_mb"] = round(er.broker_peak_kb / 1024) if er.broker_peak_kb else None
    except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
        entry = {"scenario": name, "owed": None, "accepted": None, "pending": None, "lost": None,
                 "duplicates": None, "early_deletes": None, "recovery_s": None, "ok": False,
                 "peak_rss_mb": peak_rss_mb(run), "problems": [f"{type(exc).__name__}: {exc}"],
                 "details": {"run_id": run.run_id}}
    finally:
        stop = {w.name: w.stop(45) for w in run.live()}
        leftover = _record(data_dir)
    entry["details"]["stop_exit"] = stop
    if leftover:  # a clean stop removes the runtime file after stopping the broker
        entry["problems"].append(f"runtime file left after the stop: {leftover}")
        entry["ok"] = False
    return entry
