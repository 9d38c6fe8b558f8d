"""kill -USR1 on a worker logs every task's await chain and every thread's stack (operator tool)."""
import asyncio
import logging
import os
import signal
import threading
import time

from streams.observe import taskdump


class Wrapped:
    """Like a Faust actor: awaited through a C-level __await__ wrapper."""

    def __init__(self, coro):
        self.coro = coro

    def __await__(self):
        return self.coro.__await__()


async def waits_for_metadata(event):
    await event.wait()


async def agent(event):
    await Wrapped(waits_for_metadata(event))


def test_a_task_shows_the_whole_await_chain_down_to_the_future():
    async def main():
        event = asyncio.Event()
        task = asyncio.create_task(agent(event), name="enrich")
        await asyncio.sleep(0.01)
        lines = taskdump.task_lines(task)
        event.set()
        await task
        return lines

    lines = asyncio.run(main())
    assert lines[0] == "TASK enrich (agent) pending"
    text = "\n".join(lines)
    assert text.index("in agent") < text.index("in waits_for_metadata") < text.index("awaiting <Future pending")


def test_sigusr1_logs_tasks_and_threads_without_locals(caplog):
    secret = "BFSECRET-never-logged"
    stop = threading.Event()

    def blocked_io(token=secret):
        stop.wait(5)

    worker = threading.Thread(target=blocked_io, name="blueflow-io_7", daemon=True)
    worker.start()

    async def main():
        loop = asyncio.get_running_loop()
        previous = signal.getsignal(signal.SIGUSR1)
        taskdump.install(loop)
        try:
            with caplog.at_level(logging.WARNING, logger="blueflow.taskdump"):
                os.kill(os.getpid(), signal.SIGUSR1)
                deadline = time.monotonic() + 5
                while not caplog.records and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
        finally:
            signal.signal(signal.SIGUSR1, previous)

    asyncio.run(main())
    stop.set()
    (record,) = caplog.records
    text = record.getMessage()
    assert "asyncio tasks" in text and "TASK " in text and "in main" in text
    assert "THREAD blueflow-io_7" in text and "in blocked_io" in text
    assert secret not in text
