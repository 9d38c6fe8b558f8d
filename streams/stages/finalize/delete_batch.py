"""Finalize in batches across kflow messages (off unless `delete_batch_seconds` > 0): the objects that
several messages completed within `delete_batch_seconds` are finalized together — one version check and one DeleteObjects for up to 1,000 keys
(streams/stages/finalize/finalize.py), instead of one of each per message.

The rule is unchanged: only objects whose every chunk Kentik accepted are ever added, and each is deleted
only if it still is the version read. Waiting costs nothing in safety: an object whose delete has not run
yet is still in the bucket, so a worker that dies meanwhile leaves it to be delivered again; it is never lost
and never deleted early. The kflow message that completed an object is acked only once the object was finalized
(`HeldAck`: the agent's manual ack waits for every batch the message added to), so a worker that dies with a
batch pending leaves its messages to be redelivered, and their flows are not sent again (their progress says
accepted). A worker that stops cleanly finalizes what it holds first (`flush(force=True)`).

Pure core: `due`, `HeldAck`. Shell: `DeleteBatcher` (add, flush) and `flush_loop` (the timer of every worker).
"""
from __future__ import annotations

import asyncio
import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Callable

from connectors.cos import PAGE_SIZE

log = logging.getLogger("blueflow")

TICK_S = 0.25


def due(first_added: float, count: int, now: float, wait_s: float, limit: int = PAGE_SIZE) -> bool:
    """Whether a batch is finalized now: its oldest object waited `wait_s`, or it holds `limit` objects
    (a DeleteObjects' worth)."""
    return count >= limit or now - first_added >= wait_s


class HeldAck:
    """The ack of one message, held while batches it added objects to wait to be finalized: `ack` runs once,
    when the message's handler is done and no batch holds it any more."""

    def __init__(self, ack: Callable[[], object]):
        self._ack, self.holds, self.done, self.acked = ack, 0, False, False

    def hold(self) -> None:
        self.holds += 1

    def release(self) -> None:
        self.holds -= 1
        self._maybe_ack()

    def finish(self) -> None:
        """The handler returned (or quarantined the message): ack now unless a batch still holds it."""
        self.done = True
        self._maybe_ack()

    def _maybe_ack(self) -> None:
        if self.done and self.holds <= 0 and not self.acked:
            self.acked = True
            self._ack()


CURRENT_ACK: ContextVar[HeldAck | None] = ContextVar("blueflow_current_ack", default=None)


@dataclass
class _Batch:
    source: object  # streams.config.sources.Source
    bucket: str
    first_added: float
    items: dict = field(default_factory=dict)  # (skey, etag) -> (KflowPart, ObjectProgress)
    acks: list = field(default_factory=list)  # HeldAck of the messages whose objects these are


class DeleteBatcher:
    """Completed objects waiting to be finalized, one batch per (source, bucket)."""

    def __init__(self, wait_s: float, clock=time.monotonic):
        self.wait_s, self.clock = wait_s, clock
        self._batches: dict[tuple[str, str], _Batch] = {}
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return sum(len(b.items) for b in self._batches.values())

    def add(self, source, bucket: str, completed: list, acks: list | None = None) -> None:
        """Hold `completed` ((KflowPart, ObjectProgress) pairs of `source`) for the next finalize, and the ack
        of the message being handled (CURRENT_ACK) until then; `acks`: ones already held (a failed batch)."""
        batch = self._batches.get((source.name, bucket))
        if batch is None:
            batch = self._batches[(source.name, bucket)] = _Batch(source, bucket, self.clock())
        for part, progress in completed:
            batch.items[(part.skey, part.etag)] = (part, progress)
        if acks is not None:
            batch.acks.extend(acks)
        elif (held := CURRENT_ACK.get()) is not None:
            held.hold()
            batch.acks.append(held)

    def _due(self, force: bool) -> list[tuple[str, str]]:
        now = self.clock()
        return [key for key, batch in self._batches.items()
                if force or due(batch.first_added, len(batch.items), now, self.wait_s)]

    async def flush(self, ctx, force: bool = False) -> None:
        """Finalize every batch that is due (all of them with `force`). One flush at a time; nothing due: no
        wait (the sink never queues behind the timer's flush for batches that are not its business)."""
        from streams.stages.finalize.finalize import finalize_now

        if not self._due(force):
            return
        async with self._lock:
            for key in self._due(force):
                batch = self._batches.pop(key)
                try:
                    await finalize_now(ctx, batch.source, batch.bucket, list(batch.items.values()))
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("finalize: %d objects could not be finalized; trying again", len(batch.items))
                    self.add(batch.source, batch.bucket, list(batch.items.values()), batch.acks)
                    continue
                for held in batch.acks:
                    held.release()


async def flush_loop(ctx) -> None:
    """Every worker: finalize the batches that are due, also while no kflow message arrives."""
    batcher = ctx.deletes
    if batcher is None:
        return
    while True:
        await asyncio.sleep(TICK_S)
        if len(batcher):
            await batcher.flush(ctx)
