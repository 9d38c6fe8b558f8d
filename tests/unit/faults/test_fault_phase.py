"""The fault suite's "did the fault meet work?" check (devstack/faults/phase.py): objects pending at each fault
event, and a scenario whose fault met nothing reported "not exercised"."""
from devstack.faults.phase import deletions, fault_met, met_problems, pending_at

WRITTEN = {"a": 10.0, "b": 10.0, "c": 20.0, "d": 30.0}
DELETED = {"a": 12.0, "b": 25.0, "c": 21.0}


def test_pending_counts_objects_written_and_not_yet_deleted():
    assert pending_at(WRITTEN, DELETED, 5.0) == 0  # nothing written yet
    assert pending_at(WRITTEN, DELETED, 11.0) == 2  # a, b
    assert pending_at(WRITTEN, DELETED, 20.5) == 2  # b, c (a gone)
    assert pending_at(WRITTEN, DELETED, 26.0) == 0  # all written so far are gone; d not yet written
    assert pending_at(WRITTEN, DELETED, 31.0) == 1  # d, never deleted


def test_fault_met_reports_each_event_and_the_faults_applied():
    met = fault_met([("kill -9 w1", 11.0), ("kill -9 w2", 26.0)], WRITTEN, DELETED, None)
    assert met == {"events": [{"fault": "kill -9 w1", "pending": 2}, {"fault": "kill -9 w2", "pending": 0}],
                   "faults_applied": None}


def test_an_event_that_met_nothing_is_not_exercised():
    met = fault_met([("kill -9 w1", 11.0), ("kill -9 w2", 26.0)], WRITTEN, DELETED, None)
    assert met_problems(met) == ["not exercised: kill -9 w2 met no pending object"]


def test_injected_faults_never_applied_are_not_exercised():
    met = fault_met([("COS refuses deletes", 11.0)], WRITTEN, DELETED, 0)
    (problem,) = met_problems(met)
    assert problem.startswith("not exercised: no injected fault was applied")
    assert met_problems(fault_met([("COS refuses deletes", 11.0)], WRITTEN, DELETED, 7)) == []


def test_a_scenario_without_a_fault_event_is_not_exercised():
    assert met_problems(fault_met([], WRITTEN, DELETED, 3)) == [
        "not exercised: the scenario recorded no moment its fault acted"]


def test_deletions_take_the_proxy_log_first_and_the_ledger_for_the_rest():
    ledger = {"a": {"deleted": True, "delivered_at": 99_000}, "x": {"deleted": True, "delivered_at": 15_000},
              "y": {"deleted": False, "delivered_at": 16_000}}
    assert deletions({"a": 12.0}, ledger) == {"a": 12.0, "x": 15.0}
