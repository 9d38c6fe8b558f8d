"""The `blueflow` command: worker, devstack, generate, demo, topics.

`blueflow worker` takes Kentik Blueflow's flags (`--bucket_name=...`, also written without the leading `--`
as Kentik's published manifests do) and environment variables, so switching is a one-line change.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys

import click

from streams.settings import BLUEFLOW_FLAG_NAMES, OPTIONS, Settings, missing_for_worker


def normalise_blueflow_args(argv: list[str]) -> list[str]:
    """`plan_id=5` → `--plan_id=5` (Kentik's manifests drop the dashes); `-bucket_name` → `--bucket_name`."""
    out = []
    for arg in argv:
        name = arg.lstrip("-").split("=", 1)[0]
        if name in BLUEFLOW_FLAG_NAMES and not arg.startswith("--"):
            arg = "--" + arg.lstrip("-")
        out.append(arg)
    return out


def load_devstack_env(path: str | None = None) -> dict[str, str]:
    """KEY=value lines of `.devstack/env` (written by `blueflow devstack up`), or {} if absent."""
    from devstack.stack import read_env

    try:
        return dict(read_env())
    except FileNotFoundError:
        return {}


def _apply_worker_options(values: dict) -> None:
    for option in OPTIONS:
        value = values.get(option.name)
        if value is None:
            continue
        if option.kind == "bool":
            value = "true" if value else "false"
        os.environ[option.env] = str(value)


def _worker_command() -> click.Command:
    params = []
    for option in OPTIONS:
        if option.secret:
            continue  # secrets come from the environment only, never from a command line (ps shows it)
        if option.kind == "bool":
            params.append(click.Option([f"--{option.name}"], is_flag=True, default=None, help=option.help))
        else:
            params.append(click.Option([f"--{option.name}"], default=None, help=f"{option.help} [env {option.env}]"))
    params.append(click.Option(["--devstack"], is_flag=True, default=False,
                               help="Take unset settings from .devstack/env (the local stack)."))

    def run(devstack: bool, **values):
        if devstack:
            for key, value in load_devstack_env().items():
                os.environ.setdefault(key, value)
        _apply_worker_options(values)
        settings = Settings.from_env()
        problems = missing_for_worker(settings)
        if problems:
            raise click.UsageError("cannot start the worker:\n  - " + "\n  - ".join(problems))
        from connectors.kafka_admin import ensure_topics
        from streams.follower import kafka_client_config

        result = ensure_topics(kafka_client_config(settings), prefix=settings.topic_prefix,
                               partitions=settings.partitions, replication_factor=settings.replication)
        for name, problem in result.mismatched.items():
            click.echo(f"warning: topic {name} {problem}; scaling is limited by the smaller count", err=True)
        import faust

        from streams.app import app

        level = {"debug": "debug", "warning": "warning", "error": "error"}.get(settings.log_level.lower(), "info")
        worker = faust.Worker(app, loglevel=level)
        worker.execute_from_commandline()

    return click.Command("worker", params=params, callback=run,
                         help="Run a pipeline worker (run several to scale; one of them leads).")


class BlueflowGroup(click.Group):
    def main(self, args=None, *a, **kw):
        args = normalise_blueflow_args(list(sys.argv[1:] if args is None else args))
        if args and args[0].startswith("--") and args[0] not in ("--help", "--version"):
            args.insert(0, "worker")  # `blueflow --bucket_name=...` works like `kentik/blueflow:v1 --bucket_name=...`
        return super().main(args, *a, **kw)


@click.group(cls=BlueflowGroup)
def main() -> None:
    """blueflow: IBM Cloud VPC flow logs into Kentik, through Kafka."""


main.add_command(_worker_command())


@main.group()
def devstack() -> None:
    """The local stack: Apache Kafka, S3Proxy and the IAM, VPC and Kentik stand-ins on 127.0.0.1."""


@devstack.command("up")
def devstack_up() -> None:
    """Start the stack (downloads the jars from Maven Central on first use); writes .devstack/env."""
    from devstack import stack

    sys.exit(stack.main(["up"]))


@devstack.command("down")
def devstack_down() -> None:
    """Stop every process of the stack."""
    from devstack import stack

    sys.exit(stack.main(["down"]))


@devstack.command("status")
def devstack_status() -> None:
    """Show each component, its pid, port and whether it is alive."""
    from devstack import stack

    sys.exit(stack.main(["status"]))


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def generate(ctx) -> None:
    """Write synthetic IBM flow-log objects into the bucket (see `blueflow generate --help-generator`)."""
    from devstack.generator import main as generator_main

    args = ["--help" if a == "--help-generator" else a for a in ctx.args]
    sys.exit(generator_main(args))


@main.command()
@click.option("--objects", default=300, show_default=True, help="Good objects to generate.")
@click.option("--mean-flows", default=200, show_default=True, help="Mean flows per non-empty object.")
@click.option("--bad", default=4, show_default=True, help="Bad objects (quarantined, left in the bucket).")
@click.option("--workers", default=2, show_default=True, help="Worker processes.")
@click.option("--seed", default=7, show_default=True)
@click.option("--timeout", default=600, show_default=True, help="Give up after this many seconds.")
@click.option("--keep-stack", is_flag=True, help="Leave the local stack running afterwards (to inspect it).")
def demo(objects: int, mean_flows: int, bad: int, workers: int, seed: int, timeout: int, keep_stack: bool) -> None:
    """Stack up, generate, run workers until the bucket is drained; print progress and a JSON summary."""
    from devstack.demo import run_demo

    summary = run_demo(objects=objects, mean_flows=mean_flows, bad=bad, workers=workers, seed=seed,
                       timeout_s=timeout, keep_stack=keep_stack)
    ok = summary.pop("ok", True)
    click.echo(json.dumps(summary))
    sys.exit(0 if ok else 1)


@main.group()
def topics() -> None:
    """Kafka topics of the pipeline."""


@topics.command("ensure")
@click.option("--devstack", "use_devstack", is_flag=True, help="Use .devstack/env for unset settings.")
def topics_ensure(use_devstack: bool) -> None:
    """Create the pipeline's topics (partitions, retention, compaction); existing ones are left alone."""
    if use_devstack:
        for key, value in load_devstack_env().items():
            os.environ.setdefault(key, value)
    settings = Settings.from_env()
    from connectors.kafka_admin import ensure_topics
    from streams.follower import kafka_client_config

    result = ensure_topics(kafka_client_config(settings), prefix=settings.topic_prefix,
                           partitions=settings.partitions, replication_factor=settings.replication)
    click.echo(json.dumps(dataclasses.asdict(result)))


if __name__ == "__main__":
    main()
