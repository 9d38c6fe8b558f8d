"""The ack of a kflow message held while the objects it completed wait in a delete batch
(streams/stages/finalize/finalize.py): the sink's agent hands the message's ack to the sink, which hands it to
the batch its objects join; the ack runs once the handler is done and every batch it added objects to was
finalized, so a worker that dies with a batch pending leaves its messages to be redelivered (their flows are
not sent again: their progress says accepted)."""
from __future__ import annotations

from typing import Callable


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
