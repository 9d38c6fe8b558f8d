"""What happened to each object (key + ETag): delivered, or quarantined — the memory behind "never twice".

Also the delivery progress of objects split into several chunks (topic `progress`), so a worker that takes
over a partition in the middle of an object knows which chunks Kentik already accepted.

Every worker follows the `ledger` (delivered objects) and `deadletter` (quarantined objects) topics in full
and remembers key → (ETag, outcome, when). The parse stage consults it before downloading: an object seen
again with the same ETag — a second listing, a new leader, a replay of `objects` — is skipped; a changed
ETag is new content and is processed. Entries older than the window are forgotten, so memory is bounded
by the objects of that window, not by the bucket's history.
"""
from __future__ import annotations

import threading
import time

DELIVERED = "delivered"
QUARANTINED = "quarantined"


class OutcomeStore:
    """key → (etag, outcome, at_s), the key scoped by source (streams.formats.records.scoped_key); thread-safe; fed
    by the follower and by this worker's own writes."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._entries: dict[str, tuple[str, str, float]] = {}
        self._lock = threading.Lock()
        self._last_prune = 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def record(self, key: str, etag: str, outcome: str, at_s: float | None = None) -> None:
        at_s = time.time() if at_s is None else at_s
        with self._lock:
            previous = self._entries.get(key)
            # a quarantine of an ETag that was already delivered (e.g. a late duplicate) must not hide it
            if previous and previous[0] == etag and previous[1] == DELIVERED and outcome == QUARANTINED:
                return
            self._entries[key] = (etag, outcome, at_s)
            if at_s - self._last_prune > 60:  # records carry their own time: prune relative to the newest
                self._prune(at_s)

    def outcome(self, key: str, etag: str) -> str | None:
        """DELIVERED or QUARANTINED if this exact content (key + ETag) had that outcome; else None."""
        entry = self._entries.get(key)
        if entry is None or entry[0] != etag:
            return None
        return entry[1]

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        for key in [k for k, (_, _, at) in self._entries.items() if at < horizon]:
            del self._entries[key]
        self._last_prune = now


class ProgressStore:
    """key → the newest Progress record (ETag, chunks, done chunk numbers) of objects being delivered."""

    def __init__(self):
        self._entries: dict = {}

    def record(self, progress) -> None:
        self._entries[progress.skey] = progress

    def forget(self, key: str) -> None:
        self._entries.pop(key, None)

    def get(self, key: str, etag: str):
        entry = self._entries.get(key)
        return entry if entry is not None and entry.etag == etag else None

    def __len__(self) -> int:
        return len(self._entries)


class OutcomeFollower:
    """Feeds an OutcomeStore from `ledger` and `deadletter`, and a ProgressStore from `progress`."""

    def __init__(self, settings, store: OutcomeStore, progress: ProgressStore):
        from streams.state.follower import TopicFollower

        self.store = store
        self.progress = progress
        self.ledger_topic = settings.topic("ledger")
        self.progress_topic = settings.topic("progress")
        self.follower = TopicFollower(settings, [self.ledger_topic, settings.topic("deadletter"),
                                                 self.progress_topic], self._on_message, "outcomes")
        self.caught_up = self.follower.caught_up

    def start(self) -> None:
        self.follower.start()

    def _on_message(self, topic: str, key: bytes, value: bytes) -> None:
        from streams.formats.records import DeadLetter, LedgerEntry, Progress

        if topic == self.progress_topic:
            if value is None:  # tombstone: the object finished
                self.progress.forget(key.decode())
            else:
                self.progress.record(Progress.decode(value))
        elif topic == self.ledger_topic:
            entry = LedgerEntry.decode(value)
            self.store.record(entry.skey, entry.etag, DELIVERED, entry.delivered_at / 1000)
            self.progress.forget(entry.skey)
        else:
            letter = DeadLetter.decode(value)
            if letter.key and letter.etag:
                self.store.record(letter.skey, letter.etag, QUARANTINED, letter.at / 1000)
