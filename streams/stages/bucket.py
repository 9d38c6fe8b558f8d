"""The stages' COS calls (blocking; run on the thread pool): list, open, version-checked batched delete — each
on the COS client of the object's source (streams/config/sources.py).

Every COS failure is Transient for the pipeline — a wrong key or a throttled endpoint must delay objects,
never quarantine them. A failure COS itself calls permanent (`CosError.transient` False: access denied,
bad credentials) also makes the worker unhealthy with the cause, until a call of that kind succeeds again —
with one source. With several, a failing source is reported as that source's problem (`Sources.failed`,
metric `blueflow_source_healthy`) and the worker stays healthy, since the other sources keep flowing.
"""
from __future__ import annotations

from connectors import cos, cos_delete
from streams.observe import metrics, source_metrics
from streams.stages.retry import Transient


def _failed(ctx, source, operation: str, exc: Exception, words: str) -> Transient:
    metrics.COS_OPERATIONS.labels(operation=operation, result="error").inc()
    source_metrics.COS_ERRORS.labels(source=source.name, operation=operation).inc()
    if ctx.sources.isolated:
        ctx.sources.failed(source, operation, ctx.rt.scrub(f"{words}: {exc}"))
    elif isinstance(exc, cos.CosError) and not exc.transient:
        ctx.health.fatal = (f"COS refused {operation} ({exc.code}: {ctx.rt.scrub(exc.reason)}); check "
                            "IBM_COS_API_KEY / IBM_SERVICE_INSTANCE or the HMAC keys and their role (Writer)")
    return Transient(f"{words}: {exc}")


def _succeeded(ctx, source, operation: str) -> None:
    metrics.COS_OPERATIONS.labels(operation=operation, result="ok").inc()
    ctx.sources.succeeded(source, operation)
    if ctx.health.fatal.startswith(f"COS refused {operation}"):
        ctx.health.fatal = ""


def list_source(ctx, source) -> list[cos.ObjectInfo]:
    try:
        listing = list(cos.list_objects(ctx.sources.cos(source), source.bucket, source.prefix))
    except Exception as exc:
        raise _failed(ctx, source, "list", exc, f"listing bucket {source.bucket!r} failed") from None
    _succeeded(ctx, source, "list")
    metrics.COS_POLL_LIST_REQUESTS.inc(max(1, -(-len(listing) // cos.PAGE_SIZE)))
    return listing


def open_version(ctx, source, bucket: str, key: str, etag: str):
    """The object's byte chunks if it still is version `etag`; None if it vanished or changed since listed
    (a changed object is listed again with its new ETag and processed as the new version it is)."""
    try:
        chunks = cos.open_object(ctx.sources.cos(source), bucket, key, etag=etag or None)
    except Exception as exc:
        raise _failed(ctx, source, "get", exc, f"download of {key!r} failed") from None
    if chunks is None:
        metrics.COS_OPERATIONS.labels(operation="get", result="vanished").inc()
        return None
    return chunks


def download_broke(ctx, source, key: str, exc: Exception) -> Transient:
    """A download that broke off mid-stream: transient, never a bad object."""
    return _failed(ctx, source, "get", exc, f"download of {key!r} broke off")


def download_done(ctx, source) -> None:
    _succeeded(ctx, source, "get")


def delete_versions(ctx, source, bucket_name: str, items: list[tuple[str, str]], done: dict) -> dict:
    """Delete each (key, etag) of `source`'s bucket if still that version, in batches; `done` (key ->
    cos.DELETED, GONE or CHANGED) collects the settled keys across retries. Raises Transient while some key
    failed (its COS error is reported; only the failed keys are tried again); returns `done` once every key is
    settled."""
    todo = [(key, etag) for key, etag in items if key not in done]
    try:
        results = cos_delete.delete_versions_if_unchanged(ctx.sources.cos(source), bucket_name, todo)
    except Exception as exc:
        raise _failed(ctx, source, "delete", exc, f"delete of {len(todo)} objects failed") from None
    failed = {key: r for key, r in results.items() if isinstance(r, Exception)}
    done.update((key, r) for key, r in results.items() if key not in failed)
    if failed:
        key, exc = next(iter(failed.items()))
        raise _failed(ctx, source, "delete", exc,
                      f"delete of {len(failed)} of {len(todo)} objects failed (first {key!r})")
    _succeeded(ctx, source, "delete")
    return done
