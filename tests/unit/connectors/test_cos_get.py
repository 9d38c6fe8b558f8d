"""The lean COS GET (connectors/cos_get.py): its SigV4 signature equals the SDK's, and against a local HTTP
server it streams the raw body, sends If-Match, treats a vanished or changed object as None, retries what the
SDK retries (each attempt counted), and reports refusals as permanent CosErrors with the S3 code."""
from __future__ import annotations

import datetime as dt
import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from connectors import cos_get
from connectors.cos import CosError, ObjectInfo, list_objects, make_cos_client, open_object
from connectors.cos_get import (ObjectGetter, canonical_path, canonical_query, error_of, parse_listing, signing_key,
                                sigv4_headers)

NOW = dt.datetime(2026, 12, 6, 22, 51, 7, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize("key, query", [
    ("plain/key.json.gz", {}), ("ibm ü/sp ace+plus=eq&amp~tilde*star'q(p)!.gz", {}),
    ("", {"list-type": "2", "prefix": "a b/ü+&=", "max-keys": "1000", "continuation-token": "1/x+y==",
          "encoding-type": "url"})])
def test_the_signature_equals_the_sdks(monkeypatch, key, query):
    import ibm_botocore.auth as auth
    from ibm_botocore.awsrequest import AWSRequest
    from ibm_botocore.credentials import Credentials

    class Frozen(dt.datetime):
        @classmethod
        def utcnow(cls):
            return NOW.replace(tzinfo=None)

    monkeypatch.setattr(auth.datetime, "datetime", Frozen)
    path = canonical_path("my-bucket", key) if key else "/my-bucket"
    request = AWSRequest("GET", "http://cos.example:8080" + path, headers={"If-Match": '"abc"'}, params=query)
    request.context["payload_signing_enabled"] = True
    auth.S3SigV4Auth(Credentials("AK", "S/K+ey"), "s3", "us-east-1").add_auth(request)
    ours = sigv4_headers("GET", "cos.example:8080", path, {"If-Match": '"abc"'}, "AK",
                         signing_key("S/K+ey", "20261206", "us-east-1"), NOW, "us-east-1", canonical_query(query))
    assert ours["Authorization"] == request.headers["Authorization"]
    assert ours["x-amz-date"] == request.headers["X-Amz-Date"]


def test_error_codes_come_from_the_xml_else_the_status():
    body = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>no</Message></Error>"
    assert error_of(403, body) == ("AccessDenied", "no")
    assert error_of(502, b"<html>bad gateway</html>") == ("502", "HTTP 502")


class _S3(BaseHTTPRequestHandler):
    answers: list = []  # (status, headers, body) per request, in order
    seen: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        self.seen.append((self.path, dict(self.headers)))
        status, headers, body = self.answers.pop(0)
        self.send_response(status)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setattr(cos_get, "backoff_s", lambda attempt: 0.0)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _S3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _S3.answers, _S3.seen = [], []
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_streams_the_raw_body_of_the_version_asked_for(s3):
    body = gzip.compress(b'{"flow_logs": []}' * 5000)
    _S3.answers = [(200, {"ETag": '"e1"', "Content-Encoding": "gzip"}, body)]
    seen: list[str] = []
    client = make_cos_client(s3, hmac_access_key="AK", hmac_secret_key="SK", on_request=seen.append)
    chunks = list(open_object(client, "bkt", "a b/c.gz", etag="e1", chunk_size=1000))
    assert b"".join(chunks) == body and max(map(len, chunks)) <= 1000  # raw: the parser gunzips
    path, headers = _S3.seen[0]
    assert path == "/bkt/a%20b/c.gz" and headers["If-Match"] == '"e1"'
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AK/")
    assert seen == ["GetObject"]


@pytest.mark.parametrize("status, headers", [(404, {}), (412, {}), (200, {"ETag": '"other"'})])
def test_a_vanished_or_changed_object_is_none(s3, status, headers):
    _S3.answers = [(status, headers, b"<Error><Code>x</Code></Error>" if status != 200 else b"new")]
    assert ObjectGetter(s3, hmac_keys=("AK", "SK")).open("bkt", "k", "e1", 1000) is None


def test_throttling_and_5xx_are_retried_every_attempt_counted(s3):
    _S3.answers = [(503, {}, b"<Error><Code>SlowDown</Code></Error>"), (500, {}, b""), (200, {"ETag": '"e"'}, b"ok")]
    seen: list[str] = []
    getter = ObjectGetter(s3, token=lambda: "tok", max_attempts=3, on_request=seen.append)
    assert b"".join(getter.open("bkt", "k", "e", 10)) == b"ok"
    assert seen == ["GetObject"] * 3 and _S3.seen[-1][1]["Authorization"] == "Bearer tok"


def test_the_last_failed_attempt_is_a_transient_error(s3):
    _S3.answers = [(503, {}, b"<Error><Code>SlowDown</Code><Message>slow</Message></Error>")] * 2
    with pytest.raises(CosError) as err:
        ObjectGetter(s3, hmac_keys=("AK", "SK"), max_attempts=2).open("bkt", "k", None, 10)
    assert (err.value.code, err.value.transient) == ("SlowDown", True)


def test_a_refusal_is_permanent_and_not_retried(s3):
    _S3.answers = [(403, {}, b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>")]
    with pytest.raises(CosError) as err:
        ObjectGetter(s3, hmac_keys=("AK", "SK"), max_attempts=3).open("bkt", "k", None, 10)
    assert (err.value.code, err.value.transient, len(_S3.seen)) == ("AccessDenied", False, 1)


def test_no_answer_is_transient_after_every_attempt(monkeypatch):
    monkeypatch.setattr(cos_get, "backoff_s", lambda attempt: 0.0)
    seen: list[str] = []
    getter = ObjectGetter("http://127.0.0.1:9", hmac_keys=("AK", "SK"), max_attempts=2, connect_timeout=0.5,
                          on_request=seen.append)
    with pytest.raises(CosError) as err:
        getter.open("bkt", "k", None, 10)
    assert err.value.transient and seen == ["GetObject"] * 2


LISTING = b"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>bkt</Name><Prefix>p</Prefix>
<MaxKeys>2</MaxKeys><EncodingType>url</EncodingType><IsTruncated>%s</IsTruncated>%s
<Contents><Key>p/a+b%%26c%%07.gz</Key><LastModified>2026-12-02T06:00:00.123Z</LastModified><ETag>&quot;e1&quot;</ETag>
<Size>10</Size><StorageClass>STANDARD</StorageClass></Contents>
<Contents><Key>p/%%C3%%BC</Key><LastModified>2026-12-02T06:00:01Z</LastModified><ETag>"e2"</ETag><Size>0</Size></Contents>
</ListBucketResult>"""


def test_a_listing_page_gives_decoded_keys_etags_sizes_times_and_the_next_token():
    items, token = parse_listing(LISTING % (b"true", b"<NextContinuationToken>t/1=</NextContinuationToken>"))
    assert items == [("p/a b&c\x07.gz", "e1", 10, 1796191200123), ("p/\u00fc", "e2", 0, 1796191201000)]
    assert token == "t/1="
    assert parse_listing(LISTING % (b"false", b""))[1] is None


def test_listing_follows_continuation_tokens_every_page_counted(s3):
    _S3.answers = [(200, {}, LISTING % (b"true", b"<NextContinuationToken>t/1=</NextContinuationToken>")),
                   (200, {}, LISTING % (b"false", b""))]
    seen: list[str] = []
    client = make_cos_client(s3, hmac_access_key="AK", hmac_secret_key="SK", on_request=seen.append)
    got = list(list_objects(client, "bkt", "p/", page_size=2))
    assert [o.key for o in got] == ["p/a b&c\x07.gz", "p/\u00fc"] * 2 and isinstance(got[0], ObjectInfo)
    assert seen == ["ListObjectsV2"] * 2
    first, second = (path for path, _ in _S3.seen)
    assert first == "/bkt?encoding-type=url&list-type=2&max-keys=2&prefix=p%2F"
    assert second == "/bkt?continuation-token=t%2F1%3D&encoding-type=url&list-type=2&max-keys=2&prefix=p%2F"


class _Iam(BaseHTTPRequestHandler):
    good = True
    calls = 0

    def do_POST(self):  # noqa: N802 - http.server's name
        _Iam.calls += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if _Iam.good:
            status, body = 200, {"access_token": "tok-1", "refresh_token": "r", "token_type": "Bearer",
                                 "expires_in": 3600, "expiration": int(time.time()) + 3600}
        else:
            status, body = 400, {"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_):
        pass


@pytest.mark.parametrize("good", [True, False])
def test_iam_the_sdk_client_s_token_is_sent_a_refused_key_is_permanent(s3, good):
    iam = ThreadingHTTPServer(("127.0.0.1", 0), _Iam)
    threading.Thread(target=iam.serve_forever, daemon=True).start()
    _Iam.good, _Iam.calls = good, 0
    _S3.answers = [(200, {"ETag": '"e"'}, b"one"), (200, {"ETag": '"e"'}, b"two")]
    try:
        client = make_cos_client(s3, api_key="the-key", service_instance="crn:x",
                                 iam_token_url=f"http://127.0.0.1:{iam.server_address[1]}/identity/token")
        if good:
            assert [b"".join(open_object(client, "b", k, etag="e")) for k in ("k1", "k2")] == [b"one", b"two"]
            assert [h["Authorization"] for _, h in _S3.seen] == ["Bearer tok-1"] * 2 and _Iam.calls == 1
        else:
            with pytest.raises(CosError) as err:
                open_object(client, "b", "k1", etag="e")
            assert not err.value.transient and "the-key" not in str(err.value) and not _S3.seen
    finally:
        iam.shutdown()
        iam.server_close()
