"""`blueflow deadletter list|show|retry` end to end on the real stack with a live worker.

Two bad objects are quarantined. `list` and `show` report them as the dead-letter topic says; `retry` of an
unchanged object runs it through parse again and quarantines it again for the same reason; an object fixed
in place (overwritten: new ETag) is delivered and deleted without any retry, after which `retry` refuses it
(no longer in the bucket).
"""
from __future__ import annotations

import gzip
import json
import subprocess
import sys

import orjson
import pytest

from devstack.stack.bucket import put_object
from devstack.stack.bucket import hmac_client
from streams.formats.avro import Codec
from tests.integration.pipeline_support import kentik, prepare, read_topic, wait_for

pytestmark = pytest.mark.stack

KINDS = ["gzip_non_json", "negative_bytes"]


def cli(run, *args: str) -> tuple[int, dict]:
    out = subprocess.run([sys.executable, "-m", "streams.ops.cli", "deadletter", *args, "--json"], env=run.worker_env(),
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.strip(), out.stderr
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1])


def letters(run) -> list[dict]:
    codec = Codec("deadletter")
    return [codec.decode(value) for _, value, _ in read_topic(run.env, f"{run.run_id}.deadletter")]


@pytest.fixture(scope="module")
def run(stack):
    r = prepare(2, bad=len(KINDS), bad_kinds=KINDS, seed=41, mean_flows=20, empty_share=0.0)
    r.by_kind = {o.variant or o.kind: o for o in r.objects if o.key in r.bad_keys}
    assert set(r.by_kind) == set(KINDS), r.by_kind
    r.start_worker("w1")
    try:
        done = wait_for(lambda: r.bucket_keys() == r.bad_keys and len(letters(r)) >= len(KINDS), timeout_s=90)
        assert done, f"bad objects not quarantined; counts={r.counts()}\n{r.logs()}"
        yield r
    finally:
        r.stop_all()


def test_list_shows_each_quarantined_object_with_stage_and_reason(run):
    code, doc = cli(run, "list")
    assert code == 0 and doc["count"] == len(KINDS)
    by_key = {item["key"]: item for item in doc["objects"]}
    assert set(by_key) == run.bad_keys
    for record in letters(run):
        listed = by_key[record["key"]]
        assert (listed["stage"], listed["reason"], listed["etag"]) == (record["stage"], record["reason"],
                                                                     record["etag"])
        assert listed["at_iso"].endswith("Z")


def test_show_gives_history_and_the_object_in_the_bucket(run):
    obj = run.by_kind["gzip_non_json"]
    code, doc = cli(run, "show", obj.key)
    assert code == 0 and len(doc["records"]) == 1
    assert doc["object"]["exists"] is True and doc["object"]["etag"] == doc["records"][0]["etag"]
    assert doc["object"]["size"] == len(obj.body)
    code, doc = cli(run, "show", "no/such/key")
    assert code == 1 and doc["records"] == [] and doc["object"] == {"exists": False}


def test_retry_of_an_unchanged_object_quarantines_it_again_for_the_same_reason(run):
    obj = run.by_kind["gzip_non_json"]
    first = [r for r in letters(run) if r["key"] == obj.key]
    code, doc = cli(run, "retry", obj.key)
    assert code == 0 and doc["results"][0]["ok"] is True and doc["results"][0]["etag"] == first[0]["etag"]
    assert wait_for(lambda: len([r for r in letters(run) if r["key"] == obj.key]) == 2, timeout_s=30), run.logs()
    again = [r for r in letters(run) if r["key"] == obj.key]
    assert (again[1]["stage"], again[1]["reason"], again[1]["etag"]) == (first[0]["stage"], first[0]["reason"],
                                                                         first[0]["etag"])
    assert obj.key in run.bucket_keys()  # still quarantined, still in the bucket
    code, doc = cli(run, "list")
    assert doc["count"] == len(KINDS)  # newest per key: still one line per object


def test_object_fixed_in_place_is_delivered_without_retry_and_then_cannot_be_retried(run):
    obj = run.by_kind["negative_bytes"]
    document = orjson.loads(gzip.decompress(obj.body))
    for flow in document["flow_logs"]:
        for name, value in flow.items():
            if isinstance(value, int) and not isinstance(value, bool) and value < 0:
                flow[name] = -value
    put_object(hmac_client(run.env), run.env["BLUEFLOW_BUCKET"], obj.key, gzip.compress(orjson.dumps(document)),
               metadata=obj.metadata, content_type="application/json", content_encoding=obj.content_encoding)
    before = len(kentik(run.env, "/_emulator/flows"))
    assert wait_for(lambda: obj.key not in run.bucket_keys(), timeout_s=60), run.logs()
    assert len(kentik(run.env, "/_emulator/flows")) > before
    code, doc = cli(run, "retry", obj.key)
    assert code == 1 and doc["results"][0]["ok"] is False and "not in bucket" in doc["results"][0]["detail"]


def test_retry_all_sends_what_is_still_in_the_bucket_and_skips_the_rest(run):
    fixed, bad = run.by_kind["negative_bytes"], run.by_kind["gzip_non_json"]
    assert wait_for(lambda: fixed.key not in run.bucket_keys(), timeout_s=60)
    code, doc = cli(run, "retry", "--all")
    by_key = {r["key"]: r for r in doc["results"]}
    assert code == 0 and set(by_key) == {fixed.key, bad.key}
    assert by_key[bad.key]["ok"] is True and by_key[fixed.key]["gone"] is True and by_key[fixed.key]["ok"] is False
