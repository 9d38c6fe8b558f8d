"""Keeping one source's Kentik refusal from holding the others (several sources only).

A Kentik token or user that is refused (401/403) belongs to one source. With one source the sink waits,
unhealthy, until it is fixed (streams/stages/sink/delivery.py). With several, `kentik_guard` gives the delivery a
per-source health — the refusal becomes that source's problem, not the worker's — and a pause that, once the
source has been refused for GIVE_UP_AFTER_S, raises SourceUnavailable: the chunk is not accepted, so its object
is neither finalized nor deleted; the leader publishes the object again after `stuck_after` and the chunks
Kentik accepted meanwhile are skipped. Nothing is lost or sent twice, and the sink goes on with the others.
"""
from __future__ import annotations

from streams.config.sources import SourceUnavailable

KENTIK = "kentik"


class SourceHealth:
    """What streams.stages.sink.delivery needs of a Health, recording Kentik refusals as the source's own problem."""

    def __init__(self, ctx, source):
        self.ctx, self.source = ctx, source

    @property
    def fatal(self) -> str:
        found = self.ctx.sources.state[self.source.name].failing.get(KENTIK)
        return found[0] if found else ""

    @fatal.setter
    def fatal(self, problem: str) -> None:
        if problem:
            self.ctx.sources.failed(self.source, KENTIK, problem)
        else:
            self.ctx.sources.succeeded(self.source, KENTIK)

    def progressed(self) -> None:
        self.ctx.health.progressed()

    def failing(self, step: str, reason: str) -> None:  # Kentik answering 3xx/5xx: the worker's health too
        self.ctx.health.failing(f"{step} (source {self.source.name})", reason, "kentik")

    def ok(self, step: str) -> None:
        self.ctx.health.ok(f"{step} (source {self.source.name})")


def kentik_guard(ctx, source):
    """(health, pause) for delivering one chunk of `source`: the worker's own with a single source."""
    if not ctx.sources.isolated:
        return ctx.health, ctx.pause
    check_kentik(ctx, source)
    health = SourceHealth(ctx, source)

    async def pause(delay_s: float) -> None:
        if health.fatal:
            check_kentik(ctx, source)
        await ctx.pause(delay_s)

    return health, pause


def check_kentik(ctx, source) -> None:
    """SourceUnavailable while the source's Kentik credentials have been refused for long (one probe per
    PROBE_EVERY_S goes through)."""
    if ctx.sources.waiting(source, KENTIK):
        raise SourceUnavailable(f"source {source.name}: Kentik refuses its credentials "
                                f"({ctx.sources.state[source.name].failing[KENTIK][0]})")
