"""Stage poll (leader only): list the bucket → ObjectRef messages on `objects`, one per group of objects.

Publishes new objects, changed ones (new ETag: a new version), and ones still in the bucket `stuck_after`
seconds after they were published. Pure core: `PublishLedger` (what a listing makes due), `groups` (which
objects share a message) and `object_ref`.
Shell: `poll_loop`. The state lives in memory only: a new leader publishes everything it lists once, and
the parse stage's dedup (key + ETag) makes that harmless.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from streams import metrics
from streams.records import ObjectRef, now_ms
from streams.stages import bucket

log = logging.getLogger("blueflow")


@dataclass(frozen=True)
class Due:
    """An object to publish; `republish` is True when it was published before and is still in the bucket."""

    key: str
    etag: str
    size: int
    last_modified_ms: int
    republish: bool


class PublishLedger:
    """Remembers what was published (key -> ETag, time) and decides what a new listing makes due."""

    def __init__(self, stuck_after_s: float):
        self.stuck_after_s = stuck_after_s
        self._published: dict[str, tuple[str, float]] = {}

    def __len__(self) -> int:
        return len(self._published)

    def due(self, listing, now: float) -> list[Due]:
        """Objects of `listing` (items with key, etag, size, last_modified) to publish now.

        Keys no longer listed are forgotten, so the state is bounded by the bucket's size.
        """
        due: list[Due] = []
        listed: set[str] = set()
        for obj in listing:
            listed.add(obj.key)
            previous = self._published.get(obj.key)
            if previous is None or previous[0] != obj.etag:
                due.append(Due(obj.key, obj.etag, obj.size, _ms(obj.last_modified), False))
            elif now - previous[1] >= self.stuck_after_s:
                due.append(Due(obj.key, obj.etag, obj.size, _ms(obj.last_modified), True))
        for gone in set(self._published) - listed:
            del self._published[gone]
        return due

    def mark_published(self, item: Due, now: float) -> None:
        self._published[item.key] = (item.etag, now)

    def clear(self) -> None:
        self._published.clear()


def _ms(value) -> int:
    """Milliseconds since the epoch of a datetime or of an int that already is milliseconds (None → 0)."""
    if value is None:
        return 0
    if hasattr(value, "timestamp"):
        return int(value.timestamp() * 1000)
    return int(value)


def object_ref(bucket_name: str, item: Due) -> ObjectRef:
    return ObjectRef(bucket=bucket_name, key=item.key, etag=item.etag.strip('"'), size=item.size,
                     last_modified=item.last_modified_ms, published_at=now_ms(), republish=item.republish)


GZIP_BYTES_PER_FLOW = 60  # listed size of a flow-log object per flow (generator and IBM samples: ~60)
GROUP_FILL = 0.9  # aim a little below chunk_flows: sizes vary, and a group that overflows costs a 2nd message


def groups(due: list[Due], max_objects: int, chunk_flows: int) -> list[list[Due]]:
    """The due objects in key order (objects of one subnet are neighbours: one Kentik device), cut into
    groups of at most `max_objects` whose estimated flows (listed size / GZIP_BYTES_PER_FLOW) fill about
    GROUP_FILL of one flows message of `chunk_flows`; an object bigger than that is a group of its own."""
    budget = chunk_flows * GZIP_BYTES_PER_FLOW * GROUP_FILL
    out: list[list[Due]] = []
    current: list[Due] = []
    size = 0
    for item in sorted(due, key=lambda d: d.key):
        if current and (len(current) >= max(1, max_objects) or size + item.size > budget):
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += item.size
    if current:
        out.append(current)
    return out


async def poll_loop(ctx) -> None:
    """Leader task: every `poll_interval`, list the bucket and publish what is due."""
    ledger = PublishLedger(ctx.settings.stuck_after)
    while True:
        try:
            if await _poll_once(ctx, ledger):
                await asyncio.sleep(ctx.settings.poll_interval)
            else:
                await asyncio.sleep(1.0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("poller: %s", ctx.rt.scrub(str(exc)))
            await asyncio.sleep(ctx.settings.poll_interval)


async def _poll_once(ctx, ledger: PublishLedger) -> bool:
    """One listing if this worker leads (True), else forget what was published (False)."""
    leader = ctx.app.is_leader()
    metrics.IS_LEADER.set(1 if leader else 0)
    if not leader:
        ledger.clear()
        return False
    listing = await ctx.rt.run_sync(bucket.list_bucket, ctx)
    metrics.OBJECTS_LISTED.inc(len(listing))
    ctx.health.pending = bool(listing)
    s = ctx.settings
    for group in groups(ledger.due(listing, time.time()), s.group_objects, s.chunk_flows):
        message = ObjectRef.of_group([object_ref(s.bucket_name, item) for item in group])
        await ctx.send(ctx.topics.objects, group[0].key, message)
        for item in group:
            ledger.mark_published(item, time.time())
            metrics.OBJECTS_PUBLISHED.labels(reason="stuck" if item.republish else "new").inc()
    return True
