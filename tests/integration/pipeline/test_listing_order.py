"""Listing order means nothing: IBM's COS API reference says listings come "in non-lexographical order".

The COS stand-in's IAM proxy shuffles every listing page (devstack/standins/cos_auth_proxy.py, `listing_order`); a
worker run over it must lose nothing and delete every good object — the version check before a delete once
stopped its listing at the first key above the ones it wanted and classed the keys it had not reached as
gone, leaving them in the bucket for ever.
"""
from __future__ import annotations

import pytest
import requests

from devstack.referee import compare
from tests.integration.pipeline_support import kentik, prepare, wait_for

pytestmark = pytest.mark.stack


def _shuffle(env: dict[str, str], on: bool) -> None:
    reply = requests.post(env["BLUEFLOW_COS_IAM_ENDPOINT"] + "/_emulator/listing_order", json={"shuffle": on},
                          timeout=10)
    reply.raise_for_status()
    assert reply.json() == {"shuffle": on}


def _iam_listing(env: dict[str, str]) -> list[str]:
    from connectors.cos import list_objects
    from connectors.cos_client import make_cos_client

    client = make_cos_client(env["BLUEFLOW_COS_IAM_ENDPOINT"], api_key=env["IBM_COS_API_KEY"],
                             service_instance=env["IBM_SERVICE_INSTANCE"],
                             iam_token_url=env["BLUEFLOW_IAM_URL"] + "/identity/token")
    return [o.key for o in list_objects(client, env["BLUEFLOW_BUCKET"], "")]


def test_shuffled_listings_lose_nothing_and_every_object_is_deleted(stack):
    run = prepare(60, seed=57, mean_flows=40)
    _shuffle(run.env, True)
    try:
        listed = _iam_listing(run.env)
        assert sorted(listed) == sorted(o.key for o in run.objects) and listed != sorted(listed)  # shuffled
        run.start_worker("w1", BLUEFLOW_CHUNK_FLOWS="200")
        drained = wait_for(lambda: run.bucket_keys() <= run.bad_keys, 240, interval_s=2)
        assert drained, (sorted(run.bucket_keys())[:5], run.counts(), run.logs())
        verdict = compare(run.objects, kentik(run.env, "/_emulator/flows"))
        assert (verdict.lost, verdict.duplicates, verdict.unexpected) == (0, 0, 0), verdict
        assert run.counts()["objects_deleted"] == len(run.good)
    finally:
        run.stop_all()
        _shuffle(run.env, False)
