"""`python -m devstack.pylock`: regenerate requirements.lock, the exact dependency set the image installs.

pip resolves pyproject.toml's [project] dependencies as `pip install` would today (`--dry-run --report`,
nothing installed), and every package of the result is written as `name==version --hash=sha256:...` of the
file pip chose. The Dockerfile installs with `--require-hashes -r requirements.lock`, so two builds get the
same packages (the code relies on faust-streaming internals). The files chosen are those for the Python and
platform that run this command: run it with CPython 3.11 on linux x86_64, as the image is. `--check` only
tells whether the lock still satisfies pyproject.toml's ranges (exit 1 if not).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
HEADER = ("# The image's exact dependencies, with hashes (linux x86_64, CPython 3.11). Generated from "
          "pyproject.toml by\n#   .venv/bin/python -m devstack.pylock\n# Do not edit by hand.\n")


def dependencies(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The product's dependencies plus its `embedded` extra (the Java runtime of the embedded Kafka); the
    Dockerfile leaves that extra's lines out for `--build-arg EMBEDDED=0`."""
    project = tomllib.loads(pyproject.read_text())["project"]
    return list(project["dependencies"]) + list(project["optional-dependencies"]["embedded"])


def lock_lines(report: dict) -> list[str]:
    """`name==version \\ --hash=sha256:...` per package of a `pip install --report` document, by name."""
    lines = []
    for item in sorted(report["install"], key=lambda i: i["metadata"]["name"].lower()):
        meta, info = item["metadata"], item["download_info"]
        digest = (info.get("archive_info") or {}).get("hashes", {}).get("sha256")
        if not digest:
            raise ValueError(f"{meta['name']}: pip gave no sha256 for {info.get('url')}")
        lines.append(f"{meta['name'].lower()}=={meta['version']} \\\n    --hash=sha256:{digest}")
    return lines


def resolve(requirements: list[str]) -> dict:
    """pip's resolution of `requirements` on this interpreter, as its JSON report (nothing is installed)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                        "--report", str(report), *requirements], check=True)
        return json.loads(report.read_text())


def locked(text: str) -> dict[str, str]:
    """name -> version of a lock file's text."""
    out = {}
    for line in text.splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, _, rest = line.partition("==")
            out[name.strip().lower()] = rest.split()[0]
    return out


def unsatisfied(requirements: list[str], pins: dict[str, str]) -> list[str]:
    """The requirements the pinned versions do not satisfy (or that are not pinned at all)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    names = {canonicalize_name(name): version for name, version in pins.items()}
    problems = []
    for text in requirements:
        req = Requirement(text)
        version = names.get(canonicalize_name(req.name))
        if version is None or not req.specifier.contains(version, prereleases=True):
            problems.append(f"{text}: locked {version or 'nothing'}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_known_args(argv)[1]
    if "--check" in args:
        problems = unsatisfied(dependencies(), locked(LOCK.read_text()))
        print("\n".join(problems) or f"{LOCK.name} satisfies pyproject.toml")
        return 1 if problems else 0
    LOCK.write_text(HEADER + "\n".join(lock_lines(resolve(dependencies()))) + "\n")
    print(f"wrote {LOCK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
