"""One retry policy for every loop: capped exponential backoff with jitter, a stop-aware pause that exits
without acknowledging, and `retry_transient` for blocking calls that fail with `Transient`.

Why exiting is the right stop: Faust waits for the current event before it stops and acks it when the agent
returns or raises, so neither is allowed while a message is unfinished. The process leaves like a crash
(nothing committed past the unfinished message) and the worker that takes over the partition redoes it.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any, Callable

log = logging.getLogger("blueflow")


class Transient(Exception):
    """A failure that goes away by itself (COS unreachable, throttled, 5xx): retry, never quarantine."""


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.5
    cap_s: float = 30.0
    jitter: bool = True

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry number `attempt` (0-based); at least `retry_after` (bounded) when given."""
        delay = min(self.cap_s, self.base_s * 2 ** min(attempt, 16))
        if self.jitter:
            delay *= 0.5 + random.random() / 2
        if retry_after:
            delay = max(delay, min(retry_after, self.cap_s * 4))
        return delay


DEFAULT = Backoff()


def exit_without_ack(why: str) -> None:
    """Leave the process now, committing nothing more (see the module doc)."""
    log.warning("%s: exiting without committing the current message; the next worker of this partition "
                "processes it again", why)
    logging.shutdown()
    os._exit(0)


class Pauser:
    """Sleeps between retries, leaving the process (without ack) as soon as the app is asked to stop."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.should_stop = should_stop

    async def __call__(self, delay_s: float) -> None:
        deadline = time.monotonic() + delay_s
        while True:
            if self.should_stop():
                exit_without_ack("stopping while a message is still being retried")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(0.5, remaining))


async def retry_transient(what: str, attempt_once: Callable[[], Any], *, pause: Callable, health=None,
                          step: str = "", scrub: Callable[[str], str] = str, backoff: Backoff = DEFAULT):
    """Await `attempt_once()` until it stops raising Transient. While it keeps failing, `health` learns that
    `step` is failing (so /healthz can report a stall with its cause); success clears it."""
    step = f"{step}: {what}" if step else ""
    attempt = 0
    while True:
        try:
            result = await attempt_once()
        except Transient as exc:
            reason = scrub(str(exc))
            if health is not None and step:
                health.failing(step, reason)
            delay = backoff.delay(attempt)
            attempt += 1
            log.warning("%s failed (%s); retry %d in %.1fs", what, reason, attempt, delay)
            await pause(delay)
            continue
        if health is not None and step:
            health.ok(step)
        return result
