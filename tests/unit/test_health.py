"""/healthz logic: unhealthy on a credentials problem, or when work waits and nothing moves."""
from streams.runtime import Health, consumer_lag


def test_consumer_lag_counts_uncommitted_messages_per_partition():
    highwater = {"a": 10, "b": 5, "c": None}.get  # next offset to be written
    committed = {"a": 7, "b": None, "c": 3}.get
    read = {"a": 8, "b": 1, "c": 3}.get
    lag, total = consumer_lag(["a", "b", "c"], highwater, committed, read)
    assert lag == (10 - 1 - 7) + (5 - 1 - 1)  # b falls back to the read offset; c has no highwater yet
    assert total == 7 + 1 + 3


def test_lag_without_progress_turns_unhealthy_after_the_limit():
    health = Health()
    health.observe_consumer(lag=12, committed_total=100)
    assert health.problems(unhealthy_after=300) == []
    health.last_progress -= 301  # five minutes pass, offsets do not move
    health.observe_consumer(lag=12, committed_total=100)
    (problem,) = health.problems(unhealthy_after=300)
    assert "no progress" in problem and "12 messages" in problem


def test_committed_offsets_moving_forward_count_as_progress():
    health = Health()
    health.observe_consumer(lag=12, committed_total=100)
    health.last_progress -= 301
    health.observe_consumer(lag=10, committed_total=102)
    assert health.problems(unhealthy_after=300) == []


def test_no_lag_means_healthy_however_idle():
    health = Health()
    health.last_progress -= 10_000
    health.observe_consumer(lag=0, committed_total=0)
    assert health.problems(unhealthy_after=300) == []


def test_a_credentials_problem_is_reported_at_once():
    health = Health(fatal="Kentik rejected the credentials (HTTP 401)")
    assert health.problems(unhealthy_after=300) == ["Kentik rejected the credentials (HTTP 401)"]
