"""The embedded Kafka's data-safety scenarios (devstack/faults/embedded.py), reduced for CI: kill -9 of the
broker mid-run, kill -9 of the worker and its broker together then a restart on the same data, and a restart on
an empty data directory — each with nothing lost and nothing deleted early; duplicates bounded by the work in
flight at the crash."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.stack

SCENARIOS = ("embedded_kill9", "embedded_crash", "embedded_empty")


@pytest.fixture(scope="module")
def report(stack, tmp_path_factory):
    from devstack.faults import cli as faults

    path = tmp_path_factory.mktemp("faults") / "faults-report.json"
    faults.main(["--quick", "--objects", "80", "--scenarios", ",".join(SCENARIOS), "--report", str(path)])
    return {e["scenario"]: e for e in json.loads(path.read_text())}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_nothing_lost_nothing_deleted_early(report, scenario):
    entry = report[scenario]
    assert entry["problems"] == [], entry
    assert entry["owed"] > 500 and entry["lost"] == 0 and entry["early_deletes"] == 0, entry
    assert entry["accepted"] == entry["owed"] + entry["duplicates"], entry
    assert entry["duplicates"] < entry["owed"] * 0.5, entry  # only what was in flight is sent again
    details = entry["details"]
    assert details["drained"] and details["good_left_in_bucket"] == 0, entry
    assert details["bad_left_in_bucket"] == details["bad_objects"] == details["deadlettered"], entry
    assert details["stop_exit"] == {"w1": 0}, entry  # SIGTERM: the worker and its broker stopped cleanly
    assert 100 < details["broker_peak_rss_mb"] < 512, entry  # heap 256 MB


def test_the_broker_was_restarted_by_its_worker(report):
    kills = report["embedded_kill9"]["details"]["broker_kills"]
    assert len(kills) == 2 and all(k["restarted"] for k in kills)
    assert report["embedded_empty"]["details"]["data_dir_emptied"] is True
