"""Version-checked deletes on COS: delete an object only if it still is the version that was read.

`delete_versions_if_unchanged`: listings of the keys as the version check, then DeleteObjects of up to 1,000
keys (keys the XML cannot carry: one DELETE each, with If-Match). Blocking, like
connectors/cos.py, whose client, errors and listing they use.
"""
from __future__ import annotations

import os
from typing import Any

from ibm_botocore.exceptions import BotoCoreError, ClientError

from connectors.cos import (_MISSING_CODES, _TRANSIENT_CODES, PAGE_SIZE, CosError, _error, _is_missing, list_objects,
                            xml_safe)
from connectors.cos_client import _IF_MATCH_PARAM

DELETED, GONE, CHANGED = "deleted", "gone", "changed"


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


def listed_etags(client: Any, bucket: str, keys: list[str], page_size: int = PAGE_SIZE) -> dict[str, str]:
    """The current ETags of `keys` (a batched version check): key -> ETag of those that exist; a key missing
    from the answer does not exist.

    Listing pages from the lowest key not yet checked: a page answers for every asked key up to the last key
    it lists, and the next listing starts at the next asked key after that, so keys spread over a large
    bucket cost one request per gap between them (never more than one HEAD each would), and keys close
    together share one request per 1,000 entries."""
    todo = sorted(set(keys))
    wanted = set(todo)
    found: dict[str, str] = {}
    i, reached = 0, ""
    while i < len(todo):
        reached = _list_from(client, bucket, todo[i:], max(reached, todo[i][:-1]), page_size, found, wanted)
        while i < len(todo) and (reached is None or todo[i] <= reached):  # reached ≥ todo[i]: progress
            i += 1
    return found


def _list_from(client: Any, bucket: str, todo: list[str], after: str, page_size: int, found: dict, wanted: set):
    """One listing from just before todo[0] (keys after `after`, which is below it): record the ETags of wanted keys in `found`; return the last key the listing
    answered for (None: the listing ended, so it answered for every key of `todo`). It stops at the end of a
    page once it has reached todo[0] (or passed todo[-1]), so a request is never spent on entries nobody asked
    about."""
    low, high = todo[0], todo[-1]
    prefix = os.path.commonprefix(todo)
    for n, info in enumerate(list_objects(client, bucket, prefix, start_after=after or None, page_size=page_size),
                             1):
        if info.key in wanted:
            found[info.key] = info.etag
        if info.key >= high or (n % page_size == 0 and info.key >= low):
            return info.key
    return None


def delete_versions_if_unchanged(client: Any, bucket: str, items: list[tuple[str, str]]) -> dict[str, Any]:
    """Delete each (key, etag) only if it still is that version: key -> DELETED, GONE, CHANGED, or the
    CosError of that key (retry it: it is never assumed gone).

    Listings of the keys (`listed_etags`) check every version, then one DeleteObjects per 1,000 keys deletes
    the unchanged ones; keys the XML cannot carry are deleted one by one with If-Match. A new version written
    between the listing and the DeleteObjects — one round trip — is the remaining race window (DeleteObjects
    carries no If-Match; it is sent once, never retried by the SDK, so the window stays one round trip)."""
    items = list(dict(items).items())
    if not items:
        return {}
    current = listed_etags(client, bucket, [k for k, _ in items])
    results: dict[str, Any] = {}
    batch: list[str] = []
    for key, etag in items:
        try:
            if key not in current:
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
    sender = getattr(client, "blueflow_delete_client", client)  # no SDK retries: see connectors/cos_client.py
    try:
        resp = sender.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
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
