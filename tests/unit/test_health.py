"""/healthz logic: unhealthy on a credentials problem, a stuck stage, or a step that keeps failing."""
from streams.health import STALE_FAILURE_S, Health, consumer_lag


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make():
    clock = Clock()
    return Health(clock=clock), clock


def test_consumer_lag_counts_uncommitted_messages_per_partition():
    highwater = {"a": 10, "b": 5, "c": None}.get  # next offset to be written
    committed = {"a": 7, "b": None, "c": 3}.get
    read = {"a": 8, "b": 1, "c": 3}.get
    lag, total = consumer_lag(["a", "b", "c"], highwater, committed, read)
    assert lag == (10 - 1 - 7) + (5 - 1 - 1)  # b falls back to the read offset; c has no highwater yet
    assert total == 7 + 1 + 3


def test_a_stage_with_pending_messages_and_still_offsets_is_named_as_stuck():
    health, clock = make()
    for stage in ("parse", "enrich", "sink"):
        health.observe_stage(stage, lag=0, committed=50)
    health.observe_stage("sink", lag=12, committed=50)  # work arrives for the sink
    clock.now += 200
    health.observe_stage("sink", lag=12, committed=50)
    assert health.problems(unhealthy_after=300) == []
    clock.now += 101
    health.observe_stage("sink", lag=12, committed=50)
    health.observe_stage("parse", lag=0, committed=50)
    (problem,) = health.problems(unhealthy_after=300)
    assert problem.startswith("stage sink stuck: no progress for 301s") and "12 messages" in problem
    assert "kflow" in problem
    assert health.lag == 12


def test_committed_offsets_moving_forward_keep_a_stage_healthy():
    health, clock = make()
    health.observe_stage("enrich", lag=12, committed=100)
    for _ in range(10):  # slow but moving: 10 x 100 s, one message each time
        clock.now += 100
        health.observe_stage("enrich", lag=12, committed=health.stages["enrich"].committed + 1)
    assert health.problems(unhealthy_after=300) == []


def test_no_lag_means_healthy_however_idle():
    health, clock = make()
    health.observe_stage("parse", lag=0, committed=0)
    clock.now += 10_000
    health.observe_stage("parse", lag=0, committed=0)
    assert health.problems(unhealthy_after=300) == []


def test_idle_stage_that_gets_work_starts_its_clock_then():
    health, clock = make()
    health.observe_stage("parse", lag=0, committed=7)
    clock.now += 10_000  # idle for hours
    health.observe_stage("parse", lag=3, committed=7)
    clock.now += 5
    assert health.problems(unhealthy_after=300) == []


def test_a_credentials_problem_is_reported_at_once():
    health, _ = make()
    health.fatal = "Kentik rejected the credentials (HTTP 401)"
    assert health.problems(unhealthy_after=300) == ["Kentik rejected the credentials (HTTP 401)"]


def test_a_step_failing_longer_than_the_limit_is_a_problem_with_its_reason():
    health, clock = make()
    step = "delete of 'logs/a.gz'"
    for _ in range(12):  # a COS DELETE answering 403, retried every 30 s
        health.failing(step, "AccessDenied (HTTP 403)")
        clock.now += 30
    assert health.retrying()[0]["attempts"] == 12
    (problem,) = health.problems(unhealthy_after=300)
    assert problem.startswith("delete of 'logs/a.gz' keeps failing (12 attempts in 360s)")
    assert problem.endswith("AccessDenied (HTTP 403)")
    health.ok(step)  # the delete went through at last
    assert health.problems(unhealthy_after=300) == [] and health.retrying() == []


def test_a_step_failing_briefly_is_shown_as_retrying_but_healthy():
    health, clock = make()
    health.failing("delete of 'k'", "HTTP 503")
    clock.now += 20
    health.failing("delete of 'k'", "HTTP 500")
    assert health.problems(unhealthy_after=300) == []
    assert health.retrying() == [{"step": "delete of 'k'", "failing_s": 20.0, "attempts": 2, "reason": "HTTP 500"}]


def test_a_failure_nobody_retries_any_more_stops_counting():
    health, clock = make()
    for _ in range(14):  # failing every 30 s for 420 s: a problem
        health.failing("delete of 'gone'", "HTTP 403")
        clock.now += 30
    assert len(health.problems(unhealthy_after=300)) == 1
    clock.now += STALE_FAILURE_S + 1  # then no attempt any more (the partition moved to another worker)
    assert health.problems(unhealthy_after=300) == [] and health.retrying() == []
    health.failing("delete of 'other'", "HTTP 500")
    assert list(health.failures) == ["delete of 'other'"]  # the stale entry was dropped


def test_pending_flag_counts_only_before_any_consumer_observation():
    health, clock = make()
    health.pending = True
    clock.now += 301
    assert health.problems(unhealthy_after=300) == ["no progress for 301s while work is pending"]
    health.progressed()
    assert health.problems(unhealthy_after=300) == []
    clock.now += 301
    health.observe_stage("parse", lag=0, committed=0)
    assert health.problems(unhealthy_after=300) == []


def test_web_observer_feeds_each_stage_from_its_own_topic():
    from collections import namedtuple
    from types import SimpleNamespace

    from streams import web

    TP = namedtuple("TP", "topic partition")
    objects, flows, kflow, leader = TP("bf.objects", 0), TP("bf.flows", 1), TP("bf.kflow", 1), TP("bf-__leader", 0)
    consumer = SimpleNamespace(
        assignment=lambda: {objects, flows, kflow, leader},
        highwater={objects: 10, flows: 30, kflow: 5, leader: 99}.get,  # next offset to be written
        _committed_offset={objects: 9, flows: 20, kflow: 4, leader: 0},
        _read_offset={})
    health, clock = make()
    pipeline = SimpleNamespace(settings=SimpleNamespace(topic=lambda name: f"bf.{name}"),
                               rt=SimpleNamespace(health=health))
    web.observe_consumer(SimpleNamespace(consumer=consumer), pipeline)
    assert {s: w.lag for s, w in health.stages.items()} == {"parse": 0, "enrich": 9, "sink": 0}
    clock.now += 301
    web.observe_consumer(SimpleNamespace(consumer=consumer), pipeline)
    (problem,) = health.problems(unhealthy_after=300)
    assert problem.startswith("stage enrich stuck") and "9 messages" in problem and "(flows)" in problem
