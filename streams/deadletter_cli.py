"""`blueflow deadletter list|show|retry`: the quarantined objects (streams/deadletters.py does the work)."""
from __future__ import annotations

import json
import sys

import click

from streams.ops_cli import ops_settings, ops_settings_for
from streams.textsafe import escape


@click.group()
def deadletter() -> None:
    """Quarantined objects: list them, show one, retry one or all."""


@deadletter.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: the newest record per object key.")
@ops_settings
def deadletter_list(as_json: bool, use_devstack: bool, **values) -> None:
    """Every quarantined object (newest dead letter per key, oldest first, numbered) and why.

    The number works with `show --index N` and `retry --index N`; keys are shown whole, control characters
    escaped."""
    from streams.deadletters import numbered, read_letters, table_lines

    settings = ops_settings_for(use_devstack, values)
    rows = numbered(read_letters(settings))
    if as_json:
        click.echo(json.dumps({"topic": settings.topic("deadletter"), "count": len(rows),
                               "objects": [dict(item.as_dict(), index=n) for n, item in reversed(rows)]}))
    else:
        for line in table_lines(rows):
            click.echo(line)
        click.echo(f"{len(rows)} quarantined objects in {escape(settings.topic('deadletter'))}")


@deadletter.command("show")
@click.argument("key", required=False)
@click.option("--index", "-n", "index", type=int, help="The object numbered N by `blueflow deadletter list`.")
@click.option("--json", "as_json", is_flag=True)
@ops_settings
def deadletter_show(key: str | None, index: int | None, as_json: bool, use_devstack: bool, **values) -> None:
    """Every dead letter of KEY (or of --index N) and the object's current state in the bucket."""
    from streams.deadletters import numbered, object_state, read_letters, resolve

    if (key is None) == (index is None):
        raise click.UsageError("give one object: its KEY, or --index N from `blueflow deadletter list`")
    settings = ops_settings_for(use_devstack, values)
    letters = read_letters(settings)
    targets, problems = resolve(numbered(letters), [key] if key is not None else [], [] if index is None else [index])
    if problems:
        raise click.UsageError(problems[0])
    key = targets[0]
    history = [item.as_dict() for item in letters if item.key == key]
    doc = {"key": key, "records": sorted(history, key=lambda r: (r["at"], r["offset"])),
           "object": object_state(settings, key)}
    if as_json:
        click.echo(json.dumps(doc))
    else:
        if not history:
            click.echo(f"no dead letter for {escape(key)}")
        for r in doc["records"]:
            click.echo(f"{r['at_iso']}  stage {escape(r['stage'])}  etag {escape(r['etag'])}  size {r['size']}\n"
                       f"    {escape(r['reason'])}")
        click.echo(f"in bucket now: {json.dumps(doc['object'])}")
    sys.exit(0 if history else 1)


@deadletter.command("retry")
@click.argument("keys", nargs=-1)
@click.option("--index", "-n", "indexes", type=int, multiple=True,
              help="The object numbered N by `blueflow deadletter list` (repeat for several).")
@click.option("--all", "retry_all", is_flag=True, help="Retry every quarantined object still in the bucket.")
@click.option("--json", "as_json", is_flag=True)
@ops_settings
def deadletter_retry(keys: tuple[str, ...], indexes: tuple[int, ...], retry_all: bool, as_json: bool,
                     use_devstack: bool, **values) -> None:
    """Process quarantined objects again (forced): the object must still be in the bucket.

    Name them by KEY or by --index N (as `blueflow deadletter list` numbers them), or give --all. With --all,
    objects that are no longer in the bucket are reported and skipped."""
    from streams.deadletters import numbered, read_letters, resolve, retry as do_retry

    named = bool(keys or indexes)
    if not named and not retry_all:
        raise click.UsageError("nothing to retry: give object KEYS, --index N from `blueflow deadletter list`, "
                               "or --all")
    if named and retry_all:
        raise click.UsageError("--all retries every quarantined object: give it without KEYS or --index")
    settings = ops_settings_for(use_devstack, values)
    rows = numbered(read_letters(settings))
    if retry_all:
        targets = [item.key for _, item in rows if item.key]
    else:
        targets, problems = resolve(rows, list(keys), list(indexes))
        if problems:
            raise click.UsageError("; ".join(problems))
    results = do_retry(settings, targets)
    if as_json:
        click.echo(json.dumps({"results": [r.as_dict() for r in results]}))
    else:
        for r in results:
            click.echo(f"{'ok  ' if r.ok else 'FAIL'}  {escape(r.key)}  {escape(r.detail)}")
        click.echo(f"{sum(r.ok for r in results)} of {len(results)} objects sent to parse again")
    # with --all, objects no longer in the bucket (fixed and delivered since) are not failures
    sys.exit(0 if all(r.ok or (retry_all and r.gone) for r in results) else 1)
