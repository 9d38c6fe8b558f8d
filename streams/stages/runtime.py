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

from streams.observe.health import Health, consumer_lag  # noqa: F401  (consumer_lag: re-exported)
from streams.config.settings import Settings

log = logging.getLogger("blueflow")


class Runtime:
    """Lazily built clients and shared state of one worker process."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="blueflow-io")
        # the downloads of one group, from within its hand-off to `pool` (a pool of their own: a task of `pool`
        # waiting on tasks queued behind it in the same pool could wait for ever)
        self.fetch_pool = concurrent.futures.ThreadPoolExecutor(max_workers=settings.fetch_concurrency,
                                                                thread_name_prefix="blueflow-fetch")
        self.health = Health()
        self._lock = threading.Lock()
        self._cos = None
        self._kentik = None
        self._scrubber = None
        self.started_at = time.time()
        from streams.state import rewind

        rewind.install()  # a rebalance must not skip messages of never-committed partitions (issue 16)

    async def run_sync(self, fn, /, *args, **kwargs):
        """Run a blocking call on the thread pool and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))

    @property
    def cos(self):
        with self._lock:
            if self._cos is None:
                from connectors.cos import make_cos_client
                from streams.observe.metrics import count_cos_request

                s = self.settings
                if s.cos_hmac_access_key and s.cos_hmac_secret_key:
                    self._cos = make_cos_client(s.cos_endpoint_url, hmac_access_key=s.cos_hmac_access_key,
                                                hmac_secret_key=s.cos_hmac_secret_key, on_request=count_cos_request)
                else:
                    self._cos = make_cos_client(s.cos_endpoint_url, api_key=s.ibm_cos_api_key,
                                                service_instance=s.ibm_service_instance,
                                                iam_token_url=s.iam_token_url, on_request=count_cos_request)
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
        """`text` with every configured secret value and credential-shaped text replaced (streams/observe/logs.py),
        for dead letters, health problems and log arguments."""
        if self._scrubber is None:
            from streams.observe.logs import Scrubber

            self._scrubber = Scrubber(self.settings.secret_values())
        return self._scrubber(text)
