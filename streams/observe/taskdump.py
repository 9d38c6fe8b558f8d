"""Operator tool: `kill -USR1 <worker pid>` logs the stack of every asyncio task and every thread.

What a stuck worker is waiting for is then in its log (logger `blueflow.taskdump`, level WARNING): each
task's name, state and the coroutine frames it is suspended in, and each thread's current stack (the
I/O pool `blueflow-io_N`, the followers, Kafka's own threads). Frames only, never local variables, so no
setting or secret reaches the log.

The signal handler only starts a thread that writes the dump, so it works while the event loop is busy or
blocked (the loop's tasks are then read from that thread: a snapshot, good enough to see where each waits).
"""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import threading
import traceback

log = logging.getLogger("blueflow.taskdump")


def _frames_text(frames) -> list[str]:
    return [line.rstrip("\n") for line in traceback.format_list(traceback.StackSummary.extract(
        ((f, f.f_lineno) for f in frames), lookup_lines=True, capture_locals=False))]


def task_lines(task: asyncio.Task) -> list[str]:
    """A task's name, state and the frames of its coroutine chain (innermost last)."""
    coro = task.get_coro()
    state = "done" if task.done() else "pending"
    head = f"TASK {task.get_name()} ({getattr(coro, '__qualname__', type(coro).__name__)}) {state}"
    frames = []
    for _ in range(200):  # follow `await` through coroutines, async generators and __await__ wrappers
        if coro is None:
            break
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        coro = _awaited(coro)
    waiter = getattr(task, "_fut_waiter", None)
    lines = [head, *_frames_text(frames)]
    if waiter is not None:
        lines.append(f"  awaiting {waiter!r}"[:400])
    return lines


def _awaited(obj):
    """What `obj` is suspended on: the next coroutine of the chain, or None (a future: listed on its own)."""
    nxt = getattr(obj, "cr_await", None) or getattr(obj, "ag_await", None) or getattr(obj, "gi_yieldfrom", None)
    if nxt is None or isinstance(nxt, asyncio.Future):
        return None
    if not any(hasattr(nxt, a) for a in ("cr_frame", "ag_frame", "gi_frame")):
        # `await x` where x.__await__() returned a C wrapper (e.g. Faust's actors): its coroutine is a referent
        inner = [r for r in gc.get_referents(nxt) if hasattr(r, "cr_frame") or hasattr(r, "ag_frame")]
        return inner[0] if inner else None
    return nxt


def thread_lines() -> list[str]:
    """Every thread's name and current stack (innermost last)."""
    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():  # noqa: SLF001 - the documented way to get them
        out.append(f"THREAD {names.get(ident, ident)}")
        out += [line.rstrip("\n") for line in traceback.format_stack(frame)]
    return out


def dump_text(loop: asyncio.AbstractEventLoop | None) -> str:
    """The whole dump as text: tasks of `loop` and of the loops other threads run (Faust runs the Kafka
    consumer on a thread with its own loop), then every thread's stack."""
    lines: list[str] = []
    loops = [loop] if loop is not None else []
    loops += [t.loop for t in threading.enumerate()
              if isinstance(getattr(t, "loop", None), asyncio.AbstractEventLoop) and t.loop not in loops]
    for each in loops:
        try:
            tasks = list(asyncio.all_tasks(each))
        except RuntimeError as exc:  # the set changed under us while the loop ran
            tasks = []
            lines.append(f"(tasks not listed: {exc})")
        lines.append(f"=== {len(tasks)} asyncio tasks of {each!r}"[:200])
        for task in sorted(tasks, key=lambda t: t.get_name()):
            try:
                lines += task_lines(task)
            except Exception as exc:  # noqa: BLE001 - a racing task must not spoil the dump
                lines.append(f"TASK {task.get_name()}: not readable ({exc!r})")
    threads = thread_lines()
    lines.append(f"=== {sum(1 for line in threads if line.startswith('THREAD '))} threads")
    lines += threads
    return "\n".join(lines)


def install(loop: asyncio.AbstractEventLoop, signum: int = signal.SIGUSR1) -> None:
    """On `signum`, log a dump of `loop`'s tasks and of every thread (from a short-lived thread)."""

    def write() -> None:
        log.warning("task dump (SIGUSR1)\n%s\n=== end of task dump", dump_text(loop))

    def on_signal(_signum, _frame) -> None:
        threading.Thread(target=write, name="blueflow-taskdump", daemon=True).start()

    signal.signal(signum, on_signal)
