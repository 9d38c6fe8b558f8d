"""The configuration file (`--config blueflow.yaml`, env BLUEFLOW_CONFIG): global settings plus `sources:`.

    kafka_bootstrap: broker-0:9093,broker-1:9093     # any option of the table (streams/config/option_table.py) by name
    poll_interval: 30
    sources:
      - name: acct-a                                  # [a-z0-9][a-z0-9_.-]*, unique
        bucket: flowlogs-a
        endpoint: s3.direct.us-south.cloud-object-storage.appdomain.cloud
        cos_api_key_env: ACCT_A_COS_KEY               # secrets: the NAME of a variable, or a file path
        service_instance: crn:v1:...
        regions: [us-south]
        kentik_token_file: /run/secrets/kentik-a
        plan_id: 11467
        export_id: 3302

Secrets are never written in the file: `cos_api_key`, `hmac_secret_key`, `vpc_api_key` and `kentik_token` are
given as `<name>_env` (an environment variable's name) or `<name>_file` (a path, relative to the file). Every
problem is reported at once, each with its line and what was expected (ConfigFileError, exit 2).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from streams.config.option_table import BY_NAME
from streams.config.values import SettingError, convert
from streams.config.sources import Source

SECRETS = ("cos_api_key", "hmac_secret_key", "vpc_api_key", "kentik_token")
SOURCE_TEXT = ("endpoint", "prefix", "service_instance", "hmac_access_key", "kentik_email", "ipfix_collectors")
SOURCE_TYPED = {"plan_id": BY_NAME["plan_id"], "export_id": BY_NAME["export_id"],
                "keep_objects": BY_NAME["keep_objects"], "dry_run": BY_NAME["dry_run"],
                "sink": replace(BY_NAME["sink"], kind="choice")}  # checked here, with its line
SOURCE_KEYS = (("name", "bucket", "regions") + SOURCE_TEXT + tuple(SOURCE_TYPED)
               + tuple(f"{s}_{how}" for s in SECRETS for how in ("env", "file")))
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
GLOBAL_SKIP = ("config",)


class ConfigFileError(SettingError):
    """Every problem of a configuration file, each as `path line N: key: what was expected`."""

    def __init__(self, path: str, problems: list[str]):
        self.path, self.problems = path, problems
        ValueError.__init__(self, f"configuration file {path}: " + "; ".join(problems))


@dataclass(frozen=True)
class At:
    """A value of the file and the (1-based) line it is on."""

    value: Any
    line: int


@dataclass
class ConfigFile:
    path: str
    settings: dict[str, str] = field(default_factory=dict)  # option name -> raw text (checked)
    sources: list[dict[str, At]] = field(default_factory=list)  # per source: key -> At (raw YAML values)
    source_lines: list[int] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ reading
def _tree(node, constructor) -> At:
    """The YAML node as plain values wrapped in At (mappings keep their keys' lines; duplicates are errors)."""
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, At] = {}
        for key_node, value_node in node.value:
            key = str(constructor.construct_object(key_node))
            if key in out:
                raise _Problem(key_node.start_mark.line + 1, f"{key}: given twice")
            value = _tree(value_node, constructor)
            out[key] = At(value.value, key_node.start_mark.line + 1)
        return At(out, line)
    if isinstance(node, yaml.SequenceNode):
        return At([_tree(item, constructor) for item in node.value], line)
    return At(constructor.construct_object(node), line)


class _Problem(Exception):
    def __init__(self, line: int, text: str):
        super().__init__(f"line {line}: {text}")


def read(path: str) -> At:
    """The file's top-level mapping (ConfigFileError if unreadable, not YAML, or not a mapping)."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigFileError(path, [f"cannot be read: {exc.strerror or exc}"]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        root = _tree(node, loader) if node is not None else At({}, 1)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigFileError(path, [f"{where}not valid YAML: {exc.problem or exc.context}"]) from None
    except _Problem as exc:
        raise ConfigFileError(path, [str(exc)]) from None
    finally:
        loader.dispose()
    if not isinstance(root.value, dict):
        raise ConfigFileError(path, [f"line {root.line}: expected a mapping of settings (key: value) and "
                                     "`sources:`"])
    return root


def load(path: str) -> ConfigFile:
    """Read and check a configuration file (everything but the secrets' values, see `build_sources`)."""
    root = read(path)
    cfg, problems = ConfigFile(path), []
    for key, at in root.value.items():
        if key == "sources":
            _check_sources(at, cfg, problems)
        else:
            _check_global(key, at, cfg, problems)
    if problems:
        raise ConfigFileError(path, problems)
    return cfg


def _text_of(value: Any) -> str | None:
    """A scalar as the text a flag would give (None for mappings and lists)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return None


def _check_global(key: str, at: At, cfg: ConfigFile, problems: list[str]) -> None:
    option = BY_NAME.get(key)
    if option is None or key in GLOBAL_SKIP:
        problems.append(f"line {at.line}: {key}: unknown setting (expected an option of `blueflow worker "
                        "--help` without the dashes, or `sources`)")
        return
    if option.secret:
        problems.append(f"line {at.line}: {key}: secrets are never written in the configuration file; set "
                        f"{option.env} in the environment")
        return
    value = at.value
    if key == "regions" and isinstance(value, list):
        value = ",".join(str(item.value) for item in value)
    raw = _text_of(value)
    if raw is None:
        problems.append(f"line {at.line}: {key}: expected a single value, not a "
                        f"{'list' if isinstance(value, list) else 'mapping'}")
        return
    try:
        convert(option, raw)
    except ValueError as exc:
        problems.append(f"line {at.line}: {key}: {exc}, got {raw!r}")
        return
    cfg.settings[key] = raw


def _check_sources(at: At, cfg: ConfigFile, problems: list[str]) -> None:
    if not isinstance(at.value, list) or not at.value:
        problems.append(f"line {at.line}: sources: expected a list of sources (`- name: ...`)")
        return
    names: dict[str, int] = {}
    for number, item in enumerate(at.value):
        where = f"sources[{number}]"
        if not isinstance(item.value, dict):
            problems.append(f"line {item.line}: {where}: expected a mapping (name, bucket, ...)")
            continue
        entry = item.value
        name = entry.get("name")
        if name is not None:
            where = f"sources[{number}] ({name.value})"
        before = len(problems)
        _check_source(where, item.line, entry, problems)
        if name is not None and isinstance(name.value, str):
            if name.value in names:
                problems.append(f"line {name.line}: {where}.name: {name.value!r} is already the name of the "
                                f"source on line {names[name.value]}")
            names.setdefault(name.value, name.line)
        if len(problems) == before:
            cfg.sources.append(entry)
            cfg.source_lines.append(item.line)


def _check_source(where: str, line: int, entry: Mapping[str, At], problems: list[str]) -> None:
    for key in ("name", "bucket"):
        if key not in entry:
            problems.append(f"line {line}: {where}: `{key}` is required")
    for key, at in entry.items():
        problem = _source_value_problem(key, at.value)
        if problem:
            problems.append(f"line {at.line}: {where}.{key}: {problem}")
    for secret in SECRETS:
        if f"{secret}_env" in entry and f"{secret}_file" in entry:
            problems.append(f"line {entry[secret + '_env'].line}: {where}: give {secret}_env or {secret}_file, "
                            "not both")
    has_key = any(f"cos_api_key_{how}" in entry for how in ("env", "file"))
    has_secret = any(f"hmac_secret_key_{how}" in entry for how in ("env", "file"))
    if has_key and "service_instance" not in entry:
        problems.append(f"line {line}: {where}: cos_api_key_* needs service_instance (the COS instance id)")
    if has_secret != ("hmac_access_key" in entry):
        problems.append(f"line {line}: {where}: HMAC credentials need both hmac_access_key and "
                        "hmac_secret_key_env (or hmac_secret_key_file)")


def _source_value_problem(key: str, value: Any) -> str:
    """What is wrong with one key of a source ("" when nothing is)."""
    if key in SECRETS:
        return (f"secrets are never written in the configuration file; give {key}_env (the name of an "
                f"environment variable holding it) or {key}_file (a file holding it)")
    if key not in SOURCE_KEYS:
        return "unknown key (expected one of " + ", ".join(SOURCE_KEYS) + ")"
    if key == "name":
        ok = isinstance(value, str) and NAME.match(value)
        return "" if ok else "expected lower-case letters, digits, '-', '_' or '.' (at most 63), e.g. acct-a"
    if key == "regions":
        items = [i.value for i in value] if isinstance(value, list) else value
        ok = isinstance(items, str) or (isinstance(items, list) and all(isinstance(i, str) for i in items))
        return "" if ok else "expected a list of region names, e.g. [us-south, us-east]"
    if key.endswith("_env"):
        if not isinstance(value, str) or not ENV_NAME.match(value):
            return ("expected the NAME of an environment variable (letters, digits, _); this looks like a "
                    "secret itself — secrets are never written in the configuration file")
        return ""
    if key in SOURCE_TYPED:
        raw = _text_of(value)
        try:
            convert(SOURCE_TYPED[key], raw if raw is not None else "[list]")
        except ValueError as exc:
            return f"{exc}, got {value!r}"
        return ""
    return "" if isinstance(value, str) or key == "prefix" and value is None else "expected text (put it in quotes)"


# ------------------------------------------------------------------------------------------ sources
def build_sources(cfg: ConfigFile, environ: Mapping[str, str]) -> tuple[Source, ...]:
    """The file's sources with their secrets read from the environment or files (ConfigFileError listing
    every variable that is unset and every file that cannot be read, with their lines)."""
    problems: list[str] = []
    base = Path(cfg.path).resolve().parent
    sources = []
    for number, entry in enumerate(cfg.sources):
        values: dict[str, Any] = {"name": entry["name"].value, "bucket": str(entry["bucket"].value)}
        for key in SOURCE_TEXT:
            if key in entry:
                values[key] = "" if entry[key].value is None else str(entry[key].value)
        for key, option in SOURCE_TYPED.items():
            if key in entry:
                values[key] = convert(option, _text_of(entry[key].value))
        if "regions" in entry:
            regions = entry["regions"].value
            items = [i.value for i in regions] if isinstance(regions, list) else str(regions).split(",")
            values["regions"] = tuple(r.strip() for r in items if r.strip())
        for secret in SECRETS:
            found = _secret(entry, secret, environ, base, f"sources[{number}] ({values['name']})", problems)
            if found:
                values[secret] = found
        sources.append(Source(**values))
    if problems:
        raise ConfigFileError(cfg.path, problems)
    return tuple(sources)


def _secret(entry: Mapping[str, At], secret: str, environ: Mapping[str, str], base: Path, where: str,
            problems: list[str]) -> str:
    env, path = entry.get(f"{secret}_env"), entry.get(f"{secret}_file")
    if env is not None:
        value = environ.get(env.value, "")
        if not value.strip():
            problems.append(f"line {env.line}: {where}.{secret}_env: environment variable {env.value} is not set")
        return value.strip()
    if path is not None:
        file = Path(str(path.value)).expanduser()
        file = file if file.is_absolute() else base / file
        try:
            value = file.read_text().strip()
        except OSError as exc:
            problems.append(f"line {path.line}: {where}.{secret}_file: {file} cannot be read "
                            f"({exc.strerror or exc})")
            return ""
        if not value:
            problems.append(f"line {path.line}: {where}.{secret}_file: {file} is empty")
        return value
    return ""
