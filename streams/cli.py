"""The `blueflow` command: worker, devstack, generate, demo, topics, and the operator's replay, deadletter
and status.

`blueflow worker` takes Kentik Blueflow's flags (`--bucket_name=...`, also written without the leading `--`
as Kentik's published manifests do) and environment variables, so switching is a one-line change.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
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


STOP_GRACE_S = 15.0


def _exit_after(grace_s: float) -> None:
    """Leave the process `grace_s` seconds from now, whatever is still running (a daemon timer)."""
    import threading

    def leave() -> None:
        logging.getLogger("blueflow").warning("worker did not stop within %.0fs of the signal; exiting now "
                                              "(unfinished work is not committed and will be redone)", grace_s)
        os._exit(0)

    timer = threading.Timer(grace_s, leave)
    timer.daemon = True
    timer.start()


def _graceful_worker_class():
    import faust

    class GracefulWorker(faust.Worker):
        """A Faust worker whose stop on SIGTERM/SIGINT is bounded: Kubernetes and tests can rely on it."""

        def _on_sigterm(self) -> None:
            _exit_after(STOP_GRACE_S)
            super()._on_sigterm()

        def _on_sigint(self) -> None:
            _exit_after(STOP_GRACE_S)
            super()._on_sigint()

        def _install_signal_handlers_unix(self) -> None:
            super()._install_signal_handlers_unix()
            from streams import taskdump

            self.loop.remove_signal_handler(signal.SIGUSR1)  # mode's dump prints locals (secrets) to stderr
            taskdump.install(self.loop)  # kill -USR1: every task's and thread's stack in the log

    return GracefulWorker


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
        from streams.app import app

        GracefulWorker = _graceful_worker_class()
        level = {"debug": "debug", "warning": "warning", "error": "error"}.get(settings.log_level.lower(), "info")
        worker = GracefulWorker(app, loglevel=level)
        try:
            worker.execute_from_commandline()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # a crash reason re-raised after shutdown: say it, then leave all the same
            logging.getLogger("blueflow").exception("worker stopped after a failure")
            code = 1
        # Faust has stopped and flushed its producer. A thread of ours may still be blocked in a COS or Kentik
        # call whose result nobody awaits any more; leave without joining it (what it did is at-least-once).
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

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


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def faults(ctx) -> None:
    """Run the reliability suite on the local stack; writes faults-report.json (`blueflow faults --help-suite`)."""
    from devstack.faults import main as faults_main

    sys.exit(faults_main(["--help" if a == "--help-suite" else a for a in ctx.args]))


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


# ---------------------------------------------------------------- operations: replay, deadletter, status
OPS_OPTIONS = ("kafka_bootstrap", "topic_prefix", "app_id", "bucket_name", "service_endpoint", "cos_prefix")


def ops_settings(func):
    """Options shared by the operator commands: --devstack and the settings that locate the deployment."""
    for name in reversed(OPS_OPTIONS):
        option = next(o for o in OPTIONS if o.name == name)
        func = click.option(f"--{name}", default=None, help=f"{option.help} [env {option.env}]")(func)
    return click.option("--devstack", "use_devstack", is_flag=True,
                        help="Take unset settings from .devstack/env (the local stack).")(func)


def _ops_settings(use_devstack: bool, values: dict) -> Settings:
    if use_devstack:
        for key, value in load_devstack_env().items():
            os.environ.setdefault(key, value)
    _apply_worker_options({k: values.pop(k, None) for k in OPS_OPTIONS})
    return Settings.from_env()


@main.command()
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

    settings = _ops_settings(use_devstack, values)
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


@main.group()
def deadletter() -> None:
    """Quarantined objects: list them, show one, retry one or all."""


@deadletter.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document: the newest record per object key.")
@ops_settings
def deadletter_list(as_json: bool, use_devstack: bool, **values) -> None:
    """Every quarantined object (newest dead letter per key) and why."""
    from streams.deadletters import newest_per_key, read_letters, table_lines

    settings = _ops_settings(use_devstack, values)
    letters = newest_per_key(read_letters(settings))
    if as_json:
        click.echo(json.dumps({"topic": settings.topic("deadletter"), "count": len(letters),
                               "objects": [item.as_dict() for item in letters]}))
    else:
        for line in table_lines(letters):
            click.echo(line)
        click.echo(f"{len(letters)} quarantined objects in {settings.topic('deadletter')}")


@deadletter.command("show")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True)
@ops_settings
def deadletter_show(key: str, as_json: bool, use_devstack: bool, **values) -> None:
    """Every dead letter of KEY and the object's current state in the bucket."""
    from streams.deadletters import object_state, read_letters

    settings = _ops_settings(use_devstack, values)
    history = [item.as_dict() for item in read_letters(settings) if item.key == key]
    doc = {"key": key, "records": sorted(history, key=lambda r: (r["at"], r["offset"])),
           "object": object_state(settings, key)}
    if as_json:
        click.echo(json.dumps(doc))
    else:
        if not history:
            click.echo(f"no dead letter for {key!r}")
        for r in doc["records"]:
            click.echo(f"{r['at_iso']}  stage {r['stage']}  etag {r['etag']}  size {r['size']}\n    {r['reason']}")
        click.echo(f"in bucket now: {json.dumps(doc['object'])}")
    sys.exit(0 if history else 1)


@deadletter.command("retry")
@click.argument("keys", nargs=-1)
@click.option("--all", "retry_all", is_flag=True, help="Retry every quarantined object still in the bucket.")
@click.option("--json", "as_json", is_flag=True)
@ops_settings
def deadletter_retry(keys: tuple[str, ...], retry_all: bool, as_json: bool, use_devstack: bool, **values) -> None:
    """Process quarantined objects again (forced): the object must still be in the bucket.

    With --all, objects that are no longer in the bucket are reported and skipped."""
    from streams.deadletters import newest_per_key, read_letters, retry as do_retry

    settings = _ops_settings(use_devstack, values)
    if retry_all == bool(keys):
        raise click.UsageError("give object KEYS or --all (not both)")
    targets = [item.key for item in newest_per_key(read_letters(settings)) if item.key] if retry_all else list(keys)
    results = do_retry(settings, targets)
    if as_json:
        click.echo(json.dumps({"results": [r.as_dict() for r in results]}))
    else:
        for r in results:
            click.echo(f"{'ok  ' if r.ok else 'FAIL'}  {r.key}  {r.detail}")
        click.echo(f"{sum(r.ok for r in results)} of {len(results)} objects sent to parse again")
    # with --all, objects no longer in the bucket (fixed and delivered since) are not failures
    sys.exit(0 if all(r.ok or (retry_all and r.gone) for r in results) else 1)


@main.command()
@click.option("--worker", "workers", multiple=True, default=("http://127.0.0.1:8083",), show_default=True,
              help="A worker's HTTP base URL (repeat for each worker).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document and exit.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between refreshes (and the rate window).")
@click.option("--no-bucket", is_flag=True, help="Skip the bucket listing (very large buckets).")
@ops_settings
def status(workers: tuple[str, ...], as_json: bool, interval: float, no_bucket: bool, use_devstack: bool,
           **values) -> None:
    """Live view of lag per stage, objects in flight, rates, Kentik and COS results, dead letters."""
    from streams import status as status_mod

    settings = _ops_settings(use_devstack, values)
    if as_json:
        doc = status_mod.collect(settings, list(workers), interval=interval, with_bucket=not no_bucket)
        click.echo(json.dumps(doc))
        sys.exit(0 if doc["healthy"] and not doc["errors"] else 1)
    status_mod.live(settings, list(workers), interval, not no_bucket)


if __name__ == "__main__":
    main()
