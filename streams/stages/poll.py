"""Stage poll (leader only): list every source's bucket → ObjectRef messages on `objects`.

Publishes new objects, changed ones (new ETag: a new version), and ones still in the bucket `stuck_after`
seconds after they were published, one message per group of objects of one source. Pure core: `PublishLedger`
(what a listing makes due), `fair_order` (round-robin over the sources within each source's budget), `groups`
(which objects share a message), `fair_groups` and `object_ref`. Shell: `poll_loop`. The state
lives in memory only: a new leader publishes everything it lists once, and the parse stage's dedup
(source + key + ETag) makes that harmless.

Each source is listed on its own. A failing listing is the worker's failure (readiness names it) unless
other sources share the worker (streams/stages/retry.py `holds_worker`); then it is logged, counted and retried at
the next listing while the others are published as usual; its publish ledger is forgotten, so when it
answers again every object still in its bucket is published once more (objects its COS failure left waiting
included).
Fairness: at most `source_budget` objects of a source are published and unfinished at a time, and a
listing publishes the sources' due objects interleaved, so a huge backlog in one source cannot starve the
others.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from streams.observe import metrics, source_metrics
from streams.formats.records import ObjectRef, now_ms, scoped_key
from streams.stages.retry import POLICIES, Transient, holds_worker
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
        """Objects of `listing` (items with key, etag, size, last_modified in epoch ms) to publish now.

        Keys no longer listed are forgotten, so the state is bounded by the bucket's size.
        """
        due: list[Due] = []
        listed: set[str] = set()
        for obj in listing:
            listed.add(obj.key)
            previous = self._published.get(obj.key)
            if previous is None or previous[0] != obj.etag:
                due.append(Due(obj.key, obj.etag, obj.size, obj.last_modified, False))
            elif now - previous[1] >= self.stuck_after_s:
                due.append(Due(obj.key, obj.etag, obj.size, obj.last_modified, True))
        for gone in set(self._published) - listed:
            del self._published[gone]
        return due

    def mark_published(self, item: Due, now: float) -> None:
        self._published[item.key] = (item.etag, now)

    def clear(self) -> None:
        self._published.clear()

    def outstanding(self, listing, finished) -> int:
        """Objects of `listing` published (same ETag) and not yet `finished(key, etag)`: this source's work
        already queued in the pipeline."""
        count = 0
        for obj in listing:
            previous = self._published.get(obj.key)
            if previous is not None and previous[0] == obj.etag and not finished(obj.key, obj.etag):
                count += 1
        return count


def fair_order(due: dict[str, list[Due]], room: dict[str, int | None]) -> tuple[list[tuple[str, Due]], dict]:
    """Round-robin over the sources: the first due object of each, then the second, ... — at most `room[s]`
    new objects of source s (None: no limit; republished ones are already counted as unfinished, so they always
    go). Returns (what to publish in that order, how many of each were held back)."""
    order: list[tuple[str, Due]] = []
    taken = {name: _within(items, room.get(name)) for name, items in due.items()}
    longest = max((len(items) for items in taken.values()), default=0)
    for i in range(longest):
        for name, items in taken.items():
            if i < len(items):
                order.append((name, items[i]))
    held = {name: len(due[name]) - len(taken[name]) for name in due if len(due[name]) > len(taken[name])}
    return order, held


def _within(items: list[Due], room: int | None) -> list[Due]:
    if room is None:
        return items
    new = [item for item in items if not item.republish][:max(0, room)]
    return [item for item in items if item.republish] + new


def object_ref(bucket_name: str, item: Due, source: str = "") -> ObjectRef:
    return ObjectRef(bucket=bucket_name, key=item.key, etag=item.etag.strip('"'), size=item.size,
                     last_modified=item.last_modified_ms, published_at=now_ms(), republish=item.republish,
                     source=source)


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


def fair_groups(order: list[tuple[str, Due]], max_objects: int, chunk_flows: int) -> list[tuple[str, list[Due]]]:
    """`fair_order`'s objects cut into groups of one source each (`groups`), the sources' groups interleaved
    round-robin (a group never mixes sources: each source has its own clients, keep/dry-run and ledger)."""
    per_source: dict[str, list[Due]] = {}
    for name, item in order:
        per_source.setdefault(name, []).append(item)
    cut = {name: groups(items, max_objects, chunk_flows) for name, items in per_source.items()}
    out: list[tuple[str, list[Due]]] = []
    for i in range(max((len(g) for g in cut.values()), default=0)):
        out.extend((name, g[i]) for name, g in cut.items() if i < len(g))
    return out


LISTING_STEP = "leader: listing the bucket"  # health's name of a failing listing (dependency cos)
LISTING_RETRY_S = POLICIES["cos"].loop_retry_s  # a failed listing is tried again this soon (health forgets a
# failure unseen for 120 s)


async def poll_loop(ctx) -> None:
    """Leader task: every `poll_interval`, list every source and publish what is due (sooner while a budget
    held objects back)."""
    ledgers = {s.name: PublishLedger(ctx.settings.stuck_after) for s in ctx.sources.all}
    while True:
        try:
            listed = await _poll_once(ctx, ledgers)
            ctx.health.ok(LISTING_STEP)
            ctx.health.ok("leader: publishing objects")
            if listed is None:
                await asyncio.sleep(1.0)
            else:
                await asyncio.sleep(ctx.settings.poll_interval if not listed else min(ctx.settings.poll_interval, 5.0))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # also with nothing pending: a listing that keeps failing is reported (readiness) with its cause
            reason = ctx.rt.scrub(str(exc))
            ctx.health.failing(LISTING_STEP if isinstance(exc, Transient) else "leader: publishing objects", reason,
                               "cos" if isinstance(exc, Transient) else "")
            log.warning("poller: %s", reason)
            await asyncio.sleep(min(ctx.settings.poll_interval, LISTING_RETRY_S))


LISTING_GRACE_S = 0.5  # after the first listing of a poll, how long the others are waited for to be interleaved


async def _poll_once(ctx, ledgers: dict[str, PublishLedger]) -> bool | None:
    """One listing of every source if this worker leads (True when a budget held objects back), else forget
    what was published (None). The listings run concurrently and each is published as soon as it is in (those
    in within LISTING_GRACE_S of the first together, interleaved): a slow or failing source's listing (a huge
    bucket's pages, or the SDK's backoff between attempts on a 503) never holds back the others' new objects."""
    leader = ctx.app.is_leader()
    metrics.IS_LEADER.set(1 if leader else 0)
    if not leader:
        for ledger in ledgers.values():
            ledger.clear()
        return None
    tasks = {asyncio.ensure_future(_list(ctx, s, ledgers[s.name])): s for s in ctx.sources.all}
    waiting, held, pending = set(tasks), False, False
    while waiting:
        done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if waiting:
            more, waiting = await asyncio.wait(waiting, timeout=LISTING_GRACE_S)
            done |= more
        listed = [(tasks[t], t.result()) for t in tasks if t in done]
        pending = any(listing for _, listing in listed) or pending
        ctx.health.pending = pending
        held = await _publish(ctx, ledgers, [(s, listing) for s, listing in listed if listing is not None]) or held
    return held


async def _publish(ctx, ledgers: dict[str, PublishLedger], listed: list) -> bool:
    """Publish what the (source, listing) pairs make due, interleaved; True when a budget held objects back."""
    due, room, by_name = {}, {}, {}
    for source, listing in listed:
        ledger = ledgers[source.name]
        due[source.name] = ledger.due(listing, time.time())
        by_name[source.name] = source
        if ctx.failures.shared(source):  # the budget shares the pipeline among the sources: fairness
            room[source.name] = ctx.settings.source_budget - ledger.outstanding(listing, _finished(ctx, source))
    order, held = fair_order(due, room)
    for name, count in held.items():
        source_metrics.HELD_BACK.labels(source=name).inc(count)
    for name, group in fair_groups(order, ctx.settings.group_objects, ctx.settings.chunk_flows):
        source = by_name[name]
        message = ObjectRef.of_group([object_ref(source.bucket, item, source.name) for item in group])
        await ctx.send(ctx.topics.objects, scoped_key(source.name, group[0].key), message)
        for item in group:
            ledgers[name].mark_published(item, time.time())
            metrics.OBJECTS_PUBLISHED.labels(reason="stuck" if item.republish else "new").inc()
        source_metrics.PUBLISHED.labels(source=name).inc(len(group))
    return bool(held)


def _finished(ctx, source):
    """finished(key, etag): whether the object of `source` has an outcome (delivered or quarantined)."""
    return lambda key, etag: ctx.outcomes.outcome(scoped_key(source.name, key), etag) is not None


async def _list(ctx, source, ledger: PublishLedger):
    """The source's listing, or None when it failed (logged; the others go on; its ledger is forgotten so
    that everything still in its bucket is published again once it answers)."""
    try:
        listing = await ctx.rt.run_sync(bucket.list_source, ctx, source)
    except Transient as exc:
        if holds_worker(ctx.failures.shared(source)):
            raise  # the worker's own failure: poll_loop reports it (readiness) and lists again
        ledger.clear()
        log.warning("poller: source %s: %s; the other sources go on", source.name, ctx.rt.scrub(str(exc)))
        return None
    metrics.OBJECTS_LISTED.inc(len(listing))
    source_metrics.LISTED.labels(source=source.name).inc(len(listing))
    source_metrics.BACKLOG.labels(source=source.name).set(len(listing))
    oldest = min((o.last_modified for o in listing if o.last_modified), default=0)
    age = max(0.0, time.time() - oldest / 1000) if oldest else 0.0
    source_metrics.OLDEST_AGE.labels(source=source.name).set(age)
    backlog = ctx.failures.backlog[source.name]
    backlog.objects, backlog.oldest_age_s = len(listing), age
    return listing
