"""The `blueflow` command — the product: worker, topics, and the operator's replay, deadletter and status.

`blueflow worker` takes Kentik Blueflow's flags (`--bucket_name=...`, also written without the leading `--`
as Kentik's published manifests do) and environment variables, so switching is a one-line change. Every
option comes from the table in streams/config/option_table.py (streams/ops/options.py turns it into typed flags). The
development tools (local stack, generator, demo, fault suite) are not part of the product: they are
`blueflow-dev`, a distribution of their own (devstack/pyproject.toml). Exit status: 0 ok, 1 the operation
failed, 2 a bad flag or setting, 3 Kafka did not answer.
"""
from __future__ import annotations

import json
import sys
from dataclasses import replace

import click

from streams.embedded.cli import embedded as embedded_group
from streams.observe.metrics import VERSION
from streams.ops.ops_cli import deadletter, ops_settings, resolved_ops_settings, source_name, source_option
from streams.config.option_table import ALL_OPTIONS, BLUEFLOW_FLAG_NAMES, TOPIC_OPTIONS
from streams.ops.options import (EXIT_INTERRUPTED, SwitchesGroup, kafka_conf, locate_kafka, normalise_token,
                             require_kafka, settings_for, with_options)
from streams.formats.textsafe import escape
from streams.ops.worker_cli import ensure_topics_for, worker_command


def normalise_blueflow_args(argv: list[str]) -> list[str]:
    """`plan_id=5` → `--plan_id=5` (Kentik's manifests drop the dashes); `-bucket_name` → `--bucket_name`."""
    out = []
    for arg in argv:
        name = arg.lstrip("-").split("=", 1)[0]
        if name in BLUEFLOW_FLAG_NAMES and not arg.startswith("--"):
            arg = "--" + arg.lstrip("-")
        out.append(arg)
    return out


class BlueflowGroup(SwitchesGroup):
    """v1-style arguments, and errors as one line with a documented exit status."""

    def main(self, args=None, prog_name=None, **kw):
        args = normalise_blueflow_args(list(sys.argv[1:] if args is None else args))
        if args and args[0].startswith("--") and args[0] not in ("--help", "--version"):
            args.insert(0, "worker")  # `blueflow --bucket_name=...` works like `kentik/blueflow:v1 --bucket_name=...`
        return run_one_line(super().main, args, prog_name or self.name, **kw)


def run_one_line(group_main, args, prog_name: str, **kw):
    """Run a Click group; a usage or dependency error is one line on stderr and its exit status."""
    try:
        code = group_main(args, prog_name=prog_name, standalone_mode=False, **kw)
    except click.exceptions.NoArgsIsHelpError as exc:  # `blueflow`, `blueflow topics`: the help, as it is
        click.echo(exc.ctx.get_help())
        sys.exit(0)
    except click.ClickException as exc:
        command = " ".join([prog_name] + [a for a in args[:2] if not a.startswith("-")])
        click.echo(f"{command}: error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:  # Ctrl-C (Click turns KeyboardInterrupt into Abort)
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)


CONTEXT = {"help_option_names": ["-h", "--help"], "token_normalize_func": normalise_token}


@click.group(cls=BlueflowGroup, name="blueflow", context_settings=CONTEXT,
             epilog="Development tools (local stack, generator, demo, fault suite): blueflow-dev --help. "
                    "Exit status: 0 ok, 1 failed, 2 bad flag or setting, 3 Kafka unreachable, 130 interrupted "
                    "(Ctrl-C).")
@click.version_option(VERSION, "--version", prog_name="blueflow", message="%(prog)s %(version)s")
def main() -> None:
    """blueflow: IBM Cloud VPC flow logs into Kentik, through Kafka."""


main.add_command(worker_command())
main.add_command(embedded_group)


@main.group()
def topics() -> None:
    """Kafka topics of the pipeline."""


@topics.command("ensure")
@click.option("--dry-run", "dry_run", is_flag=True, help="Print what would be created; do not contact Kafka.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@with_options(TOPIC_OPTIONS)
def topics_ensure(dry_run: bool, as_json: bool, **values) -> None:
    """Create the deployment's topics (partitions, replication, retention, compaction), Faust's leader topic
    included; existing ones are left alone. Prints, per topic, what a managed cluster's operator needs to
    create it by hand, and the total partitions against --partition_budget (a plan over it is refused)."""
    from streams.ops.kafka_check import plan_json, plan_lines
    from streams.observe.logthrottle import configure_command_logging
    from streams.ops.worker_cli import checked_topic_plan

    configure_command_logging()
    settings = settings_for(values, TOPIC_OPTIONS)
    plan, profile = checked_topic_plan(settings)
    result = None
    if not dry_run:
        settings = locate_kafka(settings)  # a running worker's embedded Kafka when no bootstrap is given
        result = ensure_topics_for(settings, require_kafka(settings))
    else:
        kafka_conf(settings)  # still check that the settings could work
    if as_json:
        click.echo(json.dumps(plan_json(plan, result, profile, settings.partition_budget)))
    else:
        for line in plan_lines(plan, result, profile, settings.partition_budget):
            click.echo(line)
    sys.exit(1 if result is not None and result.mismatched else 0)


@main.command()
@with_options(["topic_prefix", "sink", "config"])
def topology(**values) -> None:
    """Print the pipeline's graph (agents, leader tasks, topics), read from the code that wires it."""
    from streams.stages.topology import describe

    settings = settings_for(values, ["topic_prefix", "sink", "config"])
    click.echo(describe(settings.topic, settings.sink))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document: every check with state, detail, fix.")
@with_options(ALL_OPTIONS)
def check(as_json: bool, **values) -> None:
    """Check a setup without running it: the settings, then each dependency once, read-only — COS (a listing
    of each source's bucket), IAM (a token per API key), the VPC API (per region), Kentik (user, token, plan)
    or the IPFIX collectors, and Kafka (connect, authenticate, the topic plan against the cluster). One line
    per check with ok / FAILED and the fix; exit 0 only if none failed. Nothing is written, deleted or sent."""
    from streams.observe import logs, logthrottle
    from streams.ops.check import FAILED, run_checks, summary_line

    settings = settings_for(values, ALL_OPTIONS)
    logs.configure("warning", "text", settings.secret_values(), stream=sys.stderr)  # libraries' warnings scrubbed
    logthrottle.install()
    scrub = logs.Scrubber(settings.secret_values())
    results = [replace(r, detail=scrub(r.detail), fix=scrub(r.fix)) for r in run_checks(settings)]
    if as_json:
        click.echo(json.dumps({"ok": not any(r.state == FAILED for r in results),
                               "checks": [r.as_dict() for r in results]}))
    else:
        for r in results:
            click.echo(escape(r.line()))
        click.echo(summary_line(results))
    failed = any(r.state == FAILED for r in results)
    sys.exit(1 if failed else 0)


# ---------------------------------------------------------------- operations: replay, deadletter, status
@main.command()
@click.option("--stage", type=click.Choice(["enrich", "sink"], case_sensitive=False), required=True,
              help="enrich: re-read `flows` (re-enrich with current VPC metadata); sink: re-read `kflow` (send "
                   "to Kentik again).")
@click.option("--from", "from_", required=True, help="Start (inclusive): ISO 8601, epoch seconds, or 2h / 15m ago.")
@click.option("--to", default=None, help="End (exclusive); default: the end of the topic when replay starts.")
@click.option("--include-replays", is_flag=True, help="Also re-send records that an earlier replay wrote.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON instead of a line.")
@source_option
@ops_settings
def replay(stage: str, from_: str, to: str | None, include_replays: bool, as_json: bool, source: str | None,
           **values) -> None:
    """Send a time range of a stage's input topic through that stage again (live consumers untouched)."""
    import time as _time

    from streams.ops.replay import parse_time, run_replay

    now = int(_time.time() * 1000)
    try:  # the times first: a bad one is a usage error at once, not after waiting for Kafka
        from_ms = parse_time(from_, now)
        to_ms = parse_time(to, now) if to else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--from/--to") from None
    if to_ms is not None and to_ms <= from_ms:
        raise click.UsageError("--to must be after --from")
    settings = resolved_ops_settings(values)
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
                             on_progress=on_progress, source=source_name(settings, source))
    finally:
        if "p" in bar:
            bar["p"].stop()
    click.echo(json.dumps(summary.as_dict()) if as_json else summary.line())
    sys.exit(0 if summary.ok else 1)


main.add_command(deadletter)


@main.command()
@click.option("--worker", "workers", multiple=True,
              help="A worker's HTTP base URL (repeat for each worker). Default: http://127.0.0.1:8083.")
@click.option("--worker-dns", "worker_dns", multiple=True, metavar="HOST:PORT",
              help="Every address HOST resolves to is a worker (a headless Service: blueflow-pods:8083 in "
                   "deploy/ resolves to each pod).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document and exit.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between refreshes (and the rate window).")
@click.option("--no-bucket", is_flag=True, help="Skip the bucket listing (very large buckets).")
@ops_settings
def status(workers: tuple[str, ...], worker_dns: tuple[str, ...], as_json: bool, interval: float, no_bucket: bool,
           **values) -> None:
    """Live view (redrawn in place; Ctrl-C quits): workers, lag and rate per stage, objects waiting, Kentik
    and COS results, dead letters. --json prints one document."""
    from streams.ops import status as status_mod

    urls = list(workers)
    for name in worker_dns:
        try:
            urls += status_mod.pod_urls(name)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    settings = resolved_ops_settings(values, needs_kafka=False)  # status reports Kafka errors itself
    urls = urls or ["http://127.0.0.1:8083"]
    if as_json:
        doc = status_mod.collect(settings, urls, interval=interval, with_bucket=not no_bucket)
        click.echo(json.dumps(doc))
        sys.exit(0 if doc["healthy"] and not doc["errors"] else 1)
    from streams.ops.statusview import live

    live(settings, urls, interval, not no_bucket)


if __name__ == "__main__":
    main()
