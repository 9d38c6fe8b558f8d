"""How a worker leaves: asked to (SIGTERM/SIGINT: exit status 0) or not (Faust stopped the app on a
failure: status 1, with one line saying so), and leaving in the middle of a message without acking it:
the process when it stops, the message alone when a rebalance takes the worker's partitions (`HandOver`).

Why exiting is the right stop mid-message: Faust waits for the current event before it stops and acks it
when the agent returns or raises, so neither is allowed while a message is unfinished. The process leaves
like a crash (nothing committed past the unfinished message) and the worker that takes over the partition
redoes it.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger("blueflow")


class HandOver(BaseException):
    """A rebalance began while this message was waiting to retry a failing call: the handler leaves it
    unacked (nothing committed past it) and its partition's next owner — maybe this worker again — redoes
    it. Faust's rebalance waits for every started message to be acked, so a handler retrying a refused
    COS delete or a down Kentik must not keep it waiting past the group's rebalance timeout (the member
    would be dropped from the group and its partitions handed around again). A BaseException, as
    CancelledError is: no `except Exception` on the way may take it for a failure of the object."""


_STOP_ASKED: list[str] = []  # why the process was asked to stop (a signal), once it was


def ask_stop(why: str) -> None:
    """The process was asked to stop (SIGTERM, SIGINT): a stop from now on is a normal one (exit status 0)."""
    if not _STOP_ASKED:
        _STOP_ASKED.append(why)


def stop_asked() -> bool:
    return bool(_STOP_ASKED)


def stop_status(asked: bool, code: int) -> tuple[int, str]:
    """(exit status, the one line saying why) of a worker that stopped with `code`: a stop nobody asked for
    (no signal) is a failure even when the worker's own code says 0."""
    if code:
        return code, f"blueflow worker stopped after a failure (exit status {code}); the log above says why"
    if not asked:
        return 1, ("blueflow worker stopped without being asked to (no SIGTERM/SIGINT): Faust stopped the app on "
                   "a failure; the log above says why. Exit status 1")
    return 0, ""


def exit_without_ack(why: str) -> None:
    """Leave the process now, committing nothing more (see the module doc); status 1 unless asked to stop."""
    code, line = stop_status(stop_asked(), 0)
    log.warning("%s: exiting without committing the current message; the next worker of this partition "
                "processes it again", why)
    if line:
        log.critical("%s", line)
    logging.shutdown()
    os._exit(code)
