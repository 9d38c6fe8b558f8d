"""IBM Cloud Object Storage client helpers (ibm_boto3): list, stream, head (version-checked deletes:
connectors/cos_delete.py; the SDK client itself: connectors/cos_client.py; the errors: connectors/cos_errors.py;
GETs of objects and listings without the SDK: connectors/cos_get.py).

Synchronous and side-effect free apart from the S3 calls: the app runs them in a thread pool.
Authentication is either an IAM API key (production: bearer tokens, `signature_version="oauth"`) or HMAC
keys (S3-compatible servers such as the local S3Proxy). Errors surface as `CosError` carrying the
operation, bucket, key, S3 error code and a human reason; API keys and HMAC secrets never appear in them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from ibm_botocore.exceptions import BotoCoreError, ClientError

from connectors.cos_client import make_cos_client  # noqa: F401 - the client of these helpers, re-exported
from connectors.cos_errors import (_MISSING_CODES, _TRANSIENT_CODES, CosError, _error,  # noqa: F401 - re-exported
                                   _is_missing)

PAGE_SIZE = 1000  # list_objects_v2 and delete_objects both cap at 1000 keys
CHUNK_SIZE = 64 * 1024


class ObjectInfo(NamedTuple):
    key: str
    etag: str  # without quotes
    size: int
    last_modified: int  # epoch milliseconds (UTC)


class ObjectHead(NamedTuple):
    key: str
    etag: str
    size: int
    last_modified: int  # epoch milliseconds
    metadata: dict[str, str]  # user metadata without the x-amz-meta- prefix (the flow-log header)
    content_encoding: str | None
    content_type: str | None


def _ms(dt: Any) -> int:
    return int(dt.timestamp() * 1000) if dt is not None else 0


def list_objects(client: Any, bucket: str, prefix: str = "", *, page_size: int = PAGE_SIZE) -> Iterator[ObjectInfo]:
    """Every object under `prefix`, page by page (lazy: one list call per `page_size` keys), in the order COS
    gives them — IBM: "non-lexographical order", so callers never read meaning into it (no StartAfter)."""
    getter = getattr(client, "blueflow_get", None)
    if getter is not None:  # the lean GET of connectors/cos_get.py
        token = None
        while True:
            items, token = getter.list_page(bucket, prefix, page_size, token)
            yield from (ObjectInfo(*item) for item in items)
            if token is None:
                return
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
    while True:
        try:
            page = client.list_objects_v2(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise _error("list", bucket, prefix or None, exc) from None
        for item in page.get("Contents", ()):  # an empty page has no Contents
            yield ObjectInfo(item["Key"], item.get("ETag", "").strip('"'), int(item.get("Size", 0)),
                             _ms(item.get("LastModified")))
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return
        kwargs["ContinuationToken"] = token


def _chunks(body: Any, chunk_size: int, bucket: str, key: str) -> Iterator[bytes]:
    try:
        for chunk in body.iter_chunks(chunk_size):
            if chunk:
                yield chunk
    except (ClientError, BotoCoreError) as exc:
        raise _error("get", bucket, key, exc) from None
    finally:
        body.close()


class ObjectStream(NamedTuple):
    head: ObjectHead
    chunks: Iterator[bytes]


def open_object_with_head(client: Any, bucket: str, key: str, *, etag: str | None = None,
                          chunk_size: int = CHUNK_SIZE) -> ObjectStream | None:
    """GET an object as (head incl. metadata, lazy chunk iterator); None if it vanished
    (or, with `etag`, changed since it was listed). Close the iterator to release the connection."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if etag:
        kwargs["IfMatch"] = f'"{etag}"'
    try:
        resp = client.get_object(**kwargs)
    except ClientError as exc:
        if _is_missing(exc) or exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return None
        raise _error("get", bucket, key, exc) from None
    except BotoCoreError as exc:
        raise _error("get", bucket, key, exc) from None
    head = ObjectHead(key, str(resp.get("ETag", "")).strip('"'), int(resp.get("ContentLength", 0)),
                      _ms(resp.get("LastModified")), dict(resp.get("Metadata") or {}),
                      resp.get("ContentEncoding"), resp.get("ContentType"))
    return ObjectStream(head, _chunks(resp["Body"], chunk_size, bucket, key))


def open_object(client: Any, bucket: str, key: str, *, etag: str | None = None,
                chunk_size: int = CHUNK_SIZE) -> Iterator[bytes] | None:
    """The object's bytes as a lazy iterator of chunks, or None if it no longer exists (or, with `etag`,
    changed). Through the client's lean GET (connectors/cos_get.py) when it has one."""
    getter = getattr(client, "blueflow_get", None)
    if getter is not None:
        return getter.open(bucket, key, etag or None, chunk_size)
    stream = open_object_with_head(client, bucket, key, etag=etag, chunk_size=chunk_size)
    return None if stream is None else stream.chunks


def head_object(client: Any, bucket: str, key: str) -> ObjectHead | None:
    """Size, ETag and user metadata (the flow-log header) of an object; None if it does not exist."""
    try:
        resp = client.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if _is_missing(exc):
            return None
        raise _error("head", bucket, key, exc) from None
    except BotoCoreError as exc:
        raise _error("head", bucket, key, exc) from None
    return ObjectHead(key, str(resp.get("ETag", "")).strip('"'), int(resp.get("ContentLength", 0)),
                      _ms(resp.get("LastModified")), dict(resp.get("Metadata") or {}),
                      resp.get("ContentEncoding"), resp.get("ContentType"))


_XML_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def xml_safe(key: str) -> bool:
    """Whether an S3 XML body (DeleteObjects) can carry `key` unchanged: no control characters."""
    return _XML_UNSAFE.search(key) is None
