"""The `kentikstall` scenario (devstack/faults/kentik.py), reduced for CI: Kentik redirects every POST for
3 × --unhealthy_after while fresh objects wait. Readiness (/readyz) turns red naming Kentik within
--unhealthy_after + one observer poll + one sample; liveness (/healthz) stays 200 at every sample, no worker
restarts, readiness is green again afterwards, and nothing is lost or deleted early."""
from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def entry(stack, tmp_path_factory):
    from devstack.faults import cli as faults

    path = tmp_path_factory.mktemp("faults") / "faults-report.json"
    faults.main(["--quick", "--objects", "40", "--scenarios", "kentikstall", "--report", str(path)])
    (only,) = json.loads(path.read_text())
    return only


def test_a_kentik_stall_is_not_ready_but_alive_and_loses_nothing(entry):
    assert entry["problems"] == [], entry
    assert entry["owed"] > 0 and entry["lost"] == 0 and entry["early_deletes"] == 0, entry
    stall = entry["details"]["kentikstall"]
    assert stall["redirects_answered"] > 0 and stall["stall_s"] >= 3 * stall["unhealthy_after_s"], stall
    assert stall["readiness_red_after_s"] is not None and stall["readiness_red_after_s"] <= stall["bound_s"], stall
    assert any("Kentik" in p for p in stall["readiness_problem"]), stall
    assert set(stall["liveness"]) == {"200"} and stall["restarted"] == [] and stall["ready_again"], stall
    assert entry["details"]["fault_met"]["events"][0]["pending"] > 0, entry
