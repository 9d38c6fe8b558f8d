"""What a worker may commit: never past a message it started and has not acked.

Faust commits, per partition, the end of the run of acked offsets that starts at the head of its acked list,
and takes a head that is one past the committed offset for no gap (`min(acked) - committed > 1`); when the
committed offset is unknown (a partition never committed, or one just revoked: Faust forgets its offsets
before it waits for the unacked messages) it does not look at the head at all. Our acks are not in offset
order — a kflow message's ack is held while its objects wait in a delete batch (streams/stages/finalize/),
and a message left to its next owner during a rebalance is never acked — so a later message acked first let
Faust commit past the held one. If that one's batch was then dropped, no worker read it again and its
objects waited in the bucket until republished (`--stuck_after`, 30 min; seen as "bucket not drained" in the
fault scenarios `overwrite` and `delete403`).

Pure core: `commit_point`. Shell: `Unfinished` (per partition, the offsets the agents started and did not
ack yet; forgotten when the partition is revoked) and `install`, which makes Faust's consumer ask
`commit_point` for the offset to commit.
"""
from __future__ import annotations

import logging
import threading

log = logging.getLogger("blueflow")


def commit_point(acked: list[int], committed: int | None, unfinished: int | None) -> int | None:
    """The offset to commit for one partition (the next one to read), or None for nothing new.

    `acked`: sorted offsets acked since the last commit (offsets Kafka never delivers already added);
    `committed`: the committed offset when known; `unfinished`: the lowest offset started and not acked.
    The run of acked offsets must start at `committed` (when known) and ends before the first missing or
    unfinished offset."""
    if not acked or (committed is not None and acked[0] != committed):
        return None
    end = acked[0]
    for offset in acked[1:]:
        if offset > end + 1:
            break
        end = max(end, offset)
    point = end + 1
    if unfinished is not None and unfinished < point:
        point = unfinished
    return point if point > acked[0] else None


class Unfinished:
    """Per partition, the offsets of the messages the agents started and have not acked (held, or left to the
    partition's next owner). Written on the event loop, read by commits (the loop as well)."""

    def __init__(self):
        self._by_tp: dict = {}
        self._lock = threading.Lock()

    def start(self, tp, offset: int) -> None:
        with self._lock:
            self._by_tp.setdefault(tp, set()).add(offset)

    def done(self, tp, offset: int) -> None:
        with self._lock:
            offsets = self._by_tp.get(tp)
            if offsets is not None:
                offsets.discard(offset)

    def lowest(self, tp) -> int | None:
        with self._lock:
            offsets = self._by_tp.get(tp)
            return min(offsets) if offsets else None

    def forget(self, tps) -> None:
        """The partitions were revoked: their next owner reads them from the committed offset."""
        with self._lock:
            for tp in tps:
                self._by_tp.pop(tp, None)


UNFINISHED = Unfinished()


def install(unfinished: Unfinished = UNFINISHED) -> None:
    """Make Faust's consumer commit by `commit_point` (once per process)."""
    from faust.transport.consumer import Consumer

    if getattr(Consumer._new_offset, "_blueflow_commits", False):
        return

    def _new_offset(self, tp):
        acked = self._acked[tp]
        if not acked:
            return None
        gaps = self._gap[tp]
        if gaps:  # offsets Kafka never delivers (compaction, transaction markers) count as acked
            top = max(acked)
            for interval in gaps.overlap(0, top):
                acked.extend(range(interval.begin, interval.end))
            gaps.chop(0, top + 1)
        acked[:] = sorted(set(acked))
        point = commit_point(acked, self._committed_offset[tp], unfinished.lowest(tp))
        if point is None:
            return None
        kept = [offset for offset in acked if offset >= point]
        self._acked_index[tp].difference_update(offset for offset in acked if offset < point)
        acked[:] = kept
        return point

    _new_offset._blueflow_commits = True  # type: ignore[attr-defined]
    Consumer._new_offset = _new_offset
