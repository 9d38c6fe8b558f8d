"""`python -m devstack.jars lock|fetch`: the maintainers' commands for the jar lock of streams/embedded/jars.py.

  python -m devstack.jars lock     resolve streams/embedded/maven/*.pom.xml with mvn and rewrite the lock file
  python -m devstack.jars fetch    download and verify every component's jars (Kafka, S3Proxy) into the cache now

The lock and the fetching code are the product's (the embedded broker needs them); the local stack uses them.
"""
from __future__ import annotations

import sys

from streams.embedded.jars import JarError, ensure


def main(argv: list[str] | None = None) -> int:
    import argparse

    from devstack import jarlock

    ap = argparse.ArgumentParser(prog="python -m devstack.jars", description="the locked jars")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("lock", help="resolve streams/embedded/maven/*.pom.xml with Maven and rewrite the lock file")
    sub.add_parser("fetch", help="download and verify the locked jars into the cache")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "lock":
            jarlock.write_lock(log=print)
        else:
            for name, path in ensure().items():
                print(f"{name}: {path}")
    except JarError as exc:
        print(f"devstack.jars {args.cmd} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
