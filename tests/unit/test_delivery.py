"""Kentik delivery policy: 200 only, retry 5xx/429/transport forever, wait on 401, split on 413."""
import asyncio

import pytest

from streams.delivery import BatchRefused, PostResult, RetryPolicy, deliver
from streams.runtime import Health


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
    accepted = run(deliver(encode, script.post, 10, what="t", health=Health(), sleep=sleep))
    assert accepted == 10
    assert len(script.bodies) == 5 and set(script.bodies) == {b"0:10"}
    assert slept[3] >= 3.0  # Retry-After honoured


def test_auth_failure_marks_unhealthy_and_waits_without_dropping():
    health = Health()
    script = Script([401, 401, 200])
    slept, sleep = no_sleep_recorder()
    run(deliver(encode, script.post, 5, what="t", health=health, policy=RetryPolicy(auth_wait_s=7), sleep=sleep))
    assert slept == [7, 7]
    assert health.fatal == ""  # cleared once Kentik accepted again
    assert len(script.bodies) == 3


def test_auth_failure_sets_fatal_while_it_lasts():
    health = Health()
    seen = []

    async def post(body):
        seen.append(health.fatal)
        return PostResult(403 if len(seen) < 3 else 200)

    slept, sleep = no_sleep_recorder()
    run(deliver(encode, post, 1, what="t", health=health, sleep=sleep))
    assert "credentials" in seen[1] and "credentials" in seen[2]


def test_413_splits_the_batch_in_halves():
    script = Script([413, 200, 413, 200, 200])
    slept, sleep = no_sleep_recorder()
    accepted = run(deliver(encode, script.post, 8, what="t", health=Health(), sleep=sleep))
    assert accepted == 8
    assert script.bodies == [b"0:8", b"0:4", b"4:8", b"4:6", b"6:8"]


def test_permanent_refusal_raises_after_a_few_attempts():
    script = Script([400, 400, 400])
    slept, sleep = no_sleep_recorder()
    with pytest.raises(BatchRefused) as info:
        run(deliver(encode, script.post, 3, what="t", health=Health(), sleep=sleep))
    assert info.value.status == 400
