"""devstack/faults/verdict.py and the workers' peak RSS: the fault suite's table has a peak RSS column, read
from each worker's VmHWM before it stops."""
from __future__ import annotations

import subprocess
import sys

from devstack.faults.verdict import COLUMNS, peak_rss_mb, table
from devstack.workers import vm_hwm_kb


class _Worker:
    def __init__(self, kb: int):
        self.kb = kb

    def read_peak_rss(self) -> int:
        return self.kb


class _Run:
    def __init__(self, *kbs: int):
        self.workers = [_Worker(kb) for kb in kbs]

    def all_workers(self):
        return self.workers


def test_peak_rss_is_the_largest_of_the_scenarios_workers_in_mb():
    assert peak_rss_mb(_Run(150 * 1024, 310 * 1024 + 400, 90 * 1024)) == 310
    assert peak_rss_mb(_Run(0, 0)) is None and peak_rss_mb(_Run()) is None


def test_table_has_a_row_per_scenario_with_peak_rss_and_verdict():
    met = {"events": [{"fault": "kill -9 w1", "pending": 7}, {"fault": "kill -9 w2", "pending": 4}],
           "faults_applied": None}
    report = [{"scenario": "kill9", "owed": 10, "accepted": 10, "pending": 0, "lost": 0, "duplicates": 2,
               "early_deletes": 0, "recovery_s": 3.5, "peak_rss_mb": 180, "ok": True, "details": {"fault_met": met}},
              {"scenario": "huge", "owed": None, "peak_rss_mb": 410, "ok": False, "details": {}},
              {"scenario": "delete403", "ok": True, "details": {"fault_met": {
                  "events": [{"fault": "COS refuses deletes", "pending": 30}], "faults_applied": 3}}}]
    lines = table(report).splitlines()
    assert lines[0].split("|")[1:-1] == [f" {c} " for c in COLUMNS] and "peak_rss_mb" in COLUMNS
    assert lines[2] == "| kill9 | 10 | 10 | 0 | 0 | 2 | 0 | 3.5 | 180 | ≥4 objects at each of 2 events | ok |"
    assert lines[3] == "| huge | - | - | - | - | - | - | - | 410 | - | FAILED |"
    assert lines[4].endswith("| 30 objects, 3 faults applied | ok |")


def test_vm_hwm_reads_a_live_process_and_grows_with_its_memory():
    child = subprocess.Popen([sys.executable, "-c", "import sys; b = bytearray(64 << 20); b[::4096] = b'x' * "
                              "(len(b) // 4096); print('ready', flush=True); sys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert vm_hwm_kb(child.pid) > 64 * 1024
    finally:
        child.communicate("")
    assert vm_hwm_kb(child.pid) == 0  # gone: 0, never an error
