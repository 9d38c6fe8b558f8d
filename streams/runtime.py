"""Per-process state shared by the agents: settings, clients, the thread pool, health.

The COS, VPC and Kentik SDKs are synchronous; `run_sync` runs them on a small thread pool so the event loop
never blocks. Clients are created lazily, once per process.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from dataclasses import dataclass, field

from streams.settings import Settings

log = logging.getLogger("blueflow")


@dataclass
class Health:
    """What /healthz reports.

    `fatal` is set by configuration errors (e.g. Kentik rejects the token). Work is pending when this
    worker's own consumers lag (messages of its assigned partitions not yet committed: `observe_consumer`,
    fed by streams/web.py every few seconds); `pending` is the older flag some loops set (leader poller,
    retry loops) and only counts while no consumer observation exists. Progress is any committed offset
    moving forward, or an explicit `progressed()` (a delivery, a delete, a parsed object).
    """

    fatal: str = ""
    last_progress: float = field(default_factory=time.monotonic)
    pending_since: float | None = None
    pending: bool = False
    lag: int | None = None
    committed_total: int | None = None

    def progressed(self) -> None:
        self.last_progress = time.monotonic()

    def observe_consumer(self, lag: int, committed_total: int) -> None:
        """Record this worker's consumer lag and the sum of its committed offsets (pure bookkeeping)."""
        if self.committed_total is not None and committed_total > self.committed_total:
            self.progressed()
        if lag > 0 and not (self.lag or 0) > 0:
            self.pending_since = time.monotonic()
            if time.monotonic() - self.last_progress > 1.0:  # idle until now: the clock starts with the work
                self.last_progress = time.monotonic()
        elif lag <= 0:
            self.pending_since = None
        self.lag = lag
        self.committed_total = committed_total

    @property
    def work_pending(self) -> bool:
        return (self.lag or 0) > 0 if self.lag is not None else self.pending

    def problems(self, unhealthy_after: float) -> list[str]:
        problems = []
        if self.fatal:
            problems.append(self.fatal)
        idle = time.monotonic() - self.last_progress
        if self.work_pending and idle > unhealthy_after:
            what = f"{self.lag} messages" if self.lag else "work"
            problems.append(f"no progress for {idle:.0f}s while {what} pending")
        return problems


def consumer_lag(assignment, highwater, committed, read) -> tuple[int, int]:
    """(lag, sum of committed offsets) over `assignment`: `highwater(tp)` is the next offset to be written
    (None if unknown), `committed(tp)`/`read(tp)` the last committed/read offsets (None if none)."""
    lag = 0
    total = 0
    for tp in assignment:
        hw = highwater(tp)
        done = committed(tp)
        if done is None:
            done = read(tp)
        if done is not None:
            total += done
        if hw is None:
            continue
        lag += max(0, hw - 1 - (done if done is not None else -1))
    return lag, total


class Runtime:
    """Lazily built clients and shared state of one worker process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="blueflow-io")
        self.health = Health()
        self._lock = threading.Lock()
        self._cos = None
        self._kentik = None
        self.started_at = time.time()

    async def run_sync(self, fn, /, *args, **kwargs):
        """Run a blocking call on the thread pool and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))

    @property
    def cos(self):
        with self._lock:
            if self._cos is None:
                from connectors.cos import make_cos_client

                s = self.settings
                if s.cos_hmac_access_key and s.cos_hmac_secret_key:
                    self._cos = make_cos_client(s.cos_endpoint_url, hmac_access_key=s.cos_hmac_access_key,
                                                hmac_secret_key=s.cos_hmac_secret_key)
                else:
                    self._cos = make_cos_client(s.cos_endpoint_url, api_key=s.ibm_cos_api_key,
                                                service_instance=s.ibm_service_instance,
                                                iam_token_url=s.iam_token_url)
            return self._cos

    @property
    def kentik(self):
        with self._lock:
            if self._kentik is None:
                from connectors.kentik import KentikClient

                s = self.settings
                self._kentik = KentikClient(api_root=s.kentik_api_root, flow_url=s.kentik_flow_url,
                                            email=s.api_email, token=s.kentik_api_token)
            return self._kentik

    def scrub(self, text: str) -> str:
        """`text` with every configured secret value replaced, for logs and dead letters."""
        for secret in self.settings.secret_values():
            if secret and secret in text:
                text = text.replace(secret, "***")
        return text
