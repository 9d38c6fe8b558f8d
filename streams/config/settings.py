"""Worker configuration: the typed settings, resolved from flags or the environment and checked.

Every option has a flag (Blueflow's own names where Blueflow had one) and an environment variable, declared
once in the option table (streams/config/option_table.py): `streams/ops/options.py` turns it into typed Click options
(help text, env var, default), `Settings.resolve` into the typed settings a command hands to what it runs
(flags over environment over the configuration file over defaults), and `convert` checks every value the
same way whatever its source. `missing_for_worker` says what a worker cannot run without, source by source
(the flags and environment make a one-entry list of sources, streams/config/sources.py). Secrets come only
from the environment and are never printed, logged or exposed by `/service/info`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Iterable, Mapping

from streams.config.option_table import ALL_OPTIONS, OPTIONS
from streams.config.sources import implicit_source, inherit
from streams.config.values import SettingError, convert, regions_for


def resolve_values(flags: Mapping[str, object], environ: Mapping[str, str], uses: Iterable[str],
                   file: Mapping[str, str] | None = None) -> dict:
    """Every option's typed value: a flag, else the environment, else the configuration file (`file`, by
    option name, already checked), else the default. Options in `uses` must
    be valid (SettingError otherwise); the others fall back to their default when their value is bad, because
    the command at hand never reads them."""
    used = set(uses)
    values = {}
    for option in OPTIONS:
        default = convert(option, option.default)
        flag = flags.get(option.name)
        if flag is not None and not isinstance(flag, str):
            values[option.name] = flag  # already typed (click converted it with `convert`)
            continue
        layers = (("flag", flag), ("env", environ.get(option.env)), ("file", (file or {}).get(option.name)))
        for source, raw in layers:
            if raw is None:
                continue
            if raw.strip() == "" and option.kind in ("int", "float", "choice"):
                raw = option.default  # an empty variable means "not set"
            try:
                values[option.name] = convert(option, raw)
            except ValueError as exc:
                if option.name in used:
                    raise SettingError(option, source, raw, str(exc)) from None
                values[option.name] = default
            break
        else:
            values[option.name] = default
    return values


@dataclass(frozen=True)
class Settings:
    """The worker's configuration, typed. Build it with `Settings.resolve(...)` or `Settings.from_env()`."""

    bucket_name: str
    service_endpoint: str
    api_email: str
    plan_id: int
    export_id: int
    regions: str
    log_level: str
    log_format: str
    ibm_vpc_api_key: str
    kentik_api_token: str
    ibm_cos_api_key: str
    ibm_service_instance: str
    cos_hmac_access_key: str
    cos_hmac_secret_key: str
    cos_prefix: str
    iam_url: str
    vpc_url_template: str
    kentik_api_root: str
    kentik_flow_url: str
    kafka_bootstrap: str
    kafka_security_protocol: str
    kafka_sasl_username: str
    kafka_sasl_password: str
    kafka_ssl_ca: str
    kafka_profile: str
    topic_prefix: str
    partitions: int
    partition_budget: int
    replication: int
    app_id: str
    http_port: int
    http_host: str
    poll_interval: float
    metadata_interval: float
    heartbeat_interval: float
    stuck_after: float
    dedup_window: float
    chunk_flows: int
    max_object_bytes: int
    stream_buffer: int
    group_objects: int
    fetch_concurrency: int
    delete_batch_seconds: float
    keep_objects: bool
    dry_run: bool
    unhealthy_after: float
    sink: str
    ipfix_collectors: str
    ipfix_transport: str
    ipfix_domain: str
    ipfix_rate: int
    ipfix_kentik_device: str
    kentik_device_type: str
    kentik_device_subtype: str
    config: str = ""
    source_budget: int = 1000
    data_dir: str = ""  # the embedded Kafka's data (streams/embedded/); "" = the per-user state directory
    sources: tuple = ()  # streams.config.sources.Source: the configuration file's, else the flags' one (`resolve`;
    # () for a command that serves no bucket)
    http_faust_pages: bool = False

    @classmethod
    def resolve(cls, flags: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None,
                uses: Iterable[str] = ALL_OPTIONS) -> "Settings":
        """Settings from flags over the environment over the configuration file over defaults (see
        `resolve_values`). Raises SettingError naming the flag or variable of the first bad value."""
        env = os.environ if environ is None else environ
        flags = flags or {}
        path = flags.get("config") or env.get("BLUEFLOW_CONFIG") or ""
        if path:
            from streams.config import config_file  # yaml is loaded only with a configuration file

            cfg = config_file.load(str(path))
            settings = cls(**resolve_values(flags, env, uses, cfg.settings))
        else:
            cfg, settings = None, cls(**resolve_values(flags, env, uses))
        if "bucket_name" not in set(uses):  # a command serving no bucket has no source (none of their secrets read)
            return settings
        if cfg and cfg.sources:
            return replace(settings, sources=tuple(inherit(s, settings) for s in config_file.build_sources(cfg, env)))
        return replace(settings, sources=(implicit_source(settings),))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Every option from the environment (`faust -A streams.app worker`); every value is checked."""
        return cls.resolve(environ=environ)

    @property
    def region_list(self) -> list[str]:
        """The regions whose VPC metadata is loaded: --regions, else the COS endpoint's; [] with `none`."""
        return regions_for(self.regions, self.service_endpoint)

    @property
    def iam_token_url(self) -> str:
        return self.iam_url.rstrip("/") + "/identity/token"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def public_view(self) -> dict:
        """Every option with secrets replaced by whether they are set: safe to show anywhere."""
        secret = {o.name for o in OPTIONS if o.secret}
        view = {}
        for f in fields(self):
            value = getattr(self, f.name)
            view[f.name] = ("(set)" if value else "(unset)") if f.name in secret else value
        view["sources"] = [s.public_view() for s in self.sources]
        return view

    def secret_values(self) -> list[str]:
        """The secret values in use, for scrubbing text before it is logged."""
        own = [getattr(self, o.name) for o in OPTIONS if o.secret and getattr(self, o.name)]
        return list(dict.fromkeys(own + [value for source in self.sources for value in source.secret_values()]))


def missing_for_worker(settings: Settings) -> list[str]:
    """What a worker cannot run without, source by source, in words an operator understands (the flags' source:
    the flag or variable to set; a configuration file's: the source and what it lacks)."""
    problems = []
    for source in settings.sources:
        problems += source.missing()
        if source.sink == "ipfix":
            problems += [source.about(problem) for problem in ipfix_problems(settings, source.ipfix_collectors)]
    return problems


def ipfix_problems(settings: Settings, collectors: str) -> list[str]:
    """What is wrong with exporting IPFIX to `collectors` (a source's, or the deployment's) with these settings."""
    from connectors.ipfix_export import TRANSPORTS, parse_collectors

    problems = []
    try:
        parse_collectors(collectors)
    except ValueError as exc:
        problems.append(str(exc))
    if settings.ipfix_transport not in TRANSPORTS:
        problems.append(f"--ipfix_transport must be udp or tcp, not {settings.ipfix_transport!r}")
    if settings.ipfix_domain != "subnet" and not settings.ipfix_domain.isdigit():
        problems.append(f"--ipfix_domain must be subnet or a number, not {settings.ipfix_domain!r}")
    try:
        kentik_observation_point(settings)
    except ValueError as exc:
        problems.append(str(exc))
    return problems


def kentik_observation_point(settings: Settings) -> int | None:
    """observationPointId of every IPFIX record from --ipfix_kentik_device (COMPANY_ID:DEVICE_ID), or None
    when it is not set; ValueError in operator words when it is malformed."""
    from streams.formats.kflow.ipfix_template import kentik_observation_point as pack

    text = settings.ipfix_kentik_device.strip()
    if not text:
        return None
    company, sep, device = text.partition(":")
    if not sep or not company.strip().isdigit() or not device.strip().isdigit():
        raise ValueError(f"--ipfix_kentik_device must be COMPANY_ID:DEVICE_ID (two numbers), not {text!r}")
    return pack(int(company), int(device))
