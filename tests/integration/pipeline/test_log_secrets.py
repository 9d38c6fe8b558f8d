"""A worker at `--log_level=debug` on the real stack: every HTTP exchange is dumped, no secret is in its log.

The run covers the IAM path to COS (API key → bearer token → S3Proxy through the token-checking proxy), the
Kentik export heartbeat PUT and flow POSTs (X-CH-Auth-API-Token) and the VPC API (bearer token). Before the
one-handler logging (streams/observe/logs.py) the standard-library dump wrote the Kentik token, IAM bearer tokens
and SigV4 Authorization headers into this log. The log must also hold one record per line.
"""
from __future__ import annotations

import re

import pytest

from devstack.stack import env as stack_env
from devstack.faults.secrets import credential_hits
from tests.integration.pipeline_support import prepare, wait_for

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def debug_log(stack):
    r = prepare(4, seed=61, mean_flows=30, empty_share=0.0)
    worker = r.start_worker("debug", BLUEFLOW_LOG_LEVEL="debug", BLUEFLOW_HEARTBEAT_INTERVAL="2")
    try:
        drained = wait_for(lambda: not r.bucket_keys(), timeout_s=120)
        assert drained, f"run did not drain; counts={r.counts()}\n{r.logs()}"
        wait_for(lambda: b"PUT /api/internal" in worker.log_path.read_bytes(), timeout_s=30)
    finally:
        r.stop_all()
    return worker.log_path.read_text(errors="replace")


def test_debug_log_dumps_http_but_holds_no_secret(debug_log):
    assert "X-CH-Auth-API-Token: ***" in debug_log      # the Kentik calls were dumped, token masked
    assert re.search(r"Authorization: (Bearer )?\*\*\*", debug_log)  # COS / VPC / IAM calls too
    for secret in (stack_env.KENTIK_TOKEN, stack_env.DEV_API_KEY, stack_env.HMAC_SECRET_KEY):
        assert secret not in debug_log
    assert credential_hits(debug_log) == {}


def test_every_line_of_the_debug_log_is_a_record_or_its_traceback(debug_log):
    lines = debug_log.splitlines()
    assert len(lines) > 100
    strays = [line for line in lines if not (line.startswith("[20") or line.startswith("    "))]
    assert strays == [], strays[:5]


@pytest.fixture(scope="module")
def json_run(stack):
    r = prepare(3, bad=1, bad_kinds=["json_array"], seed=62, mean_flows=30, empty_share=0.0)
    worker = r.start_worker("json", BLUEFLOW_LOG_FORMAT="json")
    try:
        drained = wait_for(lambda: r.bucket_keys() == r.bad_keys and r.counts().get("deadlettered", 0) == 1, 120)
        assert drained, f"run did not drain; counts={r.counts()}\n{r.logs()}"
    finally:
        r.stop_all()
    return r, worker.log_path.read_text(errors="replace")


def test_json_log_is_one_object_per_line_with_stage_and_object_key(json_run):
    import json

    run, text = json_run
    docs = [json.loads(line) for line in text.splitlines()]  # every line: no banner, no table, no spinner
    assert len(docs) > 10
    assert all({"time", "level", "logger", "worker", "stage", "key", "message"} <= set(d) for d in docs)
    assert not any("\n+" in d["message"] or d["message"].startswith("+") for d in docs)  # Faust tables dropped
    (bad_key,) = run.bad_keys
    quarantined = [d for d in docs if d["level"] == "ERROR" and "quarantined" in d["message"]]
    assert len(quarantined) == 1 and quarantined[0]["key"] == bad_key and quarantined[0]["stage"] == "parse"
    assert len({d["worker"] for d in docs}) == 1 and docs[0]["worker"].split("/")[1].isdigit()
