"""`blueflow-dev`: the development tools — the local stack, the flow-log generator, the demo and the fault
suite, and the product's commands run with the local stack's settings (devstack/product.py). A distribution of
its own (devstack/pyproject.toml), not part of the product's wheel or image.

Every command honours $BLUEFLOW_DEVSTACK_DIR (where the stack keeps its state and env file) and
$BLUEFLOW_DEVSTACK_PORT_BASE (its ports), so several stacks can run side by side.
"""
from __future__ import annotations

import json
import sys

import click

from devstack.product import COMMANDS as PRODUCT_COMMANDS

PASS_THROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.group(name="blueflow-dev")
def main() -> None:
    """blueflow development tools: local stack, generator, demo, fault suite."""


@main.group()
def devstack() -> None:
    """The local stack: Apache Kafka, S3Proxy and the IAM, VPC and Kentik stand-ins on 127.0.0.1."""


@devstack.command("up")
def devstack_up() -> None:
    """Start the stack (downloads the jars from Maven Central on first use); writes the env file."""
    from devstack.stack.cli import main as stack_main

    sys.exit(stack_main(["up"]))


@devstack.command("down")
def devstack_down() -> None:
    """Stop every process of the stack."""
    from devstack.stack.cli import main as stack_main

    sys.exit(stack_main(["down"]))


@devstack.command("status")
def devstack_status() -> None:
    """Show each component, its pid, port and whether it is alive."""
    from devstack.stack.cli import main as stack_main

    sys.exit(stack_main(["status"]))


@main.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.pass_context
def generate(ctx) -> None:
    """Write synthetic IBM flow-log objects into the local stack's bucket (--help lists the options)."""
    from devstack.synth.writer import main as generator_main

    sys.exit(generator_main(list(ctx.args)))


@main.command(context_settings=PASS_THROUGH, add_help_option=False)
@click.pass_context
def faults(ctx) -> None:
    """Run the reliability suite on the local stack; writes faults-report.json (--help lists the options)."""
    from devstack.faults.cli import main as faults_main

    sys.exit(faults_main(list(ctx.args)))


@main.command()
@click.option("--objects", default=300, show_default=True, help="Good objects to generate.")
@click.option("--mean-flows", default=200, show_default=True, help="Mean flows per non-empty object.")
@click.option("--bad", default=4, show_default=True, help="Bad objects (quarantined, left in the bucket).")
@click.option("--workers", default=2, show_default=True, help="Worker processes.")
@click.option("--seed", default=7, show_default=True)
@click.option("--timeout", default=600, show_default=True, help="Give up after this many seconds.")
@click.option("--keep-stack", is_flag=True, help="Leave the local stack running afterwards (to inspect it).")
@click.option("--sink", type=click.Choice(["kentik", "ipfix"]), default="kentik", show_default=True,
              help="kentik: the Kentik stand-in; ipfix: IPFIX to an nfcapd started on 127.0.0.1 (needs nfdump).")
@click.option("--sources", default=0, type=click.IntRange(0, 4), show_default=True,
              help="Serve this many sources (buckets, accounts, Kentik exports) from one configuration file; "
                   "--objects and --bad are per source. 0: the flags' one source (`default`).")
def demo(objects: int, mean_flows: int, bad: int, workers: int, seed: int, timeout: int, keep_stack: bool,
         sink: str, sources: int) -> None:
    """Stack up, generate, run workers until the bucket is drained; print progress and a JSON summary."""
    from devstack.demo import run_demo

    summary = run_demo(objects=objects, mean_flows=mean_flows, bad=bad, workers=workers, seed=seed,
                       timeout_s=timeout, keep_stack=keep_stack, sink=sink, sources=sources)
    ok = summary.pop("ok", True)
    click.echo(json.dumps(summary))
    sys.exit(0 if ok else 1)


def product_command(name: str) -> click.Command:
    """`blueflow-dev NAME ARGS`: `blueflow NAME ARGS` with the running stack's settings (devstack/product.py)."""
    def callback(args: tuple[str, ...]) -> None:
        from devstack.product import run

        run(name, list(args))

    return click.Command(name, callback=callback, add_help_option=False, context_settings=PASS_THROUGH,
                         params=[click.Argument(["args"], nargs=-1, type=click.UNPROCESSED)],
                         short_help=f"blueflow {name} with the local stack's settings.",
                         help=f"`blueflow {name}` with the local stack's settings (`blueflow-dev {name} --help`: "
                              "its options).")


for _name in PRODUCT_COMMANDS:
    main.add_command(product_command(_name))


if __name__ == "__main__":
    main()
