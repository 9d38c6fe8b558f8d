"""Which listed objects the leader publishes: new ones, changed ones, and ones stuck for too long.

Pure bookkeeping; the leader loop in `streams.stages` does the listing and the sending. The state lives in
memory only: a new leader publishes everything it lists once, and the parse stage's dedup table (key + ETag)
makes that harmless.
"""
from __future__ import annotations

from dataclasses import dataclass


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
