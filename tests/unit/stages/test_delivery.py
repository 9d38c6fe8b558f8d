"""Kentik delivery policy: 200 only, retry 5xx/429/transport forever, wait on 401, split on 413."""
import asyncio

import pytest

from dataclasses import replace

from connectors.kentik import Verdict, classify
from streams.config.settings import Settings
from streams.stages.context import Sources
from streams.stages.failures import Failures
from streams.stages.retry import KENTIK
from streams.stages.sink.delivery import BatchRefused, PostResult, deliver
from streams.stages.runtime import Health


def report(health):
    """What the sink hands the delivery for the one source of the flags (streams/stages/retry.py)."""
    sources = Sources(Settings.from_env({}))
    return Failures(sources, health).kentik_guard(sources.all[0], None)[0]


def run(coro):
    return asyncio.new_event_loop().run_until_complete(coro)


class Script:
    """A fake transport answering from a list of statuses; records every body it got."""

    def __init__(self, statuses):
        self.statuses = list(statuses)
        self.bodies = []

    async def post(self, body):
        self.bodies.append(body)
        status = self.statuses.pop(0) if self.statuses else 200
        return PostResult(status, 3.0 if status == 429 else None, f"HTTP {status}")


async def encode(start, stop):
    return f"{start}:{stop}".encode()


def no_sleep_recorder():
    slept = []

    async def sleep(s):
        slept.append(s)

    return slept, sleep


def test_transient_failures_are_retried_until_accepted():
    script = Script([500, 503, 0, 429, 200])
    slept, sleep = no_sleep_recorder()
    accepted = run(deliver(encode, script.post, 10, what="t", report=report(Health()), sleep=sleep))
    assert accepted == 10
    assert len(script.bodies) == 5 and set(script.bodies) == {b"0:10"}
    assert slept[3] >= 3.0  # Retry-After honoured


def test_auth_failure_marks_unhealthy_and_waits_without_dropping():
    health = Health()
    script = Script([401, 401, 200])
    slept, sleep = no_sleep_recorder()
    run(deliver(encode, script.post, 5, what="t", report=report(health), policy=replace(KENTIK, credentials_wait_s=7),
                sleep=sleep))
    assert slept == [7, 7]
    assert health.fatal is None  # cleared once Kentik accepted again
    assert len(script.bodies) == 3


def test_auth_failure_sets_fatal_while_it_lasts():
    health = Health()
    seen = []

    async def post(body):
        seen.append(health.fatal)
        return PostResult(403 if len(seen) < 3 else 200)

    slept, sleep = no_sleep_recorder()
    run(deliver(encode, post, 1, what="t", report=report(health), sleep=sleep))
    assert seen[0] is None and "credentials" in str(seen[1]) and "credentials" in str(seen[2])
    assert (seen[1].dependency, seen[1].kind) == ("kentik", "credentials")


def test_413_splits_the_batch_in_halves():
    script = Script([413, 200, 413, 200, 200])
    slept, sleep = no_sleep_recorder()
    accepted = run(deliver(encode, script.post, 8, what="t", report=report(Health()), sleep=sleep))
    assert accepted == 8
    assert script.bodies == [b"0:8", b"0:4", b"4:8", b"4:6", b"6:8"]


def test_permanent_refusal_raises_after_a_few_attempts():
    script = Script([400, 400, 400])
    slept, sleep = no_sleep_recorder()
    with pytest.raises(BatchRefused) as info:
        run(deliver(encode, script.post, 3, what="t", report=report(Health()), sleep=sleep))
    assert info.value.status == 400


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_retried_like_5xx_never_accepted_nor_refused(status):
    # more redirects than max_permanent_attempts: a 4xx would have been refused by now
    health = Health()
    script = Script([status] * 6 + [200])
    slept, sleep = no_sleep_recorder()
    accepted = run(deliver(encode, script.post, 4, what="t", report=report(health), sleep=sleep))
    assert accepted == 4
    assert len(script.bodies) == 7 and set(script.bodies) == {b"0:4"}   # the same batch, never split or dropped
    assert len(slept) == 6 and all(s > 0 for s in slept)               # backoff before every retry
    assert health.fatal is None


def test_nothing_counts_as_accepted_while_redirected():
    accepted_seen = []

    async def post(body):
        accepted_seen.append(len(accepted_seen))
        return PostResult(307, None, "redirect (HTTP 307) to elsewhere.example not followed")

    async def stop_after(s):
        if len(accepted_seen) >= 20:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        run(deliver(encode, post, 3, what="t", report=report(Health()), sleep=stop_after))
    assert len(accepted_seen) == 20   # still retrying after 20 redirects: not refused, not accepted


def test_timeout_is_a_transport_error_and_retried():
    answers = [PostResult(0, None, "kentik post flows d: timeout: no answer within 100 s"),
               PostResult(0, None, "kentik post flows d: timeout: no complete answer within the 120 s deadline"),
               PostResult(200)]
    slept, sleep = no_sleep_recorder()

    async def post(body):
        return answers.pop(0)

    assert run(deliver(encode, post, 2, what="t", report=report(Health()), sleep=sleep)) == 2
    assert not answers and len(slept) == 2


def test_200_is_accepted_at_once():
    script = Script([200])
    slept, sleep = no_sleep_recorder()
    health = Health()
    health.last_progress = 0.0
    assert run(deliver(encode, script.post, 9, what="t", report=report(health), sleep=sleep)) == 9
    assert len(script.bodies) == 1 and slept == [] and health.last_progress > 0


@pytest.mark.parametrize("status", [400, 404, 405, 410, 422])
def test_other_4xx_are_refused_after_a_few_attempts(status):
    script = Script([status] * 5)
    slept, sleep = no_sleep_recorder()
    with pytest.raises(BatchRefused):
        run(deliver(encode, script.post, 3, what="t", report=report(Health()), sleep=sleep))
    assert len(script.bodies) == KENTIK.refusals


def test_retried_status_table():
    statuses = (0, 200, 201, 204, 300, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 413, 429, 500, 502,
                503, 504)
    assert [s for s in statuses if classify(s) is Verdict.RETRY] == [0, 300, 301, 302, 303, 304, 307, 308, 408, 429,
                                                                     500, 502, 503, 504]
    assert [s for s in statuses if classify(s) is Verdict.CREDENTIALS] == [401, 403]
    assert [classify(s) for s in (200, 413, 400)] == [Verdict.ACCEPTED, Verdict.TOO_LARGE, Verdict.REFUSED]


def test_kentik_redirects_are_reported_to_health_until_accepted():
    """Issue 28: a Kentik stall never reached health. Each failed attempt is a failing step of dependency
    kentik with Kentik's answer; past --unhealthy_after readiness names Kentik, liveness stays green."""
    clock = [1000.0]
    health = Health(clock=lambda: clock[0])
    seen = []

    async def post(body):
        if len(seen) < 6:
            seen.append((health.retrying(), health.problems(30), health.live_problems(30)))
            clock[0] += 10  # each answer 10 s later: 60 s of redirects against unhealthy_after 30 s
            return PostResult(307, None, "redirect (HTTP 307) to kentik.invalid not followed")
        return PostResult(200)

    sleep = no_sleep_recorder()[1]
    assert run(deliver(encode, post, 3, what="chunk 1/1 of 'k'", report=report(health), sleep=sleep)) == 3
    retrying, problems, live = seen[-1]
    assert [(r["step"], r["dependency"], r["attempts"]) for r in retrying] == [("sink: kentik delivery", "kentik", 5)]
    assert "Kentik answered redirect (HTTP 307)" in retrying[0]["reason"]
    assert len(problems) == 1 and "Kentik" in problems[0] and "keeps failing" in problems[0]
    assert all(live == [] for _, _, live in seen)  # a restart does not fix Kentik
    assert health.retrying() == [] and health.problems(30) == []  # accepted: cleared
