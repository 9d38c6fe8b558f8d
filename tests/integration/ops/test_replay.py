"""`blueflow replay` on the real stack with a live worker.

One run while the VPC stand-in fails every us-south call (us-south objects are labelled with ids, not
names). Then: replaying a sub-window of `kflow` makes the Kentik stand-in receive exactly the records of
that window (same records, nothing else, no ledger entry, no delete); after the fault is cleared and
metadata refreshed, replaying `flows` re-sends every flow with the names of the current metadata.
"""
from __future__ import annotations

import collections
import json
import subprocess
import sys
import time

import pytest
import requests

from devstack.referee import device_name, key_fields
from devstack.synth.worldgen import build_world
from streams.formats.avro import Codec
from tests.unit.formats.test_columns import lists
from streams.formats.batches import KflowChunk
from tests.integration.pipeline_support import kentik, prepare, wait_for

pytestmark = pytest.mark.stack

FAULTED_REGION = "us-south"


def vpc_emulator(env: dict[str, str]) -> str:
    return env["BLUEFLOW_VPC_URL_TEMPLATE"].split("/{region}")[0]


def read_with_partitions(env: dict[str, str], topic: str) -> list[tuple[int, int, int, bytes]]:
    """(partition, offset, timestamp ms, value) of every message of `topic`."""
    from streams.ops.replay import partition_ranges, read_ranges, throwaway_consumer, topic_watermarks

    consumer = throwaway_consumer({"bootstrap.servers": env["BLUEFLOW_KAFKA_BOOTSTRAP"]}, "test")
    try:
        marks = topic_watermarks(consumer, topic)
        ranges = partition_ranges({p: lo for p, (lo, _) in marks.items()}, None, marks)
        return [(m.partition(), m.offset(), m.timestamp()[1], m.value()) for m in read_ranges(consumer, topic, ranges)]
    finally:
        consumer.close()


def replay_cli(run, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "streams.ops.cli", "replay", "--json", *args],
                         env=run.worker_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def flow_tuple(f: dict) -> tuple:
    return (f["device_name"], f["timestamp"], f["src_port"], f["dst_port"], f["protocol"], f["in_bytes"],
            f["out_bytes"])


def last_seq(env) -> int:
    flows = kentik(env, "/_emulator/flows")
    return max((f["request_seq"] for f in flows), default=0)


@pytest.fixture(scope="module")
def run(stack):
    r = prepare(8, seed=31, mean_flows=50, empty_share=0.0)
    vpc = vpc_emulator(r.env)
    requests.post(vpc + "/_emulator/reset", timeout=5).raise_for_status()
    requests.post(vpc + "/_emulator/faults", json={"status": 500, "count": 0, "path_prefix": f"/{FAULTED_REGION}/"},
                  timeout=5).raise_for_status()
    r.started_ms = int(time.time() * 1000) - 1000
    r.start_worker("w1", BLUEFLOW_CHUNK_FLOWS="25", BLUEFLOW_METADATA_INTERVAL="2")
    try:
        done = wait_for(lambda: not r.bucket_keys(), timeout_s=90, interval_s=1)
        assert done, f"pipeline did not drain the bucket; counts={r.counts()}\n{r.logs()}"
        r.drained_seq = last_seq(r.env)
        yield r
    finally:
        requests.post(vpc + "/_emulator/reset", timeout=5)
        r.stop_all()


def test_replaying_a_kflow_window_resends_exactly_that_window(run):
    topic = f"{run.run_id}.kflow"
    codec = Codec("kflow_batch")
    messages = read_with_partitions(run.env, topic)
    assert len(messages) >= 6
    stamps = sorted(ts for _, _, ts, _ in messages)
    from_ms, to_ms = stamps[len(stamps) // 4], stamps[3 * len(stamps) // 4]
    assert from_ms < to_ms
    expected = []  # offsets_for_times semantics: per partition, from the first ts >= from to the first ts >= to
    for p in {m[0] for m in messages}:
        part = sorted((m for m in messages if m[0] == p), key=lambda m: m[1])
        start = next((i for i, m in enumerate(part) if m[2] >= from_ms), len(part))
        end = next((i for i, m in enumerate(part) if m[2] >= to_ms), len(part))
        expected += [KflowChunk.decode(m[3]) for m in part[start:end]]
    want = sum(b.flow_count for b in expected)
    assert 0 < want < sum(codec.decode(m[3])["flow_count"] for m in messages)
    ledger_before = len(read_with_partitions(run.env, f"{run.run_id}.ledger"))
    seq = last_seq(run.env)

    summary = replay_cli(run, "--stage", "sink", "--from", str(from_ms), "--to", str(to_ms))

    assert summary["in_range"] == len(expected) and summary["sent"] == len(expected)
    assert summary["flows"] == want and summary["ok"] is True

    def arrived():
        return requests.get(run.env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/flows",
                            params={"since_seq": seq}, timeout=30).json()["flows"]

    assert wait_for(lambda: len(arrived()) >= want, timeout_s=60), (len(arrived()), want, run.logs())
    time.sleep(3)  # nothing more trickles in
    got = arrived()
    assert len(got) == want
    wanted = collections.Counter()
    for b in expected:
        c = lists(b.columns)
        for i in range(b.flow_count):
            wanted[(b.device_name, c["timestamp"][i], c["src_port"][i], c["dst_port"][i], c["protocol"][i],
                    c["in_bytes"][i], c["out_bytes"][i])] += 1
    assert collections.Counter(flow_tuple(f) for f in got) == wanted
    assert len(read_with_partitions(run.env, f"{run.run_id}.ledger")) == ledger_before  # no ledger, no delete
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": run.env["BLUEFLOW_KAFKA_BOOTSTRAP"]})
    names: set[str] = set()

    def listed():  # the first answer of a fresh admin client can be empty (no broker known yet)
        names.update(g.group_id for g in admin.list_consumer_groups().result(10).valid)
        return run.run_id in names

    assert wait_for(listed, timeout_s=15, interval_s=0.5)
    assert not any(n.startswith("blueflow-replay-") for n in names)  # replay joined and committed to no group
    seen = {(m[0], m[1]) for m in messages}
    replays = [codec.decode(m[3]) for m in read_with_partitions(run.env, topic) if (m[0], m[1]) not in seen]
    assert len(replays) == len(expected) and all(b["replay"] for b in replays)


def test_replaying_flows_after_a_metadata_fix_reenriches_with_current_names(run):
    world = build_world(seed=int(run.env["BLUEFLOW_WORLD_SEED"]), regions=tuple(run.env["BLUEFLOW_REGIONS"].split(",")))
    faulted = [o for o in run.good if key_fields(o.key)["region"] == FAULTED_REGION and o.chf_count]
    assert faulted, "the generated objects have no flows in the faulted region"
    ids = {v.id for v in world.vpcs if v.region == FAULTED_REGION}
    names = {v.name for v in world.vpcs if v.region == FAULTED_REGION}
    devices = {device_name(key_fields(o.key)["subnet-id"].rsplit(":", 1)[-1]) for o in faulted}

    def vpc_labels(flows):
        return {f["customs"][c] for f in flows if f["device_name"] in devices for c in ("STR07", "STR15")}

    original = [f for f in kentik(run.env, "/_emulator/flows") if f["request_seq"] <= run.drained_seq]
    assert vpc_labels(original) & ids and not vpc_labels(original) & names  # fell back to ids

    vpc = vpc_emulator(run.env)
    requests.post(vpc + "/_emulator/reset", timeout=5).raise_for_status()
    assert wait_for(lambda: FAULTED_REGION in ((run.workers[0].info() or {}).get("metadata_regions") or []),
                    timeout_s=30), run.logs()
    seq = last_seq(run.env)
    flows_topic = read_with_partitions(run.env, f"{run.run_id}.flows")

    summary = replay_cli(run, "--stage", "enrich", "--from", str(run.started_ms))

    assert summary["sent"] == len(flows_topic) and summary["ok"] is True
    total = len(original)
    url = run.env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/flows"
    assert wait_for(lambda: requests.get(url, params={"since_seq": seq}, timeout=30).json()["count"] >= total,
                    timeout_s=60), run.logs()
    time.sleep(2)
    again = requests.get(url, params={"since_seq": seq}, timeout=30).json()["flows"]
    assert len(again) == total
    assert collections.Counter(map(flow_tuple, again)) == collections.Counter(map(flow_tuple, original))
    labels = vpc_labels(again)
    assert labels & names and not labels & ids  # re-enriched with the current metadata
