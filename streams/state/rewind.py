"""After a rebalance, read partitions that were never committed from their beginning again (issue 16).

Faust 0.15 drops the messages it had fetched but not yet processed when partitions are revoked (it clears
the agents' buffers and discards the batch in progress) and relies on "seek back to committed offsets"
(`perform_seek` -> aiokafka `seek_to_committed`) to read them again. aiokafka only seeks partitions whose
committed offset is > 0: a partition with nothing committed yet keeps its fetch position, after the dropped
messages. The worker that keeps such a partition then processes the later messages, commits past the
dropped ones, and they are never processed: their objects wait in the bucket, nobody has them in flight,
every worker looks idle and healthy (seen in the `iamvpc` fault scenario: the enrich stage was blocked when
the second worker joined, and the first 8 messages of `flows` partition 3 were committed without a `kflow`).

`install()` wraps aiokafka's `seek_to_committed` so that partitions without a committed offset are reset to
their beginning (the group's `auto_offset_reset=earliest`), like a fresh assignment. What was processed but
not committed is processed again: at-least-once, as for every other rebalance (the stages deduplicate).
"""
from __future__ import annotations

import logging

log = logging.getLogger("blueflow")


def uncommitted(committed: dict) -> list:
    """The partitions of a `seek_to_committed` result that it did not seek (no committed offset > 0)."""
    return sorted((tp for tp, offset in committed.items() if not offset or offset <= 0), key=str)


def install() -> None:
    """Patch aiokafka's consumer once per process (idempotent)."""
    from aiokafka import AIOKafkaConsumer

    original = AIOKafkaConsumer.seek_to_committed
    if getattr(original, "_blueflow_rewind", False):
        return

    async def seek_to_committed(self, *partitions):
        committed = await original(self, *partitions)
        rewind = uncommitted(committed)
        if rewind:
            log.info("rebalance: %d partitions without a committed offset are read from their beginning again",
                     len(rewind))
            await self.seek_to_beginning(*rewind)
        return committed

    seek_to_committed._blueflow_rewind = True  # type: ignore[attr-defined]
    AIOKafkaConsumer.seek_to_committed = seek_to_committed
