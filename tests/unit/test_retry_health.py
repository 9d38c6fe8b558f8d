"""A retried step (Pipeline.retry_forever: COS deletes) reports each failure to Health and clears on success,
so a delete that keeps failing turns /healthz unhealthy with its reason (issue 9 item 4), broker-free."""
import asyncio
from types import SimpleNamespace

from streams.runtime import Runtime
from streams.settings import Settings
from streams.stages import Pipeline, TransientError


def pipeline_with_clock():
    runtime = Runtime(Settings.from_env({}))
    clock = SimpleNamespace(now=0.0)
    runtime.health.clock = lambda: clock.now
    pipeline = Pipeline(SimpleNamespace(should_stop=False), None, runtime)

    async def pause(delay_s):  # the retry delay passes on the test clock, not the wall clock
        clock.now += delay_s

    pipeline.pause = pause
    return pipeline, runtime.health, clock


def test_a_delete_answering_403_forever_makes_health_fail_with_the_reason():
    pipeline, health, clock = pipeline_with_clock()
    attempts = []
    seen_problems = []

    def delete():
        attempts.append(clock.now)
        seen_problems.extend(health.problems(unhealthy_after=300))
        if len(attempts) < 20:
            raise TransientError("delete of 'logs/a.gz' failed: AccessDenied (HTTP 403)")

    asyncio.run(pipeline.retry_forever("delete of 'logs/a.gz'", delete))
    assert len(attempts) == 20
    assert any(p.startswith("delete of 'logs/a.gz' keeps failing") and p.endswith("AccessDenied (HTTP 403)")
               for p in seen_problems)
    assert health.problems(unhealthy_after=300) == [] and health.failures == {}  # it went through at last


def test_a_short_outage_never_turns_unhealthy():
    pipeline, health, clock = pipeline_with_clock()
    calls = []

    def delete():
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("delete of 'k' failed: HTTP 503")
        assert health.retrying()[0]["attempts"] == 2 and health.problems(unhealthy_after=300) == []

    asyncio.run(pipeline.retry_forever("delete of 'k'", delete))
    assert health.retrying() == []
