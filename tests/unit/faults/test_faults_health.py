"""The iamvpc scenario's /healthz check: IAM/VPC failures must not turn a worker unhealthy, and a stall must
be reported by /healthz with the stuck stage (or failing step) named."""
from devstack.faults.outages import iamvpc_health_problems

STUCK = "stage sink stuck: no progress for 61s while 58 messages of its topic (kflow) are pending on this worker"


def test_drained_and_always_healthy_passes():
    assert iamvpc_health_problems(True, [("w1", 200, []), ("w2", 200, [])]) == []


def test_unhealthy_over_iam_or_vpc_faults_fails_even_when_drained():
    (problem,) = iamvpc_health_problems(True, [("w1", 200, []), ("w2", 503, [STUCK])])
    assert "must only degrade enrichment" in problem and "w2" in problem


def test_a_stall_that_healthz_named_is_not_a_health_problem():
    assert iamvpc_health_problems(False, [("w1", 200, []), ("w1", 503, [STUCK])]) == []


def test_a_stall_healthz_did_not_see_is_a_problem():
    (problem,) = iamvpc_health_problems(False, [("w1", 200, []), ("w2", 0, []), ("w2", 503, ["COS rejected"])])
    assert "no worker's /readyz reported a stuck stage" in problem
