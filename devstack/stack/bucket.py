"""The local stack's bucket as the dev tools reach it: a client with the HMAC keys of `.devstack/env`, uploads,
unconditional deletes (the product deletes only version-checked: connectors/cos_delete.py), and emptying it
between runs."""
from __future__ import annotations

from typing import Any, Iterable


def hmac_client(env: dict[str, str]):
    from connectors.cos import make_cos_client

    return make_cos_client(env["BLUEFLOW_COS_ENDPOINT"], hmac_access_key=env["BLUEFLOW_COS_HMAC_ACCESS_KEY"],
                           hmac_secret_key=env["BLUEFLOW_COS_HMAC_SECRET_KEY"])


def empty_bucket(client, bucket: str) -> int:
    """Delete every object of `bucket`; how many there were."""
    from connectors.cos import list_objects

    keys = [o.key for o in list_objects(client, bucket, "")]
    for i in range(0, len(keys), 1000):
        delete_objects(client, bucket, keys[i:i + 1000])
    return len(keys)


def put_object(client: Any, bucket: str, key: str, body: bytes, *, metadata: dict[str, str] | None = None,
               content_type: str = "application/octet-stream", content_encoding: str | None = None) -> str:
    """Upload one object; returns its ETag (without quotes)."""
    from ibm_botocore.exceptions import BotoCoreError, ClientError

    from connectors.cos_errors import _error

    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key, "Body": body, "ContentType": content_type,
                              "Metadata": metadata or {}}
    if content_encoding:
        kwargs["ContentEncoding"] = content_encoding
    try:
        resp = client.put_object(**kwargs)
    except (ClientError, BotoCoreError) as exc:
        raise _error("put", bucket, key, exc) from None
    return str(resp.get("ETag", "")).strip('"')


def delete_objects(client: Any, bucket: str, keys: Iterable[str]) -> dict[str, str | None]:
    """Delete keys in batches of ≤ 1000. Returns key -> None (deleted or already gone) or a reason string."""
    from ibm_botocore.exceptions import BotoCoreError, ClientError

    from connectors.cos import PAGE_SIZE, xml_safe
    from connectors.cos_errors import _MISSING_CODES, CosError, _error

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
    from ibm_botocore.exceptions import BotoCoreError, ClientError

    from connectors.cos_errors import _error, _is_missing

    try:
        client.delete_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if not _is_missing(exc):
            raise _error("delete", bucket, key, exc) from None
    except BotoCoreError as exc:
        raise _error("delete", bucket, key, exc) from None
