"""The operator commands' shared options (the deployment's settings, --source) and `blueflow
deadletter list|show|retry` (registered on the `blueflow` group by streams/ops/cli.py)."""
from __future__ import annotations

import json
import sys

import click

from streams.config.option_table import OPS_OPTIONS
from streams.ops.options import SwitchesGroup, locate_kafka, require_kafka, settings_for, with_options
from streams.formats.textsafe import escape


def ops_settings(func):
    """Options shared by the operator commands: the settings that locate the deployment."""
    return with_options(OPS_OPTIONS)(func)  # secrets are skipped: environment only


def resolved_ops_settings(values: dict, needs_kafka: bool = True):
    """The command's Settings (bad values of what it uses: exit 2); Kafka checked first (unreachable: exit 3)."""
    from streams.observe import logs, logthrottle

    settings = locate_kafka(settings_for(values, OPS_OPTIONS))  # a running worker's embedded Kafka, if so
    # warnings of the libraries used here go to stderr through the same scrubbing, escaping handler, throttled
    logs.configure("warning", "text", settings.secret_values(), stream=sys.stderr)
    logthrottle.install()
    if needs_kafka:
        require_kafka(settings)
    return settings


def source_option(func):
    """--source NAME: only that source's records (a configuration file's source, `default` without one)."""
    return click.option("--source", "source", default=None, metavar="NAME",
                        help="Only this source (a name of the configuration file's `sources:`; `default` for the "
                             "flags' one bucket).")(func)


def source_name(settings, name: str | None) -> str | None:
    """The --source value checked against the deployment's sources (a usage error, exit 2, names them)."""
    configured = [s.name for s in settings.sources]
    if name is not None and name not in configured:
        raise click.BadParameter(f"no source {escape(name)!r}; configured: {', '.join(configured)}",
                                 param_hint="--source")
    return name


def _rows(settings, source: str | None):
    """The numbered dead letters of `source` (all without it), as `list` with the same --source numbers them."""
    from streams.ops.deadletters import numbered, of_source, read_letters

    letters = of_source(read_letters(settings), source)
    return letters, numbered(letters)


def _configured(settings) -> tuple[str, ...]:
    return tuple(s.name for s in settings.sources)


@click.group(cls=SwitchesGroup)
def deadletter() -> None:
    """Quarantined objects: list them, show one, retry one or all."""


@deadletter.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: the newest record per object key.")
@source_option
@ops_settings
def deadletter_list(as_json: bool, source: str | None, **values) -> None:
    """Every quarantined object (newest dead letter per key, oldest first, numbered) and why.

    The number works with `show --index N` and `retry --index N`; keys are shown whole, control characters
    escaped."""
    from streams.ops.deadletters import table_lines

    settings = resolved_ops_settings(values)
    _, rows = _rows(settings, source_name(settings, source))
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
@source_option
@ops_settings
def deadletter_show(key: str | None, index: int | None, as_json: bool, source: str | None, **values) -> None:
    """Every dead letter of KEY (or of --index N) and the object's current state in the bucket."""
    from streams.ops.deadletters import object_state, resolve

    if (key is None) == (index is None):
        raise click.UsageError("give one object: its KEY, or --index N from `blueflow deadletter list`")
    settings = resolved_ops_settings(values)
    source = source_name(settings, source)
    letters, rows = _rows(settings, source)
    targets, problems = resolve(rows, [key] if key is not None else [], [] if index is None else [index], source,
                                _configured(settings))
    if problems:
        raise click.UsageError(problems[0])
    source, key = targets[0]
    history = [item.as_dict() for item in letters if (item.source, item.key) == (source, key)]
    doc = {"source": source, "key": key, "records": sorted(history, key=lambda r: (r["at"], r["offset"])),
           "object": object_state(settings, key, source)}
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
@source_option
@ops_settings
def deadletter_retry(keys: tuple[str, ...], indexes: tuple[int, ...], retry_all: bool, as_json: bool,
                     source: str | None, **values) -> None:
    """Process quarantined objects again (forced): the object must still be in the bucket.

    Name them by KEY or by --index N (as `blueflow deadletter list` numbers them), or give --all. With --all,
    objects that are no longer in the bucket are reported and skipped. --source: only that source's (and the
    numbers of `list --source` with the same name)."""
    from streams.ops.deadletters import resolve, retry as do_retry

    named = bool(keys or indexes)
    if not named and not retry_all:
        raise click.UsageError("nothing to retry: give object KEYS, --index N from `blueflow deadletter list`, "
                               "or --all")
    if named and retry_all:
        raise click.UsageError("--all retries every quarantined object: give it without KEYS or --index")
    settings = resolved_ops_settings(values)
    source = source_name(settings, source)
    _, rows = _rows(settings, source)
    if retry_all:
        targets = [(item.source, item.key) for _, item in rows if item.key]
    else:
        targets, problems = resolve(rows, list(keys), list(indexes), source, _configured(settings))
        if problems:
            raise click.UsageError("; ".join(problems))
    results = do_retry(settings, targets)
    if as_json:
        click.echo(json.dumps({"results": [r.as_dict() for r in results]}))
    else:
        for r in results:
            who = f"{escape(r.source)}  " if len(_configured(settings)) > 1 else ""
            click.echo(f"{'ok  ' if r.ok else 'FAIL'}  {who}{escape(r.key)}  {escape(r.detail)}")
        click.echo(f"{sum(r.ok for r in results)} of {len(results)} objects sent to parse again")
    # with --all, objects no longer in the bucket (fixed and delivered since) are not failures
    sys.exit(0 if all(r.ok or (retry_all and r.gone) for r in results) else 1)


