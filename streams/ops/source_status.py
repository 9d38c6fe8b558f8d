"""`blueflow status` per source (the flags' one, or a configuration file's `sources:`): each bucket's backlog and
the age of its oldest pending object, listed concurrently; one source's failing listing is that source's error
only; the problems the workers report for a source (its COS or Kentik failing); the totals over the sources."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

SUMMED = ("objects", "bytes", "pending", "quarantined")  # of `bucket_summary`, added up over the sources


def source_backlogs(settings, quarantined: set) -> dict:
    """{source name: bucket summary (see bucket_summary) or {"error": ...}}, with each source's bucket."""
    with ThreadPoolExecutor(max_workers=min(8, len(settings.sources))) as pool:
        summaries = list(pool.map(lambda s: _one(settings, s, quarantined), settings.sources))
    return {source.name: summary for source, summary in zip(settings.sources, summaries)}


def _one(settings, source, quarantined: set) -> dict:
    try:
        return dict(listed(settings, source, quarantined), bucket=source.bucket)
    except Exception as exc:  # errors as values: the document says which source could not be listed
        return {"bucket": source.bucket, "error": f"{type(exc).__name__}: {exc}"}


def listed(settings, source, quarantined: set) -> dict:
    """The bucket summary of one source's listing (its COS client as a worker makes it)."""
    from connectors.cos import list_objects
    from streams.stages.runtime import cos_client_for

    listing = list(list_objects(cos_client_for(source, settings), source.bucket, source.prefix))
    return bucket_summary(listing, quarantined, int(time.time() * 1000))


def listing_errors(settings, backlogs: dict) -> list[str]:
    """The status document's errors for the sources whose bucket could not be listed."""
    return [source.about(f"bucket listing: {backlogs[source.name]['error']}") for source in settings.sources
            if "error" in backlogs.get(source.name, {})]


def with_worker_problems(backlogs: dict, workers: list[dict]) -> dict:
    """`backlogs` with each source's problems as the workers report them (/service/info `sources`), distinct."""
    out = {name: dict(summary, problems=[]) for name, summary in backlogs.items()}
    for worker in workers:
        for view in worker.get("sources") or []:
            entry = out.get(view.get("source"))
            if entry is not None and view.get("problem") and view["problem"] not in entry["problems"]:
                entry["problems"].append(view["problem"])
    return out


def waiting_totals(backlogs: dict) -> dict | None:
    """Every listed source's bucket summary added up, with the age of the oldest pending object of them all;
    None when no source could be listed."""
    listed = [s for s in backlogs.values() if "pending" in s]
    if not listed:
        return None
    ages = [s["oldest_pending_age_s"] for s in listed if s.get("oldest_pending_age_s") is not None]
    totals = {name: sum(s[name] for s in listed) for name in SUMMED if all(name in s for s in listed)}
    return dict(totals, oldest_pending_age_s=max(ages) if ages else None)


def bucket_summary(listing, quarantined: set[tuple[str, str]], now_ms: int) -> dict:
    """Objects in the bucket, how many are quarantined (key + ETag dead-lettered), and the oldest pending."""
    pending = [o for o in listing if (o.key, o.etag.strip('"')) not in quarantined]
    oldest = min((o.last_modified for o in pending), default=None)
    return {"objects": len(listing), "bytes": sum(o.size for o in listing), "pending": len(pending),
            "quarantined": len(listing) - len(pending),
            "oldest_pending_age_s": None if oldest is None else round(max(0, now_ms - oldest) / 1000, 1)}
