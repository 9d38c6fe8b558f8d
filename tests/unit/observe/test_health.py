"""/healthz logic: unhealthy on a credentials problem, a stuck stage, or a step that keeps failing."""
from streams.observe.health import STALE_FAILURE_S, Cause, Health, consumer_lag


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make():
    clock = Clock()
    return Health(clock=clock), clock


def test_consumer_lag_counts_from_the_committed_offset_which_is_the_next_to_read():
    highwater = {"a": 10, "c": None}.get  # next offset to be written
    committed = {"a": 7, "c": 3}.get  # next offset to read: 7, 8, 9 of "a" are pending
    lag, total = consumer_lag(["a", "c"], highwater, committed)
    assert lag == 3  # c has no highwater yet
    assert total == 7 + 3


def test_one_pending_message_per_partition_is_counted():
    """Issue 28: 20 pending on 4 partitions gave lag 16 (committed taken as the last processed offset)."""
    parts = ["p0", "p1", "p2", "p3"]
    highwater = dict.fromkeys(parts, 105).get
    committed = dict.fromkeys(parts, 100).get
    assert consumer_lag(parts, highwater, committed) == (20, 400)
    assert consumer_lag(parts, dict.fromkeys(parts, 100).get, committed) == (0, 400)  # nothing pending


def test_a_partition_without_a_commit_counts_from_its_start_not_from_what_was_read():
    """A fresh deployment: nothing committed yet, the consumer read ahead; every message from the partition's
    start is pending (issue 28: it used to count from the read offset, lag 0)."""
    highwater = {"a": 50, "b": 30}.get
    committed = {"a": None, "b": None}.get
    assert consumer_lag(["a", "b"], highwater, committed) == (80, 0)  # start unknown: 0
    start = {"a": 40, "b": 0}.get  # retention removed a's first 40 messages
    assert consumer_lag(["a", "b"], highwater, committed, start) == (10 + 30, 0)
    assert consumer_lag(["a"], {"a": 40}.get, committed, start) == (0, 0)  # everything retained is gone


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
    health.fatal = Cause("kentik", "credentials", "Kentik rejected the credentials (HTTP 401)")
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
    assert health.retrying() == [{"step": "delete of 'k'", "failing_s": 20.0, "attempts": 2, "reason": "HTTP 500",
                                 "dependency": ""}]


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

    from streams.observe import web

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
    assert {s: w.lag for s, w in health.stages.items()} == {"parse": 1, "enrich": 10, "sink": 1}
    clock.now += 301
    web.observe_consumer(SimpleNamespace(consumer=consumer), pipeline)
    problems = health.problems(unhealthy_after=300)
    assert [p.split(" stuck")[0] for p in problems] == ["stage enrich", "stage parse", "stage sink"]
    assert "10 messages" in problems[0] and "(flows)" in problems[0]


# ------------------------------------------------------------------ liveness vs readiness (issue 22 item 4)
def test_a_dependency_failing_makes_a_worker_not_ready_but_keeps_it_alive():
    """Kentik redirecting for 3 x unhealthy_after while the sink is stuck: readiness names Kentik (and the
    stuck stage), liveness stays green throughout (a restart does not fix Kentik)."""
    health, clock = make()
    health.observe_stage("sink", lag=0, committed=10)
    health.observe_stage("sink", lag=3, committed=10)
    for _ in range(9):  # 90 s of failed POSTs, one every 10 s
        health.failing("sink: kentik delivery", "Kentik answered redirect (HTTP 307) to kentik.invalid", "kentik")
        health.observe_stage("sink", lag=3, committed=10)
        assert health.live_problems(unhealthy_after=30) == []
        clock.now += 10
    problems = health.problems(unhealthy_after=30)
    assert problems[0].startswith("stage sink stuck: no progress for 90s while 3 messages")
    assert problems[1] == ("sink: kentik delivery keeps failing (9 attempts in 90s): Kentik answered redirect "
                           "(HTTP 307) to kentik.invalid")
    assert health.dependencies() == {"kentik": "sink: kentik delivery: Kentik answered redirect (HTTP 307) to "
                                               "kentik.invalid", "cos": "", "vpc": "", "ipfix": ""}
    health.ok("sink: kentik delivery")
    health.observe_stage("sink", lag=0, committed=13)
    assert health.problems(unhealthy_after=30) == [] and health.dependencies()["kentik"] == ""


def test_rejected_credentials_are_a_readiness_problem_only():
    health, clock = make()
    health.fatal = Cause("kentik", "credentials", "Kentik rejected the credentials (HTTP 401) for chunk 1/1; "
                         "fix KENTIK_API_TOKEN")
    assert health.problems(unhealthy_after=30) == [health.fatal.message] and health.live_problems(unhealthy_after=30) == []
    assert health.dependencies()["kentik"] == health.fatal.message


def test_a_stage_stuck_with_every_dependency_answering_is_wedged_and_fails_liveness():
    health, clock = make()
    health.observe_stage("enrich", lag=0, committed=5)
    health.observe_stage("enrich", lag=4, committed=5)
    clock.now += 31
    health.observe_stage("enrich", lag=4, committed=5)
    (live,) = health.live_problems(unhealthy_after=30)
    assert live.startswith("stage enrich stuck") and live.endswith("no dependency is failing (wedged)")
    health.failing("parse: download: download of 'k'", "COS answered 503")  # a dependency explains it
    assert health.live_problems(unhealthy_after=30) == [] and len(health.problems(unhealthy_after=30)) == 1


def test_a_dead_task_or_a_watch_that_stopped_fails_liveness_and_readiness():
    health, clock = make()
    assert health.live_problems(30) == []  # the watch never ran yet: nothing to judge
    health.tick()
    clock.now += 59
    assert health.live_problems(30) == []
    clock.now += 2
    (stalled,) = health.live_problems(30)
    assert "watch has not run for 61s" in stalled
    health.tick()
    health.died("task poll", "RuntimeError('boom')")
    assert health.live_problems(30) == ["task poll stopped: RuntimeError('boom')"] == health.problems(30)
    health.revived("task poll")
    assert health.live_problems(30) == []


def test_a_failing_listing_is_a_cos_problem_even_with_nothing_pending():
    """Issue 21: an empty bucket with COS down is still a failing step (the leader's listing)."""
    from streams.stages.poll import LISTING_STEP

    health, clock = make()
    assert not health.pending and not health.stages
    for _ in range(4):
        health.failing(LISTING_STEP, "listing bucket 'flowlogs' failed: COS answered 503", "cos")
        clock.now += 10
    (problem,) = health.problems(unhealthy_after=30)
    assert problem.startswith("leader: listing the bucket keeps failing") and "503" in problem
    assert health.dependencies()["cos"] and health.live_problems(30) == []


def test_a_stage_released_by_a_recovered_dependency_gets_unhealthy_after_to_move_before_it_is_wedged():
    """Kentik accepts again after a long stall: the sink's offsets move a commit interval later. Liveness
    must not call the stage wedged in between (the kentikstall scenario samples it every second)."""
    health, clock = make()
    health.observe_stage("sink", lag=0, committed=10)
    health.observe_stage("sink", lag=3, committed=10)
    for _ in range(9):
        health.failing("sink: kentik delivery", "Kentik answered HTTP 503")
        clock.now += 10
    health.ok("sink: kentik delivery")
    clock.now += 4  # accepted, not committed yet
    health.observe_stage("sink", lag=3, committed=10)
    assert health.live_problems(unhealthy_after=30) == []
    clock.now += 27
    (wedged,) = health.live_problems(unhealthy_after=30)
    assert "no progress for 31s" in wedged and wedged.endswith("(wedged)")
