"""The stages' COS calls (blocking; run on the thread pool): list, open, version-checked batched delete — each
on the COS client of the object's source (streams/config/sources.py).

Every COS failure is Transient for the pipeline — a wrong key or a throttled endpoint must delay objects,
never quarantine them. Each failure is the source's (`Failures.failed`, metric `blueflow_source_healthy`);
one COS itself calls permanent (`CosError.transient` False: access denied, bad credentials) carries a `Cause`
(cos, credentials), which is also the worker's `Health.fatal` when the source holds the worker (no other
source shares it; streams/stages/retry.py), until a call of that kind succeeds again.
"""
from __future__ import annotations

from connectors import cos, cos_delete
from streams.observe import metrics, source_metrics
from streams.observe.health import Cause
from streams.stages.retry import Transient


def cause_of(operation: str, exc: Exception, scrub) -> Cause | None:
    """The typed cause of a COS failure only an operator can fix (COS calls it permanent), else None."""
    if isinstance(exc, cos.CosError) and not exc.transient:
        return Cause("cos", "credentials", f"COS refused {operation} ({exc.code}: {scrub(exc.reason)}); check "
                     "IBM_COS_API_KEY / IBM_SERVICE_INSTANCE or the HMAC keys and their role (Writer)", operation)
    return None


def _failed(ctx, source, operation: str, exc: Exception, words: str) -> Transient:
    metrics.COS_OPERATIONS.labels(operation=operation, result="error").inc()
    source_metrics.COS_ERRORS.labels(source=source.name, operation=operation).inc()
    ctx.failures.failed(source, operation, ctx.rt.scrub(f"{words}: {exc}"), cause_of(operation, exc, ctx.rt.scrub))
    return Transient(f"{words}: {exc}")


def _succeeded(ctx, source, operation: str) -> None:
    metrics.COS_OPERATIONS.labels(operation=operation, result="ok").inc()
    ctx.failures.succeeded(source, operation)


def list_source(ctx, source) -> list[cos.ObjectInfo]:
    try:
        listing = list(cos.list_objects(ctx.rt.cos_client(source), source.bucket, source.prefix))
    except Exception as exc:
        raise _failed(ctx, source, "list", exc, f"listing bucket {source.bucket!r} failed") from None
    _succeeded(ctx, source, "list")
    metrics.COS_POLL_LIST_REQUESTS.inc(max(1, -(-len(listing) // cos.PAGE_SIZE)))
    return listing


def read_version(ctx, source, ref, read, *args):
    """`read(chunks, *args)` over the byte chunks of object `ref` (an ObjectRef of `source`) as they download,
    if it still is the version listed; None if it vanished or changed since (a changed object is listed again
    with its new ETag and processed as the new version it is). A download that fails or breaks off mid-stream
    raises Transient, never a bad object; `read`'s own errors pass through."""
    try:
        chunks = cos.open_object(ctx.rt.cos_client(source), ref.bucket, ref.key, etag=ref.etag or None)
    except Exception as exc:
        raise _failed(ctx, source, "get", exc, f"download of {ref.key!r} failed") from None
    if chunks is None:
        metrics.COS_OPERATIONS.labels(operation="get", result="vanished").inc()
        return None
    broke: list[Exception] = []

    def guarded():
        try:
            yield from chunks
        except Exception as exc:
            broke.append(exc)
            raise

    try:
        result = read(guarded(), *args)
    except Exception:
        if broke:
            raise _failed(ctx, source, "get", broke[0], f"download of {ref.key!r} broke off") from None
        raise
    _succeeded(ctx, source, "get")
    return result


def delete_versions(ctx, source, bucket_name: str, items: list[tuple[str, str]], done: dict) -> dict:
    """Delete each (key, etag) of `source`'s bucket if still that version, in batches; `done` (key ->
    cos.DELETED, GONE or CHANGED) collects the settled keys across retries. Raises Transient while some key
    failed (its COS error is reported; only the failed keys are tried again); returns `done` once every key is
    settled."""
    todo = [(key, etag) for key, etag in items if key not in done]
    try:
        results = cos_delete.delete_versions_if_unchanged(ctx.rt.cos_client(source), bucket_name, todo)
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
