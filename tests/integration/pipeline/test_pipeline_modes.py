"""Keep mode, and losing the leader: the guarantees hold in both.

- `--keep_objects` forwards every flow and deletes nothing; a later normal run (same Kafka state) sends
  nothing again and leaves the kept objects alone (README: "What it guarantees").
- `kill -9` of the leader mid-stream: the other worker takes over polling and metadata; nothing is lost.
"""
from __future__ import annotations

import time

import pytest

from devstack.referee import compare
from tests.integration.pipeline_support import kentik, prepare, wait_for

pytestmark = pytest.mark.stack


def test_keep_objects_forwards_without_deleting_and_a_later_run_sends_nothing_again(stack):
    run = prepare(12, seed=31)
    keys = {o.key for o in run.objects}
    worker = run.start_worker("keep", BLUEFLOW_KEEP_OBJECTS="true")
    try:
        assert wait_for(lambda: run.counts().get("objects_completed", 0) >= len(run.objects), 120), run.logs()
        verdict = compare(run.objects, kentik(run.env, "/_emulator/flows"))
        assert (verdict.lost, verdict.duplicates) == (0, 0)
        assert run.counts()["objects_deleted"] == 0
        assert run.bucket_keys() == keys
    finally:
        worker.stop()
    accepted = len(kentik(run.env, "/_emulator/flows"))
    normal = run.start_worker("normal")
    try:
        assert wait_for(lambda: run.counts().get("objects_skipped", 0) >= len(run.objects), 120), run.logs()
        time.sleep(3)  # a few more polls
        assert len(kentik(run.env, "/_emulator/flows")) == accepted
        assert run.bucket_keys() == keys
        assert run.counts().get("objects_parsed", 0) == 0
    finally:
        normal.stop()


def test_killing_the_leader_loses_nothing_and_the_other_worker_takes_over(stack):
    run = prepare(80, seed=41, mean_flows=120)
    first = run.start_worker("w1", BLUEFLOW_CHUNK_FLOWS="40")
    assert wait_for(lambda: (first.info() or {}).get("leader") is True, 60), run.logs()
    second = run.start_worker("w2", BLUEFLOW_CHUNK_FLOWS="40")
    try:
        # kill the leader once work is under way, not before
        assert wait_for(lambda: run.counts().get("chf_delivered", 0) > 0, 120), run.logs()
        first.kill()
        assert wait_for(lambda: (second.info() or {}).get("leader") is True, 90), run.logs()
        assert wait_for(lambda: not run.bucket_keys(), 240, interval_s=2), (run.counts(), run.logs())
        verdict = compare(run.objects, kentik(run.env, "/_emulator/flows"))
        assert verdict.lost == 0 and verdict.unexpected == 0
        # at most the chunks in flight when the leader died are sent twice
        assert verdict.duplicates <= 40 * 8, verdict
    finally:
        run.stop_all()
