"""`blueflow embedded fetch|where`: the embedded Kafka's jars ahead of the first run, and where it runs."""
from __future__ import annotations

import json
import sys

import click


@click.group()
def embedded() -> None:
    """The embedded single-node Kafka (used when no --kafka_bootstrap is given)."""


@embedded.command()
def fetch() -> None:
    """Download and verify the Kafka jars by the hashed lock now (a worker otherwise does it on its first run;
    the container image has them), and check that a Java 17+ is there to run them."""
    from streams.embedded import jars
    from streams.embedded.java import JavaError, find_java

    try:
        dirs = jars.ensure(log=lambda line: click.echo(line, err=True), components=("kafka",))
    except jars.JarError as exc:
        raise click.ClickException(f"fetching the Kafka jars failed: {exc}") from None
    click.echo(f"kafka {jars.versions()['kafka']}: {dirs['kafka']}")
    try:
        click.echo(find_java().describe())
    except JavaError as exc:
        raise click.ClickException(str(exc)) from None


@embedded.command()
@click.option("--data_dir", default=None, help="The worker's data directory  [env BLUEFLOW_DATA_DIR]")
@click.option("--json", "as_json", is_flag=True, help="One JSON document.")
def where(data_dir: str | None, as_json: bool) -> None:
    """The data directory and, when a worker runs it, the embedded Kafka's address (exit 1 when none runs)."""
    import os

    from streams.embedded import locate

    directory = locate.data_dir_of(data_dir if data_dir is not None else os.environ.get("BLUEFLOW_DATA_DIR", ""))
    record = locate.read_runtime(directory)
    bootstrap, why = locate.running_bootstrap(record, directory)
    if as_json:
        click.echo(json.dumps({"data_dir": str(directory), "bootstrap": bootstrap, "problem": why or None,
                               "worker_pid": (record or {}).get("worker_pid"),
                               "kafka_version": (record or {}).get("kafka_version")}))
    else:
        click.echo(f"data directory: {directory}")
        click.echo(f"embedded Kafka: {bootstrap} (worker pid {record['worker_pid']})" if bootstrap else why)
    sys.exit(0 if bootstrap else 1)
