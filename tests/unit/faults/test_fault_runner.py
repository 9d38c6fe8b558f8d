"""The fault suite's runner (devstack/faults/runner.py): every scenario has an action or a run of its own, and
each scenario's workers get the settings its fault needs."""
from devstack.faults import embedded
from devstack.faults.runner import ACTIONS, SCENARIOS, worker_overrides


def test_every_scenario_has_an_action_or_a_run_of_its_own():
    own_runs = {"sources", *embedded.SCENARIOS}
    assert set(SCENARIOS) == set(ACTIONS) | own_runs and not set(ACTIONS) & own_runs
    assert len(SCENARIOS) == len(set(SCENARIOS)) == 22


def test_each_scenario_gets_the_worker_settings_its_fault_needs():
    assert worker_overrides("kill9") == {"BLUEFLOW_UNHEALTHY_AFTER": "60"}
    assert worker_overrides("s3proxy") == {"BLUEFLOW_UNHEALTHY_AFTER": "8"}
    assert worker_overrides("delete403") == {"BLUEFLOW_UNHEALTHY_AFTER": "8"}
    assert worker_overrides("kentikstall") == {"BLUEFLOW_UNHEALTHY_AFTER": "10"}
    assert worker_overrides("kentik") == {"BLUEFLOW_UNHEALTHY_AFTER": "60", "BLUEFLOW_GROUP_OBJECTS": "4"}
    assert worker_overrides("overwrite")["BLUEFLOW_GROUP_OBJECTS"] == "4"
    assert worker_overrides("iamvpc")["BLUEFLOW_METADATA_INTERVAL"] == "5"
    assert worker_overrides("huge") == {"BLUEFLOW_UNHEALTHY_AFTER": "60", "BLUEFLOW_MAX_OBJECT_BYTES": str(256 << 20),
                                        "BLUEFLOW_CHUNK_FLOWS": "2000"}
