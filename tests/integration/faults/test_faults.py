"""The fault suite, reduced for CI: kill -9, Kentik faults and 401, S3Proxy outage and COS faults, bad input,
secrets (at info and at debug level), control-character keys, COS refusing deletes, objects overwritten in
flight, a redirecting Kentik, undecodable 200 answers, two sources with one's COS failing; each must end with
nothing lost and nothing deleted early, its fault having met work in flight (devstack/faults/ does the work).

One module fixture runs `devstack.faults.cli.main` once with --quick on a small bucket and the tests read its
report; a failing scenario shows its details (run id, problems) in the assertion message.
"""
from __future__ import annotations

import json

import pytest

# the module fixture runs 12 scenarios: 9.5 min on a loaded 2-core machine, over pytest-timeout's default 600 s
pytestmark = [pytest.mark.stack, pytest.mark.timeout(1500)]

SCENARIOS = ("kill9", "kentik", "s3proxy", "badinput", "secrets", "secrets_debug", "ctrlkeys", "delete403",
             "overwrite", "redirect", "badbody", "sources")
# Every scenario meets work in flight by construction (devstack/faults/phase.py): it writes fresh objects for
# its fault phase (or holds them: COS refusing deletes), and a fault that met no pending object, or injected
# faults never applied, fail the scenario as "not exercised". `sources` is a run of its own (two sources).
BUCKET_SCENARIOS = tuple(s for s in SCENARIOS if s != "sources")


@pytest.fixture(scope="module")
def report(stack, tmp_path_factory):
    from devstack.faults import cli as faults

    path = tmp_path_factory.mktemp("faults") / "faults-report.json"
    faults.main(["--quick", "--objects", "80", "--scenarios", ",".join(SCENARIOS), "--report", str(path)])
    entries = json.loads(path.read_text())
    return {e["scenario"]: e for e in entries}


def test_the_report_has_one_entry_per_scenario_with_the_agreed_keys(report):
    assert set(report) == set(SCENARIOS)
    for entry in report.values():
        assert {"scenario", "owed", "accepted", "lost", "duplicates", "early_deletes", "recovery_s",
                "peak_rss_mb", "details"} <= set(entry)
        assert entry["peak_rss_mb"] is None or 50 < entry["peak_rss_mb"] < 1024  # a worker's VmHWM, in MB


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_fault_met_objects_in_flight(report, scenario):
    met = report[scenario]["details"]["fault_met"]
    assert met["events"] and all(e["pending"] > 0 for e in met["events"]), met
    assert met["faults_applied"] is None or met["faults_applied"] > 0, met


@pytest.mark.parametrize("scenario", BUCKET_SCENARIOS)
def test_nothing_lost_nothing_deleted_early(report, scenario):
    entry = report[scenario]
    assert entry["problems"] == [], entry
    assert entry["owed"] > 500, entry
    assert entry["lost"] == 0 and entry["early_deletes"] == 0, entry
    details = entry["details"]
    # `unexpected`: flows of first versions the overwrite scenario replaced (read or not: neither owed nor lost)
    assert entry["accepted"] == entry["owed"] + entry["duplicates"] + details["unexpected"], entry
    assert details["unexpected"] == 0 or scenario == "overwrite", entry
    assert details["drained"] and details["good_left_in_bucket"] == 0, entry
    assert details["bad_left_in_bucket"] == details["bad_objects"] == details["deadlettered"], entry
    assert (details["good_deleted_seen"] + details["bad_objects"] >= details["objects"] - 1
            or scenario.startswith("secrets"))


def test_crashes_repeat_at_most_the_chunks_in_flight(report):
    entry = report["kill9"]
    assert len(entry["details"]["kills"]) >= 5
    assert entry["duplicates"] < entry["owed"] * 0.2, entry


def test_kentik_401_turns_workers_unhealthy_and_nothing_is_accepted(report):
    auth = report["kentik"]["details"]["auth_phase"]
    assert auth["unhealthy_seen"] and auth["accepted_during_401"] == 0
    assert any("Kentik rejected the credentials" in p for p in auth["problems"])
    assert all(e["exit"] == 0 for e in report["kentik"]["details"]["sigterm_before_401"])


def test_workers_stop_on_sigterm_even_while_kentik_rejects_the_credentials(report):
    exits = report["kentik"]["details"]["sigterm_while_401"]
    assert exits and all(e["exit"] == 0 for e in exits), exits


def test_a_stalled_worker_reports_unhealthy_while_s3_is_down(report):
    details = report["s3proxy"]["details"]
    assert details["good_left_at_outage"] >= details["written_for_outage"] > 0, details  # held in flight
    assert details["unhealthy_seen_while_down"] is True and details["problems_while_down"], details
    assert details["cos_faults_applied"] > 12, details  # every counted fault and at least one held delete


def test_a_redirecting_kentik_gets_nothing_resent_and_nothing_to_the_decoy(report):
    details = report["redirect"]["details"]
    assert details["kentik_modes_applied"] == {"redirect": 20} and details["redirect_target_requests"]["requests"] == 0
    assert details["duplicate_bound"]["seen"] == 0, details["duplicate_bound"]


def test_an_undecodable_200_counts_as_accepted_once(report):
    details = report["badbody"]["details"]
    assert details["kentik_modes_applied"] == {"bad_body": 20} and details["duplicate_bound"]["seen"] == 0, details


def test_one_sources_cos_failing_neither_loses_nor_slows_the_other(report):
    entry = report["sources"]
    assert entry["ok"] and entry["problems"] == [], entry
    assert entry["lost"] == 0 and entry["early_deletes"] == 0 and entry["pending"] == 0, entry
    assert entry["details"]["healthz_during_fault"] == {"200": entry["details"]["healthz_during_fault"]["200"]}


def test_every_bad_input_kind_is_quarantined_with_a_reason(report):
    details = report["badinput"]["details"]
    assert details["bad_objects"] >= 20
    assert details["deadletter_unclear"] == [] and details["bad_deleted"] == []


def test_no_secret_appears_in_logs_metrics_or_topics(report):
    details = report["secrets"]["details"]
    assert details["secret_hits"] == {}
    assert details["log_lines"] > 50 and details["metrics_pages"] >= 2 and details["topics"] >= 5
    assert details["messages"] > 100


def test_an_object_overwritten_in_flight_is_never_deleted_unread(report):
    details = report["overwrite"]["details"]
    assert details["overwritten"]["valid"] >= 5 and details["overwritten"]["garbage"] == 2
    assert details["overwritten"]["read_before_overwrite"] >= 12  # every victim was read before its rewrite
    assert details["bad_left_in_bucket"] == details["bad_objects"] == 4  # 2 bad inputs + 2 overwritten with garbage


def test_keys_with_control_characters_are_delivered_and_deleted(report):
    assert report["ctrlkeys"]["details"]["control_character_keys"] == 8


def test_cos_refusing_deletes_makes_workers_unhealthy_with_the_cause(report):
    details = report["delete403"]["details"]["delete403"]
    assert details["unhealthy_with_cause"], details
    assert any("delete" in p for p in details["problems"]), details


def test_a_worker_joining_while_deletes_are_retried_is_not_held_by_them(report):
    """The rebalance a joining worker causes does not wait for the messages whose deletes are being retried:
    they are handed over unacked, no member overruns the rebalance timeout, the new worker is ready soon."""
    joined = report["delete403"]["details"]["join_while_refused"]
    assert joined["ready_s"] is not None and joined["ready_s"] < 45, joined
    assert joined["dropped_members"] == 0 and joined["handed_over"] > 0, joined


def test_at_debug_level_http_is_dumped_and_no_secret_or_credential_is_in_any_log(report):
    details = report["secrets_debug"]["details"]
    assert details["secret_hits"] == {} and details["credential_hits"] == {}
    assert details["http_exchanges_dumped"] > 50 and details["log_lines"] > 1000

