"""`python -m devstack.stack up [--keep-data] | down | status | env` (also `blueflow-dev devstack ...`)."""
from __future__ import annotations

import argparse
import sys

from devstack import stack
from devstack.stack.env import StackError, read_env, shell_quote


def print_status() -> int:
    rows = stack.status()
    if not rows:
        print("devstack: not running")
        return 1
    print(f"{'component':<16}{'pid':>8}{'port':>7}  alive  listening")
    for r in rows:
        print(f"{r['name']:<16}{r['pid']:>8}{r['port'] or '-':>7}  {'yes' if r['alive'] else 'NO':<5}  "
              f"{'yes' if r['listening'] else 'NO'}")
    env = read_env()
    if env:
        print(f"Kafka {env.get('BLUEFLOW_DEVSTACK_KAFKA_VERSION')}, S3Proxy "
              f"{env.get('BLUEFLOW_DEVSTACK_S3PROXY_VERSION')}, {env.get('BLUEFLOW_DEVSTACK_JAVA')}")
    return 0 if all(r["alive"] and r["listening"] for r in rows) else 1


def print_env() -> int:
    env = read_env()
    if not env:
        print("devstack: not running", file=sys.stderr)
        return 1
    for k, v in sorted(env.items()):
        print(f"{k}={shell_quote(v)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m devstack.stack", description="blueflow local stack")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p_up = sub.add_parser("up", help="start (restart) the stack")
    p_up.add_argument("--keep-data", action="store_true", help="keep Kafka logs and bucket contents")
    sub.add_parser("down", help="stop the stack")
    sub.add_parser("status", help="show the components")
    sub.add_parser("env", help="print the settings (KEY=value)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "up":
            stack.up(keep_data=args.keep_data)
        elif args.cmd == "down":
            stack.down()
        elif args.cmd == "status":
            return print_status()
        else:
            return print_env()
    except StackError as exc:
        print(f"devstack {args.cmd} failed: {exc}", file=sys.stderr)
        return 1
    return 0
