"""The ack of a kflow message held while the objects it completed wait in a delete batch
(streams/stages/finalize/finalize.py): the sink's agent hands the message's ack to the sink, which hands it to
the batch its objects join; the ack runs once the handler is done and every batch it added objects to was
finalized, so a worker that dies with a batch pending leaves its messages to be redelivered (their flows are
not sent again: their progress says accepted). A batch dropped because a rebalance began while its delete was
retried abandons its messages: never acked, and Faust's consumer stops waiting for them (its rebalance waits
for every message it tracks, and its stream keeps the last one referenced until the next arrives)."""
from __future__ import annotations

from typing import Callable


class HeldAck:
    """The ack of one message, held while batches it added objects to wait to be finalized: `ack` runs once,
    when the message's handler is done and no batch holds it any more."""

    def __init__(self, ack: Callable[[], object], forget: Callable[[], object] = lambda: None):
        self._ack, self._forget = ack, forget
        self.holds, self.done, self.acked, self.abandoned = 0, False, False, False

    def hold(self) -> None:
        self.holds += 1

    def release(self) -> None:
        self.holds -= 1
        self._maybe_ack()

    def finish(self) -> None:
        """The handler returned (or quarantined the message): ack now unless a batch still holds it."""
        self.done = True
        self._maybe_ack()

    def abandon(self) -> None:
        """Left to the partition's next owner (a rebalance): never acked from now on, and forgotten by the
        consumer, so nothing is committed past it and the rebalance does not wait for it."""
        if not self.acked and not self.abandoned:
            self.abandoned = True
            self._forget()

    def _maybe_ack(self) -> None:
        if self.done and self.holds <= 0 and not self.acked and not self.abandoned:
            self.acked = True
            self._ack()
