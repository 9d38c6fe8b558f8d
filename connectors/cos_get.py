"""The GET of one object version, and of a listing page, without the SDK's request pipeline: a signed request
on a pooled urllib3 client. The SDK's GET (ibm_botocore: parameter validation, event hooks, request build,
signing, response parsing) cost ~1 ms of CPU per object, most of a small object's cost; its listing parse
(XML to DOM, a dict per key) ~50 µs per listed key. ElementTree's C parser reads a listing here.

Same contract as the SDK call it replaces (connectors/cos.py `open_object`): path-style URL, `If-Match` with the
listed ETag (a vanished or changed object is None, never read), the same authentication as the SDK client it
is made from (HMAC: AWS Signature Version 4 with the HMAC keys; IAM: the SDK client's own bearer token, so one
token is fetched and refreshed per process), the SDK's retry policy for GETs (connection failures, 5xx,
throttling: up to `max_attempts` attempts, each counted by `on_request`, with the SDK's "standard" backoff),
errors as `CosError` with the S3 code, and the body streamed raw (Content-Encoding is not applied: the
parser's bounded gunzip reads it) in `chunk_size` pieces; a connection whose body was not read to its end is
closed, not reused.

Listings ask for URL-encoded keys (`encoding-type=url`, as the SDK does: XML cannot carry every key) and
decode them.

Pure: `canonical_path`, `canonical_query`, `sigv4_headers`, `parse_listing`, `error_of`. Shell: `ObjectGetter`.
"""
from __future__ import annotations

import hashlib
import hmac
import random
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit
from xml.etree import ElementTree

import urllib3

from connectors.cos_errors import _TRANSIENT_CODES, CosError, _error

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_XML_FIELD = re.compile(r"<(Code|Message)>([^<]*)</\1>")


def canonical_path(bucket: str, key: str) -> str:
    """The path-style URL path of an object, each byte outside S3's unreserved set percent-encoded (as SigV4
    canonicalises it, so the path sent is the path signed)."""
    return "/" + quote(bucket, safe="") + "/" + quote(key, safe="/~")


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret: str, day: str, region: str) -> bytes:
    """The SigV4 signing key of one day, region and service s3 (the same for every request of that day)."""
    return _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), day), region), "s3"), "aws4_request")


def canonical_query(params: dict[str, str]) -> str:
    """A query string as SigV4 canonicalises it (and as it is sent): names sorted, names and values
    percent-encoded outside the unreserved set."""
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))


def parse_listing(body: bytes) -> tuple[list[tuple[str, str, int, int]], str | None]:
    """A ListObjectsV2 answer: ([(key, etag, size, LastModified epoch ms)], the next continuation token or
    None when it was the last page). Keys are URL-decoded when the answer says it encoded them."""
    root = ElementTree.fromstring(body)
    ns = root.tag[:root.tag.index("}") + 1] if root.tag.startswith("{") else ""
    contents, top = ns + "Contents", {}
    items = []
    for element in root:
        if element.tag != contents:
            top[element.tag[len(ns):]] = element.text
            continue
        fields = {child.tag[len(ns):]: child.text for child in element}
        items.append([fields.get("Key") or "", (fields.get("ETag") or "").strip('"'), int(fields.get("Size") or 0),
                      epoch_ms(fields.get("LastModified") or "")])
    if top.get("EncodingType") == "url":
        for item in items:
            item[0] = url_decoded(item[0])
    token = top.get("NextContinuationToken")
    more = (top.get("IsTruncated") or "").lower() == "true"
    return [tuple(item) for item in items], (token if token and more else None)


@lru_cache(maxsize=1 << 16)
def url_decoded(key: str) -> str:
    """A key as listed with encoding-type=url, decoded (cached: a poll lists the keys still waiting again)."""
    return unquote_plus(key)


@lru_cache(maxsize=1 << 12)
def epoch_ms(value: str) -> int:
    """Epoch milliseconds of a listing's ISO 8601 LastModified (0 if absent)."""
    if not value:
        return 0
    return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)


def sigv4_headers(method: str, host: str, path: str, headers: dict[str, str], access_key: str, key: bytes,
                  now: datetime, region: str, query: str = "") -> dict[str, str]:
    """`headers` plus host, x-amz-date, x-amz-content-sha256 (no body) and the Authorization of AWS Signature
    Version 4 over all of them; `key` is `signing_key(secret, now's day, region)`."""
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    out = {**headers, "host": host, "x-amz-date": stamp, "x-amz-content-sha256": EMPTY_SHA256}
    names = sorted(k.lower() for k in out)
    lower = {k.lower(): " ".join(str(v).split()) for k, v in out.items()}
    signed = ";".join(names)
    canonical = "\n".join([method, path, query, *(f"{n}:{lower[n]}" for n in names), "", signed, EMPTY_SHA256])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out["Authorization"] = f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed}, " \
                           f"Signature={signature}"
    del out["host"]  # urllib3 sends the Host header itself (the same value)
    return out


def error_of(status: int, body: bytes) -> tuple[str, str]:
    """(S3 error code, message) of an error answer: its XML's Code and Message, else the HTTP status."""
    fields = dict(_XML_FIELD.findall(body[:4096].decode("utf-8", "replace")))
    return fields.get("Code") or str(status), fields.get("Message") or f"HTTP {status}"


def backoff_s(attempt: int) -> float:
    """The SDK's "standard" retry delay before attempt `attempt` + 1 (random, up to 2^attempt s, at most 20)."""
    return random.random() * min(20.0, 2.0 ** attempt)


class ObjectGetter:
    """GETs of object versions and of listings for one COS client (HMAC keys, or `token()` giving the IAM
    bearer token)."""

    def __init__(self, endpoint_url: str, *, hmac_keys: tuple[str, str] | None = None,
                 token: Callable[[], str] | None = None, region: str = "us-east-1", max_attempts: int = 5,
                 connect_timeout: float = 5.0, read_timeout: float = 60.0, max_pool_connections: int = 32,
                 ca_certs: str | None = None, on_request: Callable[[str], None] | None = None):
        parts = urlsplit(endpoint_url if "://" in endpoint_url else "https://" + endpoint_url)
        self.base, self.host = f"{parts.scheme}://{parts.netloc}", parts.netloc
        self.prefix = parts.path.rstrip("/")
        self.hmac_keys, self.token, self.region = hmac_keys, token, region
        self.max_attempts, self.on_request = max(1, max_attempts), on_request
        self._keys: dict[str, bytes] = {}
        # one pool for the one endpoint, asked with the request target only: a PoolManager would parse every
        # URL twice (~40 µs per GET on percent-encoded keys)
        self.http = urllib3.PoolManager(
            maxsize=max_pool_connections, retries=False, ca_certs=ca_certs,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout))
        self.pool = self.http.connection_from_url(self.base)

    def _headers(self, path: str, query: str, etag: str | None) -> dict[str, str]:
        headers = {"If-Match": f'"{etag}"'} if etag else {}
        if self.hmac_keys is None:
            return {**headers, "Authorization": f"Bearer {self.token()}"}
        access, secret = self.hmac_keys
        now = datetime.now(timezone.utc)
        day = now.strftime("%Y%m%d")
        key = self._keys.get(day)
        if key is None:
            self._keys = {day: (key := signing_key(secret, day, self.region))}
        return sigv4_headers("GET", self.host, path, headers, access, key, now, self.region, query)

    def _get(self, op: str, operation: str, bucket: str, key: str | None, path: str, query: str = "",
             etag: str | None = None) -> Any:
        """The answer to a GET with status 200 (its body unread), or None for 404 / 412 of an object (`key`).
        Retries like the SDK; raises CosError."""
        target = path + ("?" + query if query else "")
        for attempt in range(self.max_attempts):
            last = attempt + 1 == self.max_attempts
            try:
                headers = self._headers(path, query, etag)
            except Exception as exc:  # noqa: BLE001 - the IAM token: the SDK's errors, judged as for any call
                raise _error(op, bucket, key, exc) from None
            if self.on_request is not None:
                self.on_request(operation)
            try:
                resp = self.pool.urlopen("GET", target, headers=headers, preload_content=False, redirect=False,
                                         decode_content=False)
            except urllib3.exceptions.HTTPError as exc:
                if last:
                    raise CosError(op, bucket, key, type(exc).__name__, str(exc), transient=True) from None
                time.sleep(backoff_s(attempt))
                continue
            if resp.status == 200:
                return resp
            body = resp.read(65536, decode_content=False)
            if resp.length_remaining:
                resp.close()  # an error body longer than read: the connection is not reused
            else:
                resp.release_conn()
            if key is not None and resp.status in (404, 412):
                return None
            code, message = error_of(resp.status, body)
            transient = resp.status in _RETRY_STATUS or code in _TRANSIENT_CODES
            if not transient or last:
                raise CosError(op, bucket, key, code, message, transient=transient)
            time.sleep(backoff_s(attempt))
        raise AssertionError("max_attempts is at least 1")

    def open(self, bucket: str, key: str, etag: str | None, chunk_size: int) -> Iterator[bytes] | None:
        """The object's raw bytes as a lazy iterator of chunks, or None if it vanished (or, with `etag`,
        changed since it was listed). Raises CosError."""
        resp = self._get("get", "GetObject", bucket, key, self.prefix + canonical_path(bucket, key), etag=etag)
        if resp is None:
            return None
        if etag and resp.headers.get("ETag", "").strip('"') not in ("", etag):
            resp.close()
            return None  # not the version asked for (a server ignoring If-Match)
        return _chunks(resp, chunk_size, bucket, key)

    def list_page(self, bucket: str, prefix: str, page_size: int, token: str | None) -> tuple[list, str | None]:
        """One ListObjectsV2 page: ([(key, etag, size, LastModified epoch ms)], continuation token or None)."""
        params = {"list-type": "2", "encoding-type": "url", "max-keys": str(page_size), "prefix": prefix}
        if token:
            params["continuation-token"] = token
        resp = self._get("list", "ListObjectsV2", bucket, None, self.prefix + "/" + quote(bucket, safe=""),
                         canonical_query(params))
        try:
            body = resp.read(decode_content=True)
        except urllib3.exceptions.HTTPError as exc:
            resp.close()
            raise CosError("list", bucket, prefix or None, type(exc).__name__, str(exc), transient=True) from None
        resp.release_conn()
        return parse_listing(body)


def _chunks(resp: Any, chunk_size: int, bucket: str, key: str) -> Iterator[bytes]:
    done = False
    try:
        for chunk in resp.stream(chunk_size, decode_content=False):
            if chunk:
                yield chunk
        done = True
    except urllib3.exceptions.HTTPError as exc:
        raise CosError("get", bucket, key, type(exc).__name__, str(exc), transient=True) from None
    finally:
        if done:
            resp.release_conn()
        else:  # closed early or broken: the connection is not reused
            resp.close()
