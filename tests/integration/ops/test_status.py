"""`blueflow status --json` against a running worker on the real stack: the document's shape and values.

After a small run drains (one bad object stays quarantined), the document must show the worker as leader
and healthy, zero lag on every stage, the bad object as the only one in the bucket (quarantined, nothing
pending), the dead letter, Kentik's 200s and the counters; a second, unreachable worker URL is reported
as down (exit code 1) without hiding the rest.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.integration.pipeline_support import kentik, prepare, wait_for

pytestmark = pytest.mark.stack


def status(run, *workers: str) -> tuple[int, dict]:
    args = [a for w in workers for a in ("--worker", w)]
    out = subprocess.run([sys.executable, "-m", "streams.ops.cli", "status", "--json", "--interval", "1", *args],
                         env=run.worker_env(), capture_output=True, text=True, timeout=60)
    assert out.stdout.strip(), out.stderr
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def run(stack):
    r = prepare(3, bad=1, bad_kinds=["json_array"], seed=51, mean_flows=30, empty_share=0.0)
    worker = r.start_worker("w1")
    r.url = f"http://127.0.0.1:{worker.port}"
    try:
        done = wait_for(lambda: r.bucket_keys() == r.bad_keys and r.counts().get("deadlettered", 0) == 1,
                        timeout_s=90)
        assert done, f"run did not drain; counts={r.counts()}\n{r.logs()}"
        yield r
    finally:
        r.stop_all()


def test_status_json_describes_a_drained_pipeline(run):
    result = {}

    def settled():
        result["code"], result["doc"] = status(run, run.url)
        lag = result["doc"]["lag"] or {}
        return lag and all(stage["lag"] == 0 for stage in lag.values())

    assert wait_for(settled, timeout_s=30, interval_s=0.5), result
    code, doc = result["code"], result["doc"]
    assert code == 0 and doc["healthy"] is True and doc["errors"] == []
    assert doc["app_id"] == run.run_id and doc["topic_prefix"] == f"{run.run_id}."
    (worker,) = doc["workers"]
    assert worker["ok"] is True and worker["leader"] is True and worker["healthy"] is True
    assert set(doc["lag"]) == {"parse", "enrich", "sink"}
    # the poller publishes the objects as one group: at least one objects message
    assert doc["lag"]["parse"]["topic"] == f"{run.run_id}.objects" and doc["lag"]["parse"]["end"] >= 1
    assert doc["bucket"] == {"objects": 1, "bytes": sum(len(o.body) for o in run.objects if o.key in run.bad_keys),
                             "pending": 0, "quarantined": 1, "oldest_pending_age_s": None}
    assert doc["in_flight"] == 0
    assert doc["deadletters"]["objects"] == 1 and doc["deadletters"]["by_stage"] == {
        next(o.expected_stage for o in run.objects if o.key in run.bad_keys): 1}
    assert doc["deadletters"]["newest"][0]["key"] in run.bad_keys
    delivered = sum(o.chf_count for o in run.good)
    assert doc["counts"]["chf_delivered"] == delivered == len(kentik(run.env, "/_emulator/flows"))
    assert doc["counts"]["objects_completed"] == len(run.good)
    assert doc["kentik"].get("200", 0) >= 1 and set(doc["kentik"]) == {"200"}
    # deletes are batched (one version-checked DeleteObjects per kflow message): at least one, at most one per object
    assert doc["cos_errors"] == {} and 1 <= doc["cos_ok"]["delete"] <= len(run.good)
    assert set(doc["rates"]) >= {"interval_s", "flows_parsed_per_s", "chf_delivered_per_s"}
    assert doc["rates"]["chf_delivered_per_s"] == 0.0  # drained: nothing moves


def test_status_reports_an_unreachable_worker_and_still_shows_the_rest(run):
    code, doc = status(run, run.url, "http://127.0.0.1:9")
    assert code == 1 and doc["healthy"] is False
    assert [w["ok"] for w in doc["workers"]] == [True, False]
    assert doc["workers"][1]["error"] and any("127.0.0.1:9" in e for e in doc["errors"])
    assert doc["counts"]["objects_completed"] == len(run.good)
