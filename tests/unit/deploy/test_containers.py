"""The container files, checked without a Docker engine: docker-compose.yml against the Compose
Specification's JSON schema (vendored in tests/unit/data), the Dockerfiles' COPY sources, layer order and the
dependency step run for real, and what the build context leaves out."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = ROOT / "Dockerfile"
DEVTOOLS = ROOT / "devstack" / "Dockerfile"
DEV_DIRS = {"devstack", "tests", "benchmarks", ".venv", ".devstack"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per logical line (continuations joined, comments dropped)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    return [tuple(line.strip().split(None, 1)) for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def local_copies(path: Path) -> list[list[str]]:
    """The sources of every COPY from the build context (not --from=another stage)."""
    return [args.split()[:-1] for op, args in instructions(path) if op == "COPY" and "--from=" not in args]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_is_valid_for_the_compose_specification(compose):
    schema = json.loads((Path(__file__).parent / "data" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator(schema).validate(compose)  # raises with the path of the first problem


def test_compose_uses_a_published_s3proxy_release_tag(compose):
    images = {s["image"] for name, s in compose["services"].items() if name.startswith("s3proxy")}
    assert len(images) == 1
    (image,) = images
    # S3Proxy's CI publishes a tag per release (s3proxy-X.Y.Z → X.Y.Z), per commit (sha-…) and latest
    assert re.fullmatch(r"andrewgaul/s3proxy:\d+\.\d+\.\d+", image), image


def test_only_services_that_serve_8083_use_the_product_image_with_its_healthcheck(compose):
    assert "HEALTHCHECK" in [op for op, _ in instructions(PRODUCT)]
    assert "HEALTHCHECK" not in [op for op, _ in instructions(DEVTOOLS)]
    for name, service in compose["services"].items():
        build = service.get("build")
        if build is None:
            continue
        product = build in (".", {"context": "."}) or (isinstance(build, dict) and "dockerfile" not in build)
        runs_worker = service.get("command", [None])[0] == "worker"
        assert product == runs_worker, name
        if not product:
            assert build == {"context": ".", "dockerfile": "devstack/Dockerfile"}, name


def test_every_worker_replica_has_a_host_port_for_blueflow_status(compose):
    worker = compose["services"]["worker"]
    (mapping,) = worker["ports"]
    first, last, container = re.fullmatch(r"127\.0\.0\.1:(\d+)-(\d+):(\d+)", mapping).groups()
    assert int(container) == 8083 and int(last) - int(first) + 1 == worker["deploy"]["replicas"]
    kafka = compose["services"]["kafka"]
    host_port = kafka["ports"][0].rsplit(":", 1)[1]
    assert f"HOST://127.0.0.1:{host_port}" in kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]


@pytest.mark.parametrize("dockerfile", [PRODUCT, DEVTOOLS], ids=["product", "devtools"])
def test_every_copy_source_exists_and_is_not_ignored(dockerfile):
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for sources in local_copies(dockerfile):
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source not in ignored, source


def test_product_image_holds_the_product_only():
    copied = {s.split("/")[0] for sources in local_copies(PRODUCT) for s in sources}
    assert copied == {"requirements.lock", "pyproject.toml", "README.md", "streams", "connectors", "schemas"}
    assert not copied & DEV_DIRS
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert all(any(p.startswith(c) for p in packages["include"]) for c in ("streams", "connectors", "schemas"))


def test_only_the_devtools_image_installs_the_dev_tools_distribution():
    installs = [args for op, args in instructions(DEVTOOLS) if op == "RUN" and "pip install" in args]
    assert any(" . ./devstack" in args for args in installs)  # the product and blueflow-dev (devstack/pyproject.toml)
    assert not any("devstack" in args for op, args in instructions(PRODUCT) if op in ("RUN", "COPY"))


@pytest.mark.parametrize("dockerfile", [PRODUCT, DEVTOOLS], ids=["product", "devtools"])
def test_dependencies_are_installed_before_the_source_is_copied(dockerfile):
    steps = instructions(dockerfile)
    first_source = next(i for i, (op, args) in enumerate(steps) if op == "COPY" and args.startswith("streams"))
    deps_file = "requirements.lock" if dockerfile == PRODUCT else "requirements.txt"  # the image: the lock
    deps = next(i for i, (op, args) in enumerate(steps) if op == "RUN" and f"-r {deps_file}" in args)
    copies_before = [args for op, args in steps[:deps] if op == "COPY"]
    assert deps < first_source and copies_before == [f"{deps_file if dockerfile == PRODUCT else 'pyproject.toml'} ./"]


def test_the_dependency_step_installs_the_lock_of_the_projects_dependencies():
    from devstack.pylock import dependencies, locked, unsatisfied

    run = next(args for op, args in instructions(PRODUCT) if op == "RUN" and "-r requirements.lock" in args)
    assert "--require-hashes" in run
    assert unsatisfied(dependencies(), locked((ROOT / "requirements.lock").read_text())) == []


def test_build_context_leaves_out_the_virtualenv_state_and_dev_only_trees():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", ".devstack", "tests", "benchmarks", "**/__pycache__"} <= ignored
    assert "devstack" not in ignored  # the devtools image (compose's stand-ins) copies it
