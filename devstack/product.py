"""`blueflow-dev worker|check|status|replay|deadletter|topics|topology`: the product's command on the local stack.

The product knows nothing of the local stack: it reads its settings from flags, the environment and a
configuration file, like any deployment. These commands hand it the running stack's settings
(`.devstack/env.json`, written by `blueflow-dev devstack up`) as environment variables under the ones already
set, so `IBM_VPC_API_KEY=wrong blueflow-dev check` still sees the wrong key, and flags beat both. `status`
without --worker/--worker-dns also finds the workers started on the stack (devstack/workers.py records them)
and looks at their run's app id and topic prefix.
"""
from __future__ import annotations

import os

import click

COMMANDS = ("worker", "check", "status", "replay", "deadletter", "topics", "topology")
RUN_ENV = (("app_id", "BLUEFLOW_APP_ID"), ("topic_prefix", "BLUEFLOW_TOPIC_PREFIX"))


def stack_environ(stack_env: dict[str, str], environ: dict[str, str]) -> dict[str, str]:
    """`environ` over the stack's settings: what is already set wins."""
    return {**stack_env, **environ}


def newest_run(records: list[dict]) -> tuple[list[str], dict]:
    """The URLs of the newest run's live workers (records of devstack.workers.discover, newest first) and that
    run's {"app_id", "topic_prefix", "other_runs"}: runs use their own app id and topic prefix, so status must
    look at the same ones."""
    if not records:
        return [], {}
    newest = records[0]
    run = (newest.get("app_id", ""), newest.get("topic_prefix", ""))
    urls = [r["url"] for r in records if (r.get("app_id", ""), r.get("topic_prefix", "")) == run]
    others = {(r.get("app_id", ""), r.get("topic_prefix", "")) for r in records} - {run}
    return urls, {"app_id": run[0], "topic_prefix": run[1], "other_runs": len(others)}


def names_workers(args: list[str]) -> bool:
    return any(a.split("=", 1)[0] in ("--worker", "--worker-dns", "--worker_dns") for a in args)


def status_args(args: list[str], environ: dict[str, str], records: list[dict], say=print) -> list[str]:
    """`blueflow status` arguments with the newest run's workers added (when none are named); sets that run's
    app id and topic prefix in `environ` unless set there already (a flag still wins)."""
    if names_workers(args):
        return args
    urls, run = newest_run(records)
    if not urls:
        say("note: no worker of the local stack is running; trying http://127.0.0.1:8083")
        return args
    for name, env in RUN_ENV:
        environ.setdefault(env, run[name])
    if run["other_runs"]:
        say(f"note: {run['other_runs']} older run(s) of local workers are also up; showing the newest "
            f"(app id {run['app_id']})")
    return [*args, *(arg for url in urls for arg in ("--worker", url))]


def run(name: str, args: list[str]) -> None:
    """Run `blueflow NAME ARGS` in this process with the stack's settings in the environment (exits)."""
    from devstack.stack.env import read_env, state_dir
    from devstack.workers import discover
    from streams.ops.cli import main as product

    stack_env = read_env()
    if not stack_env and not {"-h", "--help"} & set(args):
        raise click.UsageError(f"no local stack settings in {state_dir()}/env.json (start it with "
                               "`blueflow-dev devstack up`, or set BLUEFLOW_DEVSTACK_DIR)")
    os.environ.update(stack_environ(stack_env, dict(os.environ)))
    if name == "status":
        args = status_args(args, os.environ, discover(), say=lambda line: click.echo(line, err=True))
    product.main([name, *args], prog_name="blueflow")
