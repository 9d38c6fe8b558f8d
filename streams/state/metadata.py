"""VPC metadata: the leader fetches it, every worker follows the compacted topic and keeps an IP index per
account.

Per account: the leader fetches each distinct VPC API key (an account) and its regions once
(`metadata_accounts`) and keys the snapshots `<label>/<region>` (the label is the first source that needs
that account; the global key's snapshots keep their v1 key, the bare region). Two accounts may use the same
private addresses, so every account has its own IpIndex, and enrichment labels a flow only from its own
source's account (`MetadataFollower.index_for`), never from another's.

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
from dataclasses import dataclass

import orjson

from streams.observe import metrics

log = logging.getLogger("blueflow.metadata")


@dataclass(frozen=True)
class MetadataAccount:
    """One set of VPC metadata to fetch: an API key (an account), its regions, and the prefix of its
    snapshots' keys on `vpc-metadata` ("" for the global key, so a v1 topic keeps its keys)."""

    label: str
    region_list: list
    ibm_vpc_api_key: str
    iam_url: str
    vpc_url_template: str


def metadata_accounts(settings, sources) -> list[MetadataAccount]:
    """The VPC metadata a deployment needs: the global key and regions, plus every source's own key and
    regions (each distinct account once)."""
    wanted: dict[tuple[str, tuple], str] = {}
    if settings.ibm_vpc_api_key or any(s.from_flags for s in sources):  # the global account (the flags' source's)
        wanted[(settings.ibm_vpc_api_key, tuple(settings.region_list))] = ""
    for source in sources:
        key = (source.vpc_api_key or settings.ibm_vpc_api_key, tuple(source.regions or settings.region_list))
        if not any(k == key[0] and set(key[1]) <= set(r) for k, r in wanted):
            wanted[key] = source.name
    return [MetadataAccount(label, list(regions), api_key, settings.iam_url, settings.vpc_url_template)
            for (api_key, regions), label in wanted.items() if regions]


def snapshot_key(label: str, region: str) -> str:
    """The `vpc-metadata` key of an account's region ("" = the global key: the bare region, as in v1)."""
    return f"{label}/{region}" if label else region


def account_label(key: str) -> str:
    """The account label of a `vpc-metadata` key (labels are source names: never a '/')."""
    return key.rpartition("/")[0]


def source_accounts(settings) -> dict[str, str]:
    """Source name -> the label of the account whose snapshots label its
    flows: the entry of `metadata_accounts` that fetches its key and regions."""
    accounts = metadata_accounts(settings, settings.sources)
    out = {}
    for source in settings.sources:
        key = source.vpc_api_key or settings.ibm_vpc_api_key
        regions = set(source.regions or settings.region_list)
        out[source.name] = next((a.label for a in accounts
                                        if a.ibm_vpc_api_key == key and regions <= set(a.region_list)), "")
    return out


def indexes_by_account(snapshots: dict[str, dict], labels=None) -> dict:
    """{account label: IpIndex of its snapshots} (only `labels`, when given)."""
    from streams.state.ipindex import IpIndex

    grouped: dict[str, list[dict]] = {}
    for key, snapshot in snapshots.items():
        grouped.setdefault(account_label(key), []).append(snapshot)
    return {label: IpIndex.from_snapshots(snaps) for label, snaps in grouped.items()
            if labels is None or label in labels}


class MetadataFollower:
    """Keeps one IpIndex per account equal to the newest snapshots of its regions on `vpc-metadata`."""

    def __init__(self, settings, codec):
        from streams.state.follower import TopicFollower

        self.codec = codec
        self.snapshots: dict[str, dict] = {}  # vpc-metadata key -> snapshot
        self.labels = source_accounts(settings)  # source name -> account label
        self.indexes: dict = {}  # account label -> IpIndex
        self.started_at: float | None = None
        self.follower = TopicFollower(settings, [settings.topic("vpc-metadata")], self._on_message, "metadata")
        self.caught_up = self.follower.caught_up

    def start(self) -> None:
        self.started_at = time.monotonic()
        self.follower.start()

    def index_for(self, source: str):
        """The IpIndex of `source`'s account (its name), or None while that account has no snapshot:
        flows are then labelled with ids from the object key, never with another account's names."""
        return self.indexes.get(self.labels.get(source or "", source or ""))

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the topic was read to its end (every snapshot published so far is in the index), but
        never later than `timeout_s` after `start()`: the first batches of a fresh worker wait a moment,
        nothing after that does. False if the topic was not read in time (flows then get ids for now)."""
        started = self.started_at if self.started_at is not None else time.monotonic()
        return self.caught_up.wait(max(0.0, started + timeout_s - time.monotonic()))

    def _on_message(self, topic: str, key: bytes, value: bytes) -> None:
        record = self.codec.decode(value)
        snapshot = orjson.loads(record["json"])
        self.snapshots[record["region"]] = snapshot
        label = account_label(record["region"])
        self.indexes.update(indexes_by_account({k: v for k, v in self.snapshots.items() if account_label(k) == label}))
        metrics.METADATA_ENDPOINTS.set(sum(len(s.get("endpoints", ())) for s in self.snapshots.values()))
        log.info("metadata: %s updated (%d endpoints); %d regions of %d accounts held", record["region"],
                 len(snapshot.get("endpoints", ())), len(self.snapshots), len(self.indexes))


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
