"""The operator commands per source, on the local stack with two sources (tests/integration/pipeline/test_sources.py's
set-up): the same bad key quarantined in both buckets is two dead letters; `deadletter retry` asks which
source, and `--source` retries only that source's object; `replay --source` re-sends only that source's kflow
records, which reach only its own devices.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from devstack.workers import run_environment
from streams.formats.avro import Codec
from tests.integration.pipeline_support import kentik, read_topic, wait_for
from tests.integration.pipeline.test_sources import TwoSources, per_source_verdicts

pytestmark = pytest.mark.stack


def cli(run: TwoSources, *args: str) -> tuple[int, dict | None, str]:
    env = run_environment(run.env, run.run_id, BLUEFLOW_CONFIG=str(run.config))
    out = subprocess.run([sys.executable, "-m", "streams.ops.cli", *args, "--json"], env=env, capture_output=True,
                         text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    return out.returncode, json.loads(lines[-1]) if lines else None, out.stderr


def metadata_keys(env: dict[str, str], topic: str) -> set[str]:
    """The keys on `vpc-metadata` so far (none while the new topic's partitions have no leader yet)."""
    from confluent_kafka import KafkaException

    try:
        return {k.decode() for k, _, _ in read_topic(env, topic)}
    except KafkaException:
        return set()


def letters(run: TwoSources) -> list[dict]:
    codec = Codec("deadletter")
    return [codec.decode(value) for _, value, _ in read_topic(run.env, f"{run.run_id}.deadletter")]


@pytest.fixture
def quarantined_in_both():
    run = TwoSources(objects_each=12, seed=73)
    bad_key = run.objects["acct-a"][0].key.replace(".gz", "-broken.gz")
    for bucket in run.buckets.values():
        run.client.put_object(Bucket=bucket, Key=bad_key, Body=b"not gzip, not json")
    run.start_worker("w1")
    try:
        assert wait_for(lambda: run.left("acct-a") == run.left("acct-b") == {bad_key} and len(letters(run)) >= 2,
                        240, interval_s=2), run.logs()
        yield run, bad_key
    finally:
        run.close()


def test_deadletters_and_replay_per_source(stack, quarantined_in_both):
    run, bad_key = quarantined_in_both
    code, listed, err = cli(run, "deadletter", "list")
    assert code == 0, err
    assert sorted((o["source"], o["key"]) for o in listed["objects"]) == [("acct-a", bad_key), ("acct-b", bad_key)]

    code, _, err = cli(run, "deadletter", "retry", bad_key)
    assert code == 2 and "quarantined in sources acct-a, acct-b: say which with --source" in err
    code, _, err = cli(run, "deadletter", "retry", bad_key, "--source", "acct-c")
    assert code == 2 and "no source 'acct-c'; configured: acct-a, acct-b" in err
    code, retried, err = cli(run, "deadletter", "retry", bad_key, "--source", "acct-b")
    assert code == 0 and [(r["source"], r["key"], r["ok"]) for r in retried["results"]] == [("acct-b", bad_key, True)]
    assert wait_for(lambda: len(letters(run)) >= 3, 60, interval_s=1), run.logs()
    assert sorted(letter["source"] for letter in letters(run)) == ["acct-a", "acct-b", "acct-b"]  # only acct-b's again

    verdicts = per_source_verdicts(run)
    owed_a = verdicts["acct-a"][0].owed
    seq = max((f["request_seq"] for f in kentik(run.env, "/_emulator/flows")), default=0)
    code, summary, err = cli(run, "replay", "--stage", "sink", "--from", "1h", "--source", "acct-a")
    assert code == 0 and summary["ok"] and summary["source"] == "acct-a", (summary, err)
    assert summary["other_sources"] > 0 and summary["flows"] == owed_a, summary

    def arrived():
        return requests.get(run.env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/flows", params={"since_seq": seq},
                            timeout=30).json()["flows"]

    assert wait_for(lambda: len(arrived()) >= owed_a, 90, interval_s=1), (len(arrived()), owed_a, run.logs())
    after = per_source_verdicts(run)
    assert after["acct-a"][0].duplicates == owed_a and after["acct-b"][0].duplicates == 0  # only acct-a re-sent
    assert len(arrived()) == owed_a


def test_each_sources_flows_are_labelled_from_its_own_accounts_vpc_world(stack):
    """acct-a and acct-b (devstack/sources_stack.py) have their own VPC API keys and worlds, which use the same
    private addresses (55 of 58 NIC addresses of world 98 are also world 1's). Every vNIC id in a source's
    flows must be of its own world: an address looked up in the other account's metadata would name the
    other world's vNIC."""
    from devstack import stack as devstack
    from devstack.stack import env as stack_env
    from devstack.stack.bucket import hmac_client
    from devstack.synth.writer import write_objects
    from devstack.sources_stack import (generate_for, own_flows, prepare_buckets, remove_buckets, stack_sources,
                                        write_config)
    from devstack.workers import WorkerProcess
    from devstack.synth.worldgen import build_world

    env = devstack.ensure_up()
    run_id = f"w{__import__('uuid').uuid4().hex[:10]}"
    sources = stack_sources(env, run_id, 2)
    client = hmac_client(env)
    prepare_buckets(client, sources)
    requests.post(env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/reset", timeout=5).raise_for_status()
    log_dir = stack_env.state_dir() / "logs" / run_id
    worker = WorkerProcess("w1", run_environment(env, run_id, **write_config(log_dir / "blueflow.yaml", env, sources)),
                           log_dir).start()
    try:
        regions = env["BLUEFLOW_REGIONS"].split(",")
        wanted = {f"{label}{region}" for region in regions for label in ("", "acct-b/")}
        assert wait_for(lambda: wanted <= metadata_keys(env, f"{run_id}.vpc-metadata"), 90, interval_s=1), \
            worker.log_tail()
        objects = {s.name: generate_for(env, s, objects=12, seed=5, mean_flows=60, empty_share=0.0) for s in sources}
        for s in sources:
            assert not write_objects(client, s.bucket, objects[s.name]).failed
        assert wait_for(lambda: not any(client.list_objects_v2(Bucket=s.bucket).get("KeyCount") for s in sources),
                        180, interval_s=2), worker.log_tail()
        flows = kentik(env, "/_emulator/flows")
    finally:
        worker.stop()
        remove_buckets(client, sources, keep=env["BLUEFLOW_BUCKET"])
    nics = {s.name: {n.id for i in build_world(seed=s.world_seed, regions=tuple(regions)).instances for n in i.nics}
            for s in sources}
    for s, other in ((sources[0], sources[1]), (sources[1], sources[0])):
        values = {v for f in own_flows(objects[s.name], flows) for v in f["customs"].values()}
        assert values & nics[s.name], s.name
        crossed = values & (nics[other.name] - nics[s.name])
        assert not crossed, (s.name, sorted(crossed)[:5])
