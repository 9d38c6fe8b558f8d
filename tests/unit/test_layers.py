"""The import contract of the product (streams/, connectors/): each module imports only its own layer or a lower one,
no two modules import each other (directly or round a loop), and nothing imports the dev tools (devstack/).

Imports inside functions count the same as those at the top: a deferred import is still a dependency.
The layers, low to high, are LAYERS below (the same order is in README "Layout" and docs/architecture.md).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# (module prefix, layer), the longest matching prefix wins; the index in LAYERS is the layer's rank.
# observe sits below config: metrics, health and logs are leaves that every layer above reports into.
LAYERS = ["formats", "connectors", "observe", "config", "state", "stages", "ops"]
PREFIXES = {
    "streams.formats": "formats",        # pure data formats, no I/O
    "connectors": "connectors",          # the I/O clients (COS, VPC, Kentik HTTP, IPFIX export, Kafka admin)
    "streams.embedded": "connectors",    # the embedded Kafka broker: a process the worker runs, like a client
    "streams.config": "config",
    "streams.observe": "observe",
    "streams.state": "state",
    "streams.stages": "stages",
    "streams.ops": "ops",
}
EXACT = {
    "streams.app": "ops",                # the Faust entry point (`faust -A streams.app worker`)
    "streams": "ops",                    # the package itself (a docstring)
}


def layer_of(module: str) -> str:
    if module in EXACT:
        return EXACT[module]
    best = max((p for p in PREFIXES if module == p or module.startswith(p + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to PREFIXES")
    return PREFIXES[best]


def product_modules(root: Path = ROOT) -> dict[str, Path]:
    found = {}
    for top in ("streams", "connectors"):
        for path in sorted((root / top).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module `name` imports (top-level and inside functions); `from pkg import mod` counts as pkg.mod."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return out


def graph(root: Path = ROOT) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(product module → the product modules it imports, product module → every module it imports)."""
    modules = product_modules(root)
    known = set(modules)
    every = {name: imports_of(name, path, known) for name, path in modules.items()}
    return {name: {m for m in deps if m in known and m != name} for name, deps in every.items()}, every


def upward_imports(deps: dict[str, set[str]]) -> list[str]:
    rank = {layer: i for i, layer in enumerate(LAYERS)}
    return sorted(f"{m} ({layer_of(m)}) imports {d} ({layer_of(d)})"
                  for m, ds in deps.items() for d in ds if rank[layer_of(d)] > rank[layer_of(m)])


def cycles(deps: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(deps[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(deps):
        if v not in index:
            visit(v)
    return found


def test_every_product_module_has_a_layer():
    modules = product_modules()
    assert "streams.formats.flowlog.flowlog" in modules and "connectors.cos" in modules
    assert {layer_of(m) for m in modules} == set(LAYERS)


def test_imports_go_to_the_same_layer_or_lower():
    deps, _ = graph()
    assert upward_imports(deps) == []


def test_no_import_cycles():
    deps, _ = graph()
    assert cycles(deps) == []


IO_CLIENTS = {"faust", "aiokafka", "confluent_kafka", "ibm_boto3", "ibm_botocore", "boto3", "botocore", "requests",
              "httpx", "aiohttp", "urllib.request", "http.client", "asyncio", "subprocess"}


def test_formats_do_no_io():
    """streams/formats/ is pure: no Kafka, COS, HTTP client, event loop or process."""
    _, every = graph()
    assert sorted(f"{m} imports {d}" for m, ds in every.items() if layer_of(m) == "formats" for d in ds
                  if d in IO_CLIENTS or d.split(".")[0] in IO_CLIENTS) == []


def test_product_never_imports_devstack():
    _, every = graph()
    assert sorted(f"{m} imports {d}" for m, ds in every.items() for d in ds if d.split(".")[0] == "devstack") == []


def test_the_checks_catch_what_they_name(tmp_path):
    """An upward import, a loop and a devstack import, in a small tree of the same shape, are each reported."""
    files = {
        "streams/__init__.py": "",
        "streams/formats/__init__.py": "",
        "streams/formats/a.py": "def f():\n    from streams.stages import b\n",
        "streams/stages/__init__.py": "",
        "streams/stages/b.py": "from . import c\n",
        "streams/stages/c.py": "import devstack.stack\nfrom streams.stages.b import x\n",
        "connectors/__init__.py": "",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    deps, every = graph(tmp_path)
    assert upward_imports(deps) == ["streams.formats.a (formats) imports streams.stages.b (stages)"]
    assert cycles(deps) == [["streams.stages.b", "streams.stages.c"]]
    assert "devstack.stack" in every["streams.stages.c"]
