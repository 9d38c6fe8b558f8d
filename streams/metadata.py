"""VPC metadata: the leader fetches it, every worker follows the compacted topic and keeps an IP index.

The follower reads every partition of `vpc-metadata` from the beginning with its own consumer (no group),
so each worker holds the whole estate, whatever partitions its agents own. A snapshot that cannot be
decoded is logged and skipped: enrichment then uses the spec's fallbacks.

Enrichment never waits for the VPC API: `wait_ready` only waits (briefly, right after start) until the
topic was read to its end, so snapshots published earlier are used from the first batch. It never waits
for a snapshot that does not exist yet: with the VPC API or IAM down there may be none for a long time,
and a stage blocked on it holds every rebalance of the group (Faust waits for in-flight messages) and, in
Faust 0.15, leaves buffered messages of never-committed partitions skipped (issue 16).
"""
from __future__ import annotations

import logging
import time

import orjson

from streams import metrics

log = logging.getLogger("blueflow.metadata")


class MetadataFollower:
    """Keeps `self.index` equal to the newest snapshot of every region of the `vpc-metadata` topic."""

    def __init__(self, settings, codec):
        from streams.follower import TopicFollower

        self.codec = codec
        self.snapshots: dict[str, dict] = {}
        self.index = None
        self.started_at: float | None = None
        self.follower = TopicFollower(settings, [settings.topic("vpc-metadata")], self._on_message, "metadata")
        self.caught_up = self.follower.caught_up

    def start(self) -> None:
        self._rebuild()
        self.started_at = time.monotonic()
        self.follower.start()

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the topic was read to its end (every snapshot published so far is in the index), but
        never later than `timeout_s` after `start()`: the first batches of a fresh worker wait a moment,
        nothing after that does. False if the topic was not read in time (flows then get ids for now)."""
        started = self.started_at if self.started_at is not None else time.monotonic()
        return self.caught_up.wait(max(0.0, started + timeout_s - time.monotonic()))

    def _rebuild(self) -> None:
        from streams.ipindex import IpIndex

        self.index = IpIndex.from_snapshots(list(self.snapshots.values()))
        metrics.METADATA_ENDPOINTS.set(sum(len(s.get("endpoints", ())) for s in self.snapshots.values()))

    def _on_message(self, topic: str, key: bytes, value: bytes) -> None:
        record = self.codec.decode(value)
        snapshot = orjson.loads(record["json"])
        self.snapshots[record["region"]] = snapshot
        self._rebuild()
        log.info("metadata: index now holds %d regions (%s updated, %d endpoints)", len(self.snapshots),
                 record["region"], len(snapshot.get("endpoints", ())))


def fetch_snapshots(settings) -> tuple[list[dict], list[str]]:
    """Fetch every configured region (blocking). Returns (snapshots, problems in words)."""
    from connectors.vpc import fetch_region_metadata

    snapshots, problems = [], []
    for region in settings.region_list:
        try:
            snapshots.append(fetch_region_metadata(region, settings.ibm_vpc_api_key, iam_url=settings.iam_url,
                                                   service_url=settings.vpc_url_template.format(region=region)))
            metrics.METADATA_REFRESHES.labels(result="ok").inc()
        except Exception as exc:
            metrics.METADATA_REFRESHES.labels(result="error").inc()
            problems.append(f"VPC metadata of {region} could not be fetched: {exc}")
    return snapshots, problems
