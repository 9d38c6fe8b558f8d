"""The `blueflow` command — the product: worker, topics, and the operator's replay, deadletter and status.

`blueflow worker` takes Kentik Blueflow's flags (`--bucket_name=...`, also written without the leading `--`
as Kentik's published manifests do) and environment variables, so switching is a one-line change. Every
option comes from the table in streams/option_table.py (streams/options.py turns it into typed flags). The
development tools (local stack, generator, demo, fault suite) are `blueflow-dev` (devstack/cli.py); `blueflow
demo|faults|generate|devstack` forward to it where it is installed. Exit status: 0 ok, 1 the operation
failed, 2 a bad flag or setting, 3 Kafka did not answer.
"""
from __future__ import annotations

import json
import sys

import click

from streams.deadletter_cli import deadletter
from streams.metrics import VERSION
from streams.ops_cli import replay, status
from streams.option_table import BLUEFLOW_FLAG_NAMES, TOPIC_OPTIONS
from streams.options import EXIT_FAILED, kafka_conf, require_kafka, settings_for, with_options
from streams.worker_cli import ensure_topics_for, worker_command

DEV_COMMANDS = ("demo", "faults", "generate", "devstack")


def normalise_blueflow_args(argv: list[str]) -> list[str]:
    """`plan_id=5` → `--plan_id=5` (Kentik's manifests drop the dashes); `-bucket_name` → `--bucket_name`."""
    out = []
    for arg in argv:
        name = arg.lstrip("-").split("=", 1)[0]
        if name in BLUEFLOW_FLAG_NAMES and not arg.startswith("--"):
            arg = "--" + arg.lstrip("-")
        out.append(arg)
    return out


def dev_command(name: str) -> click.Command:
    """A development tool of `blueflow-dev`, or a command that says it is not installed here."""
    try:
        from devstack.cli import main as dev_main
    except ImportError:
        def missing() -> None:
            raise click.UsageError(f"`blueflow {name}` is a development tool (blueflow-dev), not part of this "
                                   "installation; run it from a source checkout (pip install -e .)")

        return click.Command(name, callback=missing, add_help_option=False,
                             context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    return dev_main.get_command(click.Context(dev_main), name)


class BlueflowGroup(click.Group):
    """v1-style arguments, dev-tool forwarding, and errors as one line with a documented exit status."""

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        return command if command is not None or cmd_name not in DEV_COMMANDS else dev_command(cmd_name)

    def main(self, args=None, prog_name=None, **kw):
        args = normalise_blueflow_args(list(sys.argv[1:] if args is None else args))
        if args and args[0].startswith("--") and args[0] not in ("--help", "--version"):
            args.insert(0, "worker")  # `blueflow --bucket_name=...` works like `kentik/blueflow:v1 --bucket_name=...`
        return run_one_line(super().main, args, prog_name or self.name, **kw)


def run_one_line(group_main, args, prog_name: str, **kw):
    """Run a Click group; a usage or dependency error is one line on stderr and its exit status."""
    try:
        code = group_main(args, prog_name=prog_name, standalone_mode=False, **kw)
    except click.ClickException as exc:
        command = " ".join([prog_name] + [a for a in args[:2] if not a.startswith("-")])
        click.echo(f"{command}: error: {' '.join(exc.format_message().split())}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=BlueflowGroup, name="blueflow",
             epilog="Development tools (local stack, generator, demo, fault suite): blueflow-dev --help. "
                    "Exit status: 0 ok, 1 failed, 2 bad flag or setting, 3 Kafka unreachable.")
@click.version_option(VERSION, "--version", prog_name="blueflow", message="%(prog)s %(version)s")
def main() -> None:
    """blueflow: IBM Cloud VPC flow logs into Kentik, through Kafka."""


main.add_command(worker_command())


@main.group()
def topics() -> None:
    """Kafka topics of the pipeline."""


@topics.command("ensure")
@click.option("--dry-run", is_flag=True, help="Print what would be created; do not contact Kafka.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of a table.")
@with_options(TOPIC_OPTIONS)
def topics_ensure(dry_run: bool, as_json: bool, **values) -> None:
    """Create the pipeline's topics (partitions, replication, retention, compaction); existing ones are left
    alone. Prints, per topic, what a managed cluster's operator needs to create it by hand."""
    from streams.kafka_check import plan_json, plan_lines, topic_plan
    from streams.logthrottle import configure_command_logging

    configure_command_logging()
    settings = settings_for(values, TOPIC_OPTIONS)
    plan = topic_plan(settings.topic_prefix, settings.partitions, settings.replication)
    result = None
    if not dry_run:
        result = ensure_topics_for(settings, require_kafka(settings))
    else:
        kafka_conf(settings)  # still check that the settings could work
    if as_json:
        click.echo(json.dumps(plan_json(plan, result)))
    else:
        for line in plan_lines(plan, result):
            click.echo(line)
    sys.exit(1 if result is not None and result.mismatched else 0)


@main.command()
@with_options(["topic_prefix", "sink"])
def topology(**values) -> None:
    """Print the pipeline's graph (agents, leader tasks, topics), read from the code that wires it."""
    from streams.topology import describe

    settings = settings_for(values, ["topic_prefix", "sink"])
    click.echo(describe(settings.topic, settings.sink))


main.add_command(replay)
main.add_command(deadletter)
main.add_command(status)


if __name__ == "__main__":
    main()
