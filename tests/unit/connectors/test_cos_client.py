"""The COS client's own additions: every HTTP request counted (retries included) and fast timestamps equal to
the SDK's."""
from __future__ import annotations

import pytest
from ibm_botocore.utils import parse_timestamp as sdk_parse_timestamp

from connectors.cos import CosError, list_objects, make_cos_client
from connectors.cos_client import parse_timestamp


@pytest.mark.parametrize("value", ["2026-12-02T06:00:00.000Z", "2026-12-02T06:00:00Z", "2026-12-02T06:00:00.123456Z",
                                   "Wed, 02 Dec 2026 06:00:00 GMT", "2026-12-02T06:00:00+01:00", 1700000000])
def test_timestamps_equal_the_sdks(value):
    ours, theirs = parse_timestamp(value), sdk_parse_timestamp(value)
    assert ours.timestamp() == theirs.timestamp() and ours.utcoffset() is not None


def test_every_request_is_counted_retries_included():
    seen: list[str] = []
    client = make_cos_client("http://127.0.0.1:9", hmac_access_key="k", hmac_secret_key="s", max_attempts=2,
                             connect_timeout=0.5, on_request=seen.append)
    with pytest.raises(CosError):
        list(list_objects(client, "bucket"))
    assert seen == ["ListObjectsV2", "ListObjectsV2"]


@pytest.mark.parametrize("message, transient", [
    ("Error when retrieving credentials from http://iam/identity/token: HttpCode(500) - Retrieval of tokens from "
     "server failed.", True),
    ("Error when retrieving credentials from http://iam/identity/token: HttpCode(503) - ...", True),
    ("Error when retrieving credentials from http://iam/identity/token: HttpCode(429) - ...", True),
    ("Error when retrieving credentials from http://iam/identity/token: HttpCode(400) - Provided API key could "
     "not be found", False),
    ("Error when retrieving credentials from http://iam/identity/token: HttpCode(401) - ...", False),
    ("Error when retrieving credentials from http://iam/identity/token: Connection refused", True),
])
def test_an_iam_outage_is_transient_a_refused_key_is_not(message, transient):
    """IAM answering 5xx/429 or not answering is an outage to wait out; 4xx means the key is wrong."""
    from ibm_botocore.exceptions import CredentialRetrievalError

    from connectors.cos import _error

    exc = CredentialRetrievalError(provider="http://iam/identity/token", error_msg=message.split(": ", 1)[1])
    assert _error("get", "b", "k", exc).transient is transient


def test_a_batched_delete_is_sent_once_never_retried_by_the_sdk():
    """Its version check (a listing) must come just before it: a retry is the caller's, listing again first."""
    from connectors.cos_delete import _delete_batch

    seen: list[str] = []
    client = make_cos_client("http://127.0.0.1:9", hmac_access_key="k", hmac_secret_key="s", max_attempts=3,
                             connect_timeout=0.5, on_request=seen.append)
    results = _delete_batch(client, "bucket", ["a", "b"])
    assert seen == ["DeleteObjects"]
    assert all(isinstance(r, CosError) and r.transient for r in results.values()), results
