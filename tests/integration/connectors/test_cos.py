"""Integration: connectors.cos (and the dev tools' uploads and deletes, devstack/stack/bucket.py) against
S3Proxy, with HMAC keys and through the COS IAM (bearer) proxy."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from connectors import cos
from devstack.stack import bucket as dev_bucket
from devstack.synth.writer import _ensure_bucket as ensure_bucket

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def hmac(stack):
    return cos.make_cos_client(stack["BLUEFLOW_COS_ENDPOINT"], hmac_access_key=stack["BLUEFLOW_COS_HMAC_ACCESS_KEY"],
                               hmac_secret_key=stack["BLUEFLOW_COS_HMAC_SECRET_KEY"], max_pool_connections=32)


@pytest.fixture(scope="module")
def bucket(stack, hmac):
    ensure_bucket(hmac, stack["BLUEFLOW_BUCKET"])
    return stack["BLUEFLOW_BUCKET"]


@pytest.fixture
def prefix():
    return f"test-{uuid.uuid4().hex[:10]}/"


def _iam_client(stack, api_key=None):
    return cos.make_cos_client(stack["BLUEFLOW_COS_IAM_ENDPOINT"], api_key=api_key or stack["IBM_COS_API_KEY"],
                               service_instance=stack["IBM_SERVICE_INSTANCE"],
                               iam_token_url=stack["BLUEFLOW_IAM_URL"] + "/identity/token", max_attempts=2)


def test_list_pages_past_1000_then_batched_delete(hmac, bucket, prefix):
    keys = [f"{prefix}obj-{i:05d}" for i in range(1100)]
    with ThreadPoolExecutor(32) as ex:
        etags = list(ex.map(lambda k: dev_bucket.put_object(hmac, bucket, k, k.encode()), keys))
    listed = list(cos.list_objects(hmac, bucket, prefix))
    assert [o.key for o in listed] == keys
    assert [o.etag for o in listed] == etags
    assert all(o.size == len(o.key) and o.last_modified > 1_600_000_000_000 for o in listed)
    # small pages exercise the continuation loop too
    assert [o.key for o in cos.list_objects(hmac, bucket, prefix, page_size=333)] == keys

    missing = f"{prefix}never-existed"
    result = dev_bucket.delete_objects(hmac, bucket, keys + [missing, keys[0]])
    assert set(result) == set(keys) | {missing}
    assert all(v is None for v in result.values()), {k: v for k, v in result.items() if v}
    assert list(cos.list_objects(hmac, bucket, prefix)) == []


def test_empty_listing(hmac, bucket, prefix):
    assert list(cos.list_objects(hmac, bucket, prefix + "nothing/")) == []


def test_streaming_get_head_and_missing(hmac, bucket, prefix):
    body = os.urandom(300 * 1024 + 17)
    key = prefix + "crn%3Av1%3Abluemix/record.json.gz"  # keys hold percent-encoded CRNs
    meta = {"capture_start_time": "2024-01-01T00:00:00Z", "number_of_flow_logs": "42"}
    etag = dev_bucket.put_object(hmac, bucket, key, body, metadata=meta, content_type="application/json",
                          content_encoding="gzip")
    chunks = cos.open_object(hmac, bucket, key)
    assert chunks is not None and not isinstance(chunks, (bytes, list))
    parts = list(chunks)
    assert len(parts) >= 5 and all(len(p) <= cos.CHUNK_SIZE for p in parts)
    assert b"".join(parts) == body

    head = cos.head_object(hmac, bucket, key)
    assert head is not None and head.etag == etag and head.size == len(body) and head.metadata == meta

    stream = cos.open_object_with_head(hmac, bucket, key, etag=etag)
    assert stream is not None and stream.head.metadata == meta and b"".join(stream.chunks) == body
    assert cos.open_object(hmac, bucket, key, etag="0" * 32) is None  # changed since listed

    assert cos.open_object(hmac, bucket, prefix + "missing") is None
    assert cos.head_object(hmac, bucket, prefix + "missing") is None
    dev_bucket.delete_object(hmac, bucket, key)
    dev_bucket.delete_object(hmac, bucket, key)  # already gone: fine
    assert cos.open_object(hmac, bucket, key) is None


def test_iam_path_list_get_delete(stack, hmac, bucket, prefix):
    keys = [f"{prefix}iam-{i}" for i in range(5)]
    for k in keys:
        dev_bucket.put_object(hmac, bucket, k, b"x" * 100_000 + k.encode())
    iam = _iam_client(stack)
    assert [o.key for o in cos.list_objects(iam, bucket, prefix)] == keys
    assert b"".join(cos.open_object(iam, bucket, keys[0])) == b"x" * 100_000 + keys[0].encode()
    assert cos.head_object(iam, bucket, keys[1]).size == 100_000 + len(keys[1])
    assert cos.open_object(iam, bucket, prefix + "missing") is None
    # writes through the IAM face land in the same bucket as the HMAC face
    etag = dev_bucket.put_object(iam, bucket, prefix + "via-iam", b"hello", metadata={"a": "b"})
    assert cos.head_object(hmac, bucket, prefix + "via-iam").etag == etag
    result = dev_bucket.delete_objects(iam, bucket, keys + [prefix + "via-iam", prefix + "missing"])
    assert all(v is None for v in result.values()), result
    assert list(cos.list_objects(hmac, bucket, prefix)) == []


def test_iam_bad_api_key_fails_clearly(stack, bucket):
    bad = _iam_client(stack, api_key="not-a-valid-key")
    with pytest.raises(cos.CosError) as info:
        list(cos.list_objects(bad, bucket))
    text = str(info.value)
    assert "not-a-valid-key" not in text
    assert info.value.op == "list" and not info.value.transient
    assert any(w in text.lower() for w in ("api key", "token", "400", "unauthorized", "denied")), text


def test_iam_proxy_rejects_requests_without_a_bearer_token(stack, bucket):
    url = f"{stack['BLUEFLOW_COS_IAM_ENDPOINT']}/{bucket}"
    for headers in ({}, {"Authorization": "Bearer not.a.jwt"}):
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
        assert info.value.code == 403
        assert b"AccessDenied" in info.value.read()
