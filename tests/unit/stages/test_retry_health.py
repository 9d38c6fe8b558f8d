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


def test_a_stop_nobody_asked_for_exits_non_zero_with_one_line_and_an_asked_one_exits_zero():
    from streams.stages.stopping import stop_status

    assert stop_status(asked=True, code=0) == (0, "")
    code, line = stop_status(asked=False, code=0)  # Faust stopped the app on its own: a failure
    assert code == 1 and "without being asked" in line and "\n" not in line
    assert stop_status(asked=True, code=2)[0] == 2 and stop_status(asked=False, code=3)[0] == 3


def _exit_in_child(ask: bool) -> tuple[int, str]:
    import subprocess
    import sys

    script = ("import logging, sys; logging.basicConfig(stream=sys.stderr, format='%(message)s');"
              "from streams.stages import stopping;" + ("stopping.ask_stop('SIGTERM');" if ask else "") +
              "stopping.exit_without_ack('sink: stopped in the middle of a message')")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    return done.returncode, done.stderr


def test_leaving_mid_message_exits_one_unless_the_stop_was_asked_for():
    code, err = _exit_in_child(ask=False)
    assert code == 1 and sum("without being asked" in line for line in err.splitlines()) == 1
    code, err = _exit_in_child(ask=True)
    assert code == 0 and "without being asked" not in err and "exiting without committing" in err


def test_one_rule_for_one_source_or_many_gives_up_only_when_others_share_the_worker():
    from streams.stages.retry import COS, gives_up, holds_worker, probe_due

    assert holds_worker(shared=False) and not holds_worker(shared=True)
    assert not gives_up(COS.give_up_s * 100, shared=False)  # one source: retried in place, for ever
    assert not gives_up(COS.give_up_s / 2, shared=True) and gives_up(COS.give_up_s, shared=True)
    assert probe_due(COS.give_up_s, True, since_probe_s=COS.probe_every_s)  # one call per interval goes through
    assert not probe_due(COS.give_up_s, True, since_probe_s=COS.probe_every_s / 2)
    assert probe_due(COS.give_up_s, False, since_probe_s=0.0)


def test_cos_clients_make_the_same_sdk_attempts_whether_the_source_came_from_flags_or_a_file():
    from dataclasses import replace

    from streams.config.settings import Settings
    from streams.config.sources import Source
    from streams.stages.retry import COS
    from streams.stages.runtime import cos_client_for

    flags = Settings.from_env({"BLUEFLOW_COS_ENDPOINT": "s3.example", "BLUEFLOW_COS_HMAC_ACCESS_KEY": "a",
                               "BLUEFLOW_COS_HMAC_SECRET_KEY": "s", "BLUEFLOW_BUCKET": "b"})
    [implicit] = flags.sources
    listed = Source("acct-a", "b", endpoint="s3.example", hmac_access_key="a", hmac_secret_key="s")
    [from_file] = replace(flags, sources=(listed,)).sources
    attempts = [cos_client_for(s, flags).meta.config.retries["total_max_attempts"] for s in (implicit, from_file)]
    assert attempts == [COS.sdk_attempts, COS.sdk_attempts] == [2, 2]


def test_a_permanent_cos_refusal_is_a_typed_cause_of_the_worker_with_one_source_and_clears_on_success():
    from connectors.cos import CosError
    from streams.config.settings import Settings
    from streams.stages.context import Sources
    from streams.stages.failures import Failures

    health = Health()
    sources = Sources(Settings.from_env({"BLUEFLOW_BUCKET": "b"}))
    failures, [only] = Failures(sources, health), sources.all
    from streams.stages.bucket import cause_of

    refused = CosError("delete", "b", "k", "AccessDenied", "Access Denied", transient=False)
    failures.failed(only, "delete", "delete of 'k' failed", cause_of("delete", refused, str))
    assert (health.fatal.dependency, health.fatal.kind, health.fatal.operation) == ("cos", "credentials", "delete")
    assert health.problems(300) == [health.fatal.message] and health.dependencies()["cos"] == health.fatal.message
    assert cause_of("get", CosError("get", "b", "k", "SlowDown", "slow", transient=True), str) is None
    failures.succeeded(only, "get")  # another operation working again says nothing about deletes
    assert health.fatal is not None
    failures.succeeded(only, "delete")
    assert health.fatal is None and failures.problems() == {}


def test_a_rebalance_leaves_a_retried_message_unacked_and_its_step_to_the_next_owner():
    """The pause between attempts raises HandOver once Faust begins revoking the partitions (Faust then
    waits for every unacked message), and the step's failure is no longer this worker's to report."""
    import pytest

    from streams.stages.retry import Pauser
    from streams.stages.stopping import HandOver

    health, rebalancing, attempts = Health(), [], []

    def delete():
        attempts.append(1)
        rebalancing.append(True)  # the revoke begins during the first attempt
        raise Transient("delete of 'k' failed: HTTP 503")

    pause = Pauser(lambda: False, lambda: bool(rebalancing))
    with pytest.raises(HandOver):
        run(delete, health, pause, "delete of 'k'")
    assert attempts == [1] and health.failures == {} and health.retrying() == []
    asyncio.run(Pauser(lambda: False)(0.01))  # no rebalance: an ordinary pause


def test_a_message_left_for_the_next_owner_is_neither_acked_nor_dead_lettered():
    from devstack.harness.driver import Driver
    from streams.stages import topology
    from streams.stages.stopping import HandOver

    d = Driver()
    event = SimpleNamespace(key=b"k", value=b"raw")

    async def handle(ctx, value, key):
        raise HandOver("a rebalance began while a call was being retried")

    async def broken(ctx, value, key):
        raise ValueError("a bug")

    assert asyncio.run(topology._guarded(d.ctx, "sink", event, handle)) is False
    assert not d.deadletters()
    assert asyncio.run(topology._guarded(d.ctx, "sink", event, broken)) is True
    assert len(d.deadletters()) == 1
