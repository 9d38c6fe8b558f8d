"""`blueflow replay` and `blueflow status`, and what every operator command shares: the options that locate a
deployment (`--devstack` plus the Kafka and COS settings; secrets from the environment only) and how a command
turns them into Settings (a bad value: exit 2; Kafka unreachable: exit 3). `blueflow deadletter` is in
streams/deadletter_cli.py."""
from __future__ import annotations

import json
import os
import sys

import click

from streams.option_table import OPS_OPTIONS
from streams.options import require_kafka, settings_for, with_options
from streams.textsafe import escape


def ops_settings(func):
    """Options shared by the operator commands: --devstack and the settings that locate the deployment."""
    return with_options(OPS_OPTIONS)(func)  # secrets are skipped: environment only


def ops_settings_for(use_devstack: bool, values: dict, needs_kafka: bool = True):
    """The command's Settings (bad values of what it uses: exit 2); Kafka checked first (unreachable: exit 3)."""
    from streams import logs, logthrottle

    values["use_devstack"] = use_devstack
    settings = settings_for(values, OPS_OPTIONS)
    # warnings of the libraries used here go to stderr through the same scrubbing, escaping handler, throttled
    logs.configure("warning", "text", settings.secret_values(), stream=sys.stderr)
    logthrottle.install()
    if needs_kafka:
        require_kafka(settings)
    return settings


@click.command()
@click.option("--stage", type=click.Choice(["enrich", "sink"]), required=True,
              help="enrich: re-read `flows` (re-enrich with current VPC metadata); sink: re-read `kflow` (send "
                   "to Kentik again).")
@click.option("--from", "from_", required=True, help="Start (inclusive): ISO 8601, epoch seconds, or 2h / 15m ago.")
@click.option("--to", default=None, help="End (exclusive); default: the end of the topic when replay starts.")
@click.option("--include-replays", is_flag=True, help="Also re-send records that an earlier replay wrote.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of a line.")
@ops_settings
def replay(stage: str, from_: str, to: str | None, include_replays: bool, as_json: bool, use_devstack: bool,
           **values) -> None:
    """Send a time range of a stage's input topic through that stage again (live consumers untouched)."""
    import time as _time

    from streams.replay import parse_time, run_replay

    settings = ops_settings_for(use_devstack, values)
    now = int(_time.time() * 1000)
    try:
        from_ms = parse_time(from_, now)
        to_ms = parse_time(to, now) if to else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if to_ms is not None and to_ms <= from_ms:
        raise click.BadParameter("--to must be after --from")
    bar = {}

    def on_total(total: int) -> None:
        if sys.stderr.isatty() and not as_json:
            from rich.progress import Progress

            bar["p"] = Progress(transient=True)
            bar["p"].start()
            bar["task"] = bar["p"].add_task(f"replay {stage}", total=total)

    def on_progress(n: int) -> None:
        if "p" in bar:
            bar["p"].advance(bar["task"], n)

    try:
        summary = run_replay(settings, stage, from_ms, to_ms, include_replays=include_replays, on_total=on_total,
                             on_progress=on_progress)
    finally:
        if "p" in bar:
            bar["p"].stop()
    click.echo(json.dumps(summary.as_dict()) if as_json else summary.line())
    sys.exit(0 if summary.ok else 1)


@click.command()
@click.option("--worker", "workers", multiple=True,
              help="A worker's HTTP base URL (repeat for each worker). Default: http://127.0.0.1:8083; with "
                   "--devstack, the workers running on the local stack (and their app id and topic prefix).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document and exit.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between refreshes (and the rate window).")
@click.option("--no-bucket", is_flag=True, help="Skip the bucket listing (very large buckets).")
@ops_settings
def status(workers: tuple[str, ...], as_json: bool, interval: float, no_bucket: bool, use_devstack: bool,
           **values) -> None:
    """Live view (redrawn in place; Ctrl-C quits): workers, lag and rate per stage, objects waiting, Kentik
    and COS results, dead letters. --json prints one document."""
    from streams import status as status_mod

    urls = list(workers)
    if use_devstack and not urls:
        from devstack.workers import discover

        urls, run = status_mod.devstack_workers(discover())
        for name, env in (("app_id", "BLUEFLOW_APP_ID"), ("topic_prefix", "BLUEFLOW_TOPIC_PREFIX")):
            if urls and values.get(name) is None and env not in os.environ:
                values[name] = run[name]
        if not urls:
            click.echo("note: no worker of the local stack is running; trying http://127.0.0.1:8083", err=True)
        if run.get("other_runs"):
            click.echo(f"note: {run['other_runs']} older run(s) of local workers are also up; showing the newest "
                       f"(app id {escape(run['app_id'])})", err=True)
    settings = ops_settings_for(use_devstack, values, needs_kafka=False)  # status reports Kafka errors itself
    urls = urls or ["http://127.0.0.1:8083"]
    if as_json:
        doc = status_mod.collect(settings, urls, interval=interval, with_bucket=not no_bucket)
        click.echo(json.dumps(doc))
        sys.exit(0 if doc["healthy"] and not doc["errors"] else 1)
    from streams.statusview import live

    live(settings, urls, interval, not no_bucket)
