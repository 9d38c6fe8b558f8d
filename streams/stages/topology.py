"""The pipeline's topology — the only place that wires topics to stages.

    COS bucket ─poll (leader)─▶ objects ─parse─▶ flows ─enrich─▶ kflow ─sink─▶ Kentik /chf (or IPFIX)
                                                                           └─finalize─▶ COS delete, ledger

`build(app, topics, runtime)` registers it on a Faust app; `describe()` prints it from the same tables
(`blueflow topology`), like Kafka Streams' Topology.describe().
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from functools import partial
from typing import Awaitable, Callable

from streams.stages.stopping import HandOver, exit_without_ack
from streams.stages.finalize import finalize, held_ack
from streams.state import commits
from streams.stages import enrich, leader, parse, poll
from streams.stages.sink import sink
from streams.stages.context import StageContext
from streams.formats.stage_topics import STAGES, TOPIC_NAMES

log = logging.getLogger("blueflow")


@dataclass(frozen=True)
class Agent:
    """A stage over one topic: `handle(ctx, raw value, raw key)` for each message, concurrency 1; with
    `holds_ack`, `handle(ctx, raw value, raw key, held)`: the message's ack (finalize/held_ack.py HeldAck), which the
    stage may hold past its return (the sink: until the objects it completed are finalized in a batch)."""

    name: str
    source: str
    sinks: tuple[str, ...]
    handle: Callable[..., Awaitable[None]]
    effects: str = ""
    holds_ack: bool = False


@dataclass(frozen=True)
class Task:
    """A loop of every worker, or of the leader only (chosen by Kafka's consumer group)."""

    name: str
    leader_only: bool
    reads: str
    sinks: tuple[str, ...]
    loop: Callable[..., Awaitable[None]]


SINK_EFFECTS = {  # --sink: where flows go (a source of the configuration file may choose the other one)
    "kentik": "Kentik POST /chf per device; finalize: COS LIST (version check) + DeleteObjects of the "
              "unchanged, ledger, progress tombstones",
    "ipfix": "IPFIX export to the collectors (UDP/TCP); finalize: COS LIST (version check) + DeleteObjects "
             "of the unchanged, ledger, progress tombstones",
}
AGENTS = (
    Agent("parse", STAGES["parse"].reads, STAGES["parse"].writes, parse.handle,
          "COS GET of each object of the group (the listed version)"),
    Agent("enrich", STAGES["enrich"].reads, STAGES["enrich"].writes, enrich.handle, "VPC metadata from the IP index"),
    Agent("sink", STAGES["sink"].reads, STAGES["sink"].writes, sink.handle, SINK_EFFECTS["kentik"], holds_ack=True),
)


def agents(sink_name: str = "kentik") -> tuple[Agent, ...]:
    """The agents of a deployment: parse, enrich and the sink (described for the deployment's --sink; each
    source's chunks go to that source's sink)."""
    return AGENTS[:-1] + (replace(AGENTS[-1], effects=SINK_EFFECTS[sink_name]),)


TASKS = (
    Task("poll", True, "COS bucket listing (groups of objects)", ("objects",), poll.poll_loop),
    Task("metadata", True, "IBM VPC API (per region)", ("vpc-metadata",), leader.metadata_loop),
    Task("heartbeat", True, "worker health", ("Kentik export status",), leader.heartbeat_loop),
    Task("progress-log", False, "worker counters", ("log",), leader.progress_log_loop),
    Task("deletes", False, "objects the sink completed (held up to delete_batch_seconds)",
         ("COS LIST + DeleteObjects", "ledger", "progress"), finalize.flush_loop),
)
FOLLOWERS = (
    ("outcomes", ("ledger", "deadletter", "progress"), "skip finished objects; resume half-delivered ones"),
    ("metadata", ("vpc-metadata",), "the IP index enrich labels flows with"),
)


def describe(topic=lambda name: name, sink_name: str = "kentik") -> str:
    """The topology as text: agents with their source and sink topics, leader tasks, followers."""
    lines = ["Agents (every worker, one per partition set; concurrency 1):"]
    for a in agents(sink_name):
        lines.append(f"  {a.name:<8} {topic(a.source)} -> {', '.join(topic(s) for s in a.sinks)}")
        lines.append(f"  {'':<8} effects: {a.effects}")
    lines.append("Tasks:")
    for t in TASKS:
        outs = ", ".join(topic(s) if s in TOPIC_NAMES else s for s in t.sinks)
        lines.append(f"  {t.name:<12} {'leader' if t.leader_only else 'every worker':<12} {t.reads} -> {outs}")
    lines.append("Followers (every worker reads these topics in full):")
    for name, sources, why in FOLLOWERS:
        lines.append(f"  {name:<8} {', '.join(topic(s) for s in sources)}: {why}")
    return "\n".join(lines)


async def _guarded(ctx: StageContext, stage: str, event, handle, *held) -> bool:
    """Run one message's handler; False when the message is left unacked for its partition's next owner (a
    rebalance began while it waited to retry). An unexpected failure quarantines it (never a silent
    ack-and-skip); a cancellation mid-message exits without acking (Faust would ack it in a `finally`)."""
    from streams.observe.logs import log_context

    try:
        with log_context(stage=stage, key=ctx.unknown(event.key).key):  # every record logged here names them
            await handle(ctx, event.value, event.key, *held)
    except asyncio.CancelledError:
        exit_without_ack(f"{stage}: stopped in the middle of a message")
    except HandOver as exc:
        log.info("%s: %s; %r is left unacked for its partition's next owner", stage, exc, ctx.unknown(event.key).key)
        return False
    except Exception as exc:
        unknown = ctx.unknown(event.key)
        log.exception("%s: unexpected failure on %r", stage, unknown.key)
        try:
            await ctx.quarantine(unknown, stage, f"unexpected failure: {exc!r}")
        except Exception:
            log.exception("%s: could not even dead-letter %r", stage, unknown.key)
            raise
    return True


def _ack(event) -> None:
    commits.UNFINISHED.done(event.message.tp, event.message.offset)
    event.ack()


def _forget(app, message) -> None:
    """A message left to its partition's next owner: Faust's consumer stops tracking it (its rebalance waits
    for every tracked message, and its stream holds the last one until the next arrives). Never acked, so
    nothing is committed past it."""
    app.consumer.unacked.discard(message)


def _register_agent(app, ctx: StageContext, spec: Agent, topic) -> None:
    async def agent(stream):
        # manual acks: a message is acked when handled, or later when its objects were finalized in a batch
        ctx.health.revived(f"agent {spec.name}")  # Faust restarts a crashed agent: alive again
        try:
            async for event in stream.noack().events():
                message = event.message
                commits.UNFINISHED.start(message.tp, message.offset)
                held = held_ack.HeldAck(partial(_ack, event), partial(_forget, app, message))
                if await _guarded(ctx, spec.name, event, spec.handle, *((held,) if spec.holds_ack else ())):
                    held.finish()
                else:
                    held.abandon()
        except Exception as exc:  # liveness fails until Faust restarts it (a restart is what helps)
            ctx.health.died(f"agent {spec.name}", repr(exc))
            raise

    agent.__name__ = f"{spec.name}_agent"
    app.agent(topic, concurrency=1, name=spec.name)(agent)


def _register_task(app, ctx: StageContext, spec: Task) -> None:
    async def task():
        try:
            await spec.loop(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a task's loop never ends: liveness fails (a restart is what helps)
            ctx.health.died(f"task {spec.name}", repr(exc))
            raise
        ctx.health.died(f"task {spec.name}", "its loop returned")

    task.__name__ = spec.name.replace("-", "_")
    app.task(task)


def build(app, topics, runtime) -> StageContext:
    """Register the agents, tasks, followers and HTTP pages of the pipeline on `app`."""
    from streams.observe import web

    ctx = StageContext.create(app, topics, runtime)
    by_name = {"objects": topics.objects, "flows": topics.flows, "kflow": topics.kflow}
    for spec in agents(runtime.settings.sink):
        _register_agent(app, ctx, spec, by_name[spec.source])
    for spec in TASKS:
        _register_task(app, ctx, spec)

    @app.on_partitions_assigned.connect
    async def on_assigned(app, assigned, **kwargs):
        ctx.sync_needed.update(parse=True, sink=True)

    @app.on_partitions_revoked.connect
    async def on_revoked(app, revoked, **kwargs):
        commits.UNFINISHED.forget(revoked)  # their next owners read them from the committed offsets

    @app.on_before_shutdown.connect
    async def finalize_held(app, **kwargs):  # a clean stop deletes what it holds (consumer stopped, producer up)
        if ctx.deletes is not None:
            await ctx.deletes.flush(ctx, force=True)

    @app.task
    async def start_followers():
        ctx.metadata.start()
        ctx.outcome_follower.start()

    web.register(app, ctx)
    return ctx
