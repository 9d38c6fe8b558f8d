"""Version-checked deletes on COS: delete an object only if it still is the version that was read.

`delete_versions_if_unchanged`: listings of the keys' folders (and a HEAD for any key a listing did not show)
as the version check, then DeleteObjects of up to 1,000 keys (keys the XML cannot carry: one DELETE each, with
If-Match). Listing order means nothing here (IBM: "non-lexographical order"): a key is absent only when a HEAD
says so. Blocking, like
connectors/cos.py, whose client, errors and listing they use.
"""
from __future__ import annotations

import os
from typing import Any

from ibm_botocore.exceptions import BotoCoreError, ClientError

from connectors.cos import (_MISSING_CODES, _TRANSIENT_CODES, PAGE_SIZE, CosError, _error, _is_missing, head_object,
                            list_objects, xml_safe)
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


def current_etags(client: Any, bucket: str, keys: list[str], page_size: int = PAGE_SIZE) -> dict[str, Any]:
    """The current version of each of `keys` (a batched version check): key -> its ETag, None when a HEAD
    answered that it does not exist, or the CosError of that key's HEAD (unknown: try again).

    IBM's COS API reference says listings come "in non-lexographical order", so nothing here reads meaning
    into key order. Keys are looked for in listings of the folder they share (`_look`), each listing bounded
    by the pages its keys could fill and all of them by one request per key (what a HEAD each would cost); a
    key no listing showed is unknown, never absent, and is asked for on its own (HEAD): only a HEAD's 404
    makes it absent. Listing failures raise CosError (the whole check is tried again)."""
    todo = list(dict.fromkeys(keys))
    result: dict[str, Any] = {}
    _look(client, bucket, todo, page_size, result, [len(todo)])
    for key in todo:
        if key in result:
            continue
        try:
            head = head_object(client, bucket, key)
        except CosError as exc:
            result[key] = exc
            continue
        result[key] = None if head is None else head.etag
    return result


def _folder_prefix(keys: list[str], at_least: int = 0) -> str:
    common = os.path.commonprefix(keys)
    return common[:max(at_least, common.rfind("/") + 1)]


def _look(client: Any, bucket: str, keys: list[str], page_size: int, found: dict, requests: list[int]) -> None:
    """List the folder `keys` share (recording their ETags in `found`), then do the same for each sub-folder
    holding two or more keys that listing did not show. `requests` is the listing requests left."""
    if len(keys) < 2 or requests[0] <= 0:
        return
    prefix = _folder_prefix(keys)
    requests[0] -= _list_folder(client, bucket, prefix, keys, page_size, found, requests[0])
    below: dict[str, list[str]] = {}
    for key in keys:
        cut = key.find("/", len(prefix))
        if key not in found and cut >= 0:
            below.setdefault(key[:cut + 1], []).append(key)
    for group in below.values():
        _look(client, bucket, group, page_size, found, requests)


def _list_folder(client: Any, bucket: str, prefix: str, keys: list[str], page_size: int, found: dict,
                 most: int) -> int:
    """Record in `found` the ETags of `keys` one listing of `prefix` shows, in whatever order it lists them;
    stop when every key was seen or after the pages the keys could fill (at most `most`) — never because of
    where a key would sort. Returns the requests made."""
    wanted = set(keys)
    pages = min(most, len(keys) // page_size + 1)
    n = 0
    for n, info in enumerate(list_objects(client, bucket, prefix, page_size=page_size), 1):
        if info.key in wanted:
            found[info.key] = info.etag
            wanted.discard(info.key)
        if not wanted or (n % page_size == 0 and n // page_size >= pages):
            break
    return max(1, -(-n // page_size))


def delete_versions_if_unchanged(client: Any, bucket: str, items: list[tuple[str, str]]) -> dict[str, Any]:
    """Delete each (key, etag) only if it still is that version: key -> DELETED, GONE, CHANGED, or the
    CosError of that key (retry it: it is never assumed gone).

    `current_etags` checks every version, then one DeleteObjects per 1,000 keys deletes
    the unchanged ones; keys the XML cannot carry are deleted one by one with If-Match. A new version written
    between the listing and the DeleteObjects — one round trip — is the remaining race window (DeleteObjects
    carries no If-Match; it is sent once, never retried by the SDK, so the window stays one round trip)."""
    items = list(dict(items).items())
    if not items:
        return {}
    current = current_etags(client, bucket, [k for k, _ in items])
    results: dict[str, Any] = {}
    batch: list[str] = []
    for key, etag in items:
        try:
            if isinstance(current[key], CosError):
                results[key] = current[key]
            elif current[key] is None:
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
