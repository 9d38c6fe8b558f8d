"""Per-process state shared by the agents: settings, the thread pool, health, how clients are made.

The COS, VPC and Kentik SDKs are synchronous; `run_sync` runs them on a small thread pool so the event loop
never blocks. Each source's COS and Kentik clients are made on first use and kept (`cos_client`, `kentik_client`).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time

from streams.observe.health import Health
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
        self._scrubber = None
        self._clients: dict[tuple[str, str], object] = {}  # (kind, source name) -> client
        self._clients_lock = threading.Lock()  # clients are asked for from the pool's threads
        self.started_at = time.time()
        from streams.state import commits, rewind

        rewind.install()  # a rebalance must not skip messages of never-committed partitions (issue 16)
        commits.install()  # nor may a commit pass a message started and not acked

    async def run_sync(self, fn, /, *args, **kwargs):
        """Run a blocking call on the thread pool and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args, **kwargs))

    def cos_client(self, source):
        return self._client("cos", source, cos_client_for)

    def kentik_client(self, source):
        return self._client("kentik", source, kentik_client_for)

    def _client(self, kind: str, source, make):
        with self._clients_lock:
            if (kind, source.name) not in self._clients:
                self._clients[kind, source.name] = make(source, self.settings)
            return self._clients[kind, source.name]

    def scrub(self, text: str) -> str:
        """`text` with every configured secret value and credential-shaped text replaced (streams/observe/logs.py),
        for dead letters, health problems and log arguments."""
        if self._scrubber is None:
            from streams.observe.logs import Scrubber

            self._scrubber = Scrubber(self.settings.secret_values())
        return self._scrubber(text)


def cos_client_for(source, settings):
    """A source's COS client, making the SDK attempts per call of the COS policy (streams/stages/retry.py),
    whatever the settings came from."""
    from connectors.cos import make_cos_client
    from streams.observe.metrics import count_cos_request
    from streams.stages.retry import COS

    auth = (dict(hmac_access_key=source.hmac_access_key, hmac_secret_key=source.hmac_secret_key)
            if source.uses_hmac else dict(api_key=source.cos_api_key, service_instance=source.service_instance,
                                          iam_token_url=settings.iam_token_url))
    return make_cos_client(source.cos_endpoint_url, max_attempts=COS.sdk_attempts, on_request=count_cos_request,
                           **auth)


def kentik_client_for(source, settings):
    """A source's Kentik client (its own deadlines: connectors/kentik.py LIMITS; no retries of its own)."""
    from connectors.kentik import KentikClient

    return KentikClient(api_root=settings.kentik_api_root, flow_url=settings.kentik_flow_url,
                        email=source.kentik_email, token=source.kentik_token)
