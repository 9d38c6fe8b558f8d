"""A retried step (streams/stages/retry.py `retry_transient`, used for COS deletes, downloads, device look-ups)
reports each failure to Health and clears on success, so a delete that keeps failing turns /healthz
unhealthy with its reason (issue 9 item 4), broker-free."""
import asyncio
from types import SimpleNamespace

from streams.observe.health import Health
from streams.stages.retry import Transient, retry_transient


def health_with_clock():
    health = Health()
    clock = SimpleNamespace(now=0.0)
    health.clock = lambda: clock.now

    async def pause(delay_s):  # the retry delay passes on the test clock, not the wall clock
        clock.now += delay_s

    return health, clock, pause


def run(fn, health, pause, what="delete of 'logs/a.gz'"):
    async def attempt():
        return fn()

    return asyncio.run(retry_transient(what, attempt, pause=pause, health=health, step="finalize"))


def test_a_delete_answering_403_forever_makes_health_fail_with_the_reason():
    health, clock, pause = health_with_clock()
    attempts, seen_problems = [], []

    def delete():
        attempts.append(clock.now)
        seen_problems.extend(health.problems(unhealthy_after=300))
        if len(attempts) < 40:  # backoff jitter: at least 15 s a retry once capped, so > 300 s in all
            raise Transient("delete of 'logs/a.gz' failed: AccessDenied (HTTP 403)")
        return "deleted"

    assert run(delete, health, pause) == "deleted"
    assert len(attempts) == 40
    assert any(p.startswith("finalize: delete of 'logs/a.gz' keeps failing") and p.endswith("AccessDenied (HTTP 403)")
               for p in seen_problems)
    assert health.problems(unhealthy_after=300) == [] and health.failures == {}  # it went through at last


def test_a_short_outage_never_turns_unhealthy():
    health, clock, pause = health_with_clock()
    calls = []

    def delete():
        calls.append(1)
        if len(calls) < 3:
            raise Transient("delete of 'k' failed: HTTP 503")
        assert health.retrying()[0]["attempts"] == 2 and health.problems(unhealthy_after=300) == []

    run(delete, health, pause, "delete of 'k'")
    assert health.retrying() == []
