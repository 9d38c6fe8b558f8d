"""Version-checked deletes on COS: delete an object only if it still is the version that was read.

`delete_if_unchanged` (one key: HEAD + DELETE with If-Match) and `delete_versions_if_unchanged` (a batch:
one listing of the keys' range as the version check + DeleteObjects of up to 1,000 keys). Blocking, like
connectors/cos.py, whose client, errors and listing they use.
"""
from __future__ import annotations

import os
from typing import Any

from ibm_botocore.exceptions import BotoCoreError, ClientError

from connectors.cos import (_IF_MATCH_PARAM, _MISSING_CODES, _TRANSIENT_CODES, PAGE_SIZE, CosError, _error,
                            _is_missing, head_object, list_objects, xml_safe)

DELETED, GONE, CHANGED = "deleted", "gone", "changed"
VERSION_CHECK_KEYS = 2000  # listing entries read at most to check a batch's versions (2 pages); then HEADs


def delete_if_unchanged(client: Any, bucket: str, key: str, etag: str) -> str:
    """Delete `key` only if it is still the version `etag`: DELETED, GONE (nothing to delete) or CHANGED
    (a new version was written since; it is left for the pipeline to process).

    A HEAD right before a single-key DELETE compares the ETag, and the DELETE carries `If-Match: "etag"` so a
    server that supports conditional deletes refuses a changed object atomically (412 → CHANGED). Where the
    server ignores If-Match, an overwrite landing between the HEAD and the DELETE — the few milliseconds of
    one round trip — is the remaining race window. A single-key DELETE puts the key in the URL, so keys
    that the DeleteObjects XML cannot carry (control characters) are deleted too."""
    head = head_object(client, bucket, key)
    if head is None:
        return GONE
    if head.etag != etag:
        return CHANGED
    return _delete_if_match(client, bucket, key, etag)


def _delete_if_match(client: Any, bucket: str, key: str, etag: str) -> str:
    try:
        client.delete_object(Bucket=bucket, Key=key, **{_IF_MATCH_PARAM: f'"{etag}"'})
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return CHANGED
        if not _is_missing(exc):
            raise _error("delete", bucket, key, exc) from None
    except BotoCoreError as exc:
        raise _error("delete", bucket, key, exc) from None
    return DELETED


def listed_etags(client: Any, bucket: str, keys: list[str], limit: int = VERSION_CHECK_KEYS) -> tuple[dict, str]:
    """The current ETags of `keys`, from one listing of the key range they span (a batched version check):
    (key -> ETag of those listed, the last key the listing covered). A key ≤ that last key and not listed
    does not exist; keys after it (range longer than `limit` entries) were not checked."""
    low, high = min(keys), max(keys)
    wanted, found, reached = set(keys), {}, ""
    prefix = os.path.commonprefix(keys)
    for n, info in enumerate(list_objects(client, bucket, prefix, start_after=low[:-1] or None), 1):
        if info.key > high:
            return found, high
        reached = info.key
        if info.key in wanted:
            found[info.key] = info.etag
        if n >= limit:
            return found, reached
    return found, high


def delete_versions_if_unchanged(client: Any, bucket: str, items: list[tuple[str, str]]) -> dict[str, Any]:
    """Delete each (key, etag) only if it still is that version: key -> DELETED, GONE, CHANGED, or the
    CosError of that key (retry it: it is never assumed gone).

    One listing of the keys' range checks every version, then one DeleteObjects per 1,000 keys deletes the
    unchanged ones; keys the XML cannot carry are deleted one by one with If-Match, and keys beyond what the
    listing covered are checked with a HEAD first. A new version written between the listing and the
    DeleteObjects — one round trip — is the remaining race window (DeleteObjects carries no If-Match)."""
    items = list(dict(items).items())
    if not items:
        return {}
    current, reached = listed_etags(client, bucket, [k for k, _ in items])
    results: dict[str, Any] = {}
    batch: list[str] = []
    for key, etag in items:
        try:
            if key not in current and key > reached:
                results[key] = delete_if_unchanged(client, bucket, key, etag)
            elif key not in current:
                results[key] = GONE
            elif current[key] != etag:
                results[key] = CHANGED
            elif xml_safe(key):
                batch.append(key)
            else:
                results[key] = _delete_if_match(client, bucket, key, etag)
        except CosError as exc:
            results[key] = exc
    for start in range(0, len(batch), PAGE_SIZE):
        results.update(_delete_batch(client, bucket, batch[start:start + PAGE_SIZE]))
    return results


def _delete_batch(client: Any, bucket: str, keys: list[str]) -> dict[str, Any]:
    """One DeleteObjects: key -> DELETED (or already gone) or the CosError the batch reported for it."""
    try:
        resp = client.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
    except (ClientError, BotoCoreError) as exc:
        err = _error("delete", bucket, None, exc)
        return {k: CosError("delete", bucket, k, err.code, err.reason, err.transient) for k in keys}
    results: dict[str, Any] = dict.fromkeys(keys, DELETED)
    for e in resp.get("Errors", ()) or ():
        code = str(e.get("Code", "") or "Unknown")
        if code not in _MISSING_CODES and e.get("Key", "") in results:
            results[e["Key"]] = CosError("delete", bucket, e["Key"], code, str(e.get("Message", "") or code),
                                         code in _TRANSIENT_CODES or code == "Unknown")
    return results
