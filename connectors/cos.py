"""IBM Cloud Object Storage client helpers (ibm_boto3): list, stream, head, put and batched delete
(version-checked deletes: connectors/cos_delete.py; the SDK client itself: connectors/cos_client.py).

Synchronous and side-effect free apart from the S3 calls: the app runs them in a thread pool.
Authentication is either an IAM API key (production: bearer tokens, `signature_version="oauth"`) or HMAC
keys (S3-compatible servers such as the local S3Proxy). Errors surface as `CosError` carrying the
operation, bucket, key, S3 error code and a human reason; API keys and HMAC secrets never appear in them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from ibm_botocore.exceptions import BotoCoreError, ClientError

from connectors.cos_client import make_cos_client  # noqa: F401 - the client of these helpers, re-exported

PAGE_SIZE = 1000  # list_objects_v2 and delete_objects both cap at 1000 keys
CHUNK_SIZE = 64 * 1024
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


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


class CosError(Exception):
    """A COS call failed. `transient` tells retryable failures (throttling, 5xx, network) from others."""

    def __init__(self, op: str, bucket: str, key: str | None, code: str, reason: str, transient: bool) -> None:
        self.op, self.bucket, self.key, self.code, self.reason, self.transient = op, bucket, key, code, reason, transient
        where = f"{bucket}/{key}" if key else bucket
        super().__init__(f"COS {op} {where}: {code}: {reason}")


_TRANSIENT_CODES = frozenset({
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed",
    "500", "502", "503", "504", "Throttling", "ThrottlingException",
})


def _error(op: str, bucket: str, key: str | None, exc: Exception) -> CosError:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {}) or {}
        code = str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        reason = str(err.get("Message") or f"HTTP {status}")
        transient = code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500)
        return CosError(op, bucket, key, code, reason, transient)
    if isinstance(exc, BotoCoreError):
        # connection problems, timeouts, IAM token failures (the message names the endpoint, never the key)
        name = type(exc).__name__
        return CosError(op, bucket, key, name, str(exc), transient=not _credentials_refused(name, str(exc)))
    return CosError(op, bucket, key, type(exc).__name__, str(exc) or type(exc).__name__, transient=True)


_IAM_STATUS = re.compile(r"HttpCode\((\d{3})\)")


def _credentials_refused(name: str, message: str) -> bool:
    """An IAM token or credentials failure that retrying cannot fix: IAM answered 4xx (a wrong or revoked
    key), or there are no credentials at all. IAM answering 5xx or 429, or not reachable, is transient like
    any outage — the fault suite's IAM 500s once turned a worker unhealthy as if its key were wrong."""
    if not ("Token" in name or "Credential" in name or "token" in message.lower()):
        return False
    status = _IAM_STATUS.search(message)
    if status:
        code = int(status.group(1))
        return 400 <= code < 500 and code != 429
    return name in ("NoCredentialsError", "PartialCredentialsError", "NoAuthTokenError")


def _is_missing(exc: Exception) -> bool:
    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _MISSING_CODES or status == 404


def _ms(dt: Any) -> int:
    return int(dt.timestamp() * 1000) if dt is not None else 0


def ensure_bucket(client: Any, bucket: str) -> bool:
    """Create the bucket if needed; True if it was created."""
    try:
        client.create_bucket(Bucket=bucket)
        return True
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            return False
        raise _error("create_bucket", bucket, None, exc) from None
    except BotoCoreError as exc:
        raise _error("create_bucket", bucket, None, exc) from None


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


def put_object(client: Any, bucket: str, key: str, body: bytes, *, metadata: dict[str, str] | None = None,
               content_type: str = "application/octet-stream", content_encoding: str | None = None) -> str:
    """Upload one object; returns its ETag (without quotes)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": body, "ContentType": content_type,
                              "Metadata": metadata or {}}
    if content_encoding:
        kwargs["ContentEncoding"] = content_encoding
    try:
        resp = client.put_object(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise _error("put", bucket, key, exc) from None
    return str(resp.get("ETag", "")).strip('"')


_XML_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def xml_safe(key: str) -> bool:
    """Whether an S3 XML body (DeleteObjects) can carry `key` unchanged: no control characters."""
    return _XML_UNSAFE.search(key) is None


def delete_objects(client: Any, bucket: str, keys: Iterable[str]) -> dict[str, str | None]:
    """Delete keys in batches of ≤ 1000. Returns key -> None (deleted or already gone) or a reason string."""
    result: dict[str, str | None] = {}
    batch: list[str] = []

    def flush() -> None:
        if not batch:
            return
        try:
            resp = client.delete_objects(
                Bucket=bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
        except (ClientError, BotoCoreError) as exc:
            err = _error("delete", bucket, None, exc)
            for k in batch:
                result[k] = f"{err.code}: {err.reason}"
        else:
            for k in batch:
                result[k] = None
            for e in resp.get("Errors", ()) or ():
                code = str(e.get("Code", ""))
                if code not in _MISSING_CODES:
                    result[e.get("Key", "")] = f"{code}: {e.get('Message', '')}".strip()
        batch.clear()

    seen: set[str] = set()
    for key in keys:
        if key in seen:
            continue
        seen.add(key)
        if not xml_safe(key):  # the DeleteObjects XML cannot carry it: the key goes in a DELETE's URL instead
            try:
                delete_object(client, bucket, key)
                result[key] = None
            except CosError as exc:
                result[key] = f"{exc.code}: {exc.reason}"
            continue
        batch.append(key)
        if len(batch) >= PAGE_SIZE:
            flush()
    flush()
    return result


def delete_object(client: Any, bucket: str, key: str) -> None:
    """Delete one object; a missing object counts as deleted."""
    try:
        client.delete_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if not _is_missing(exc):
            raise _error("delete", bucket, key, exc) from None
    except BotoCoreError as exc:
        raise _error("delete", bucket, key, exc) from None
