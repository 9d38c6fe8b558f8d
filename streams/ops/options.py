"""Click options from the option table (streams/config/option_table.py), and Settings from what a command was given.

Each command declares the options it takes as flags and the options it reads (`uses`); the flags are typed by
the table (`convert`, so a flag and its environment variable are checked the same way), the help shows the
variable and the default, and `settings_for` builds the Settings the command hands on. A bad value is a
UsageError naming the flag or variable: one line, exit status 2 (see `streams.ops.cli.BlueflowGroup`).
"""
from __future__ import annotations

import os
from typing import Iterable

import click

from streams.config.option_table import BY_NAME, Option
from streams.config.settings import Settings
from streams.config.values import SettingError, convert


class OptionType(click.ParamType):
    """A Click type that checks a flag with the table's `convert`."""

    def __init__(self, option: Option):
        self.option = option
        self.name = {"int": "integer", "float": "seconds", "choice": "choice"}.get(option.kind, "text")

    def get_metavar(self, param, ctx=None) -> str:  # noqa: ARG002 - Click's signature
        if self.option.kind == "choice":
            return "[" + "|".join(self.option.choices) + "]"
        return {"int": "INTEGER", "float": "SECONDS"}.get(self.option.kind, "TEXT")

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return convert(self.option, value)
        except ValueError as exc:
            raise click.UsageError(str(SettingError(self.option, "flag", value, str(exc))), ctx) from None


def help_text(option: Option) -> str:
    default = {"": "", "false": "off", "true": "on"}.get(option.default, option.default)
    return f"{option.help}  [env {option.env}" + (f"; default: {default}]" if default else "]")


def _flag_attrs(option: Option) -> dict:
    if option.secret:
        raise ValueError(f"{option.name} is a secret: environment only ({option.env})")
    if option.kind == "bool":
        return {"is_flag": True, "default": None, "help": help_text(option)}
    return {"type": OptionType(option), "default": None, "help": help_text(option)}


def _flag_names(option: Option) -> list[str]:
    """`--name`, and for a switch `--name/--no-name` (what `--name=false` becomes, see `switch_values`)."""
    return [f"--{option.name}/--no-{option.name}"] if option.kind == "bool" else [f"--{option.name}"]


def click_option(option: Option) -> click.Option:
    """The `--name` flag of a (non-secret) option: typed, with its variable and default in --help."""
    return click.Option(_flag_names(option), **_flag_attrs(option))


def normalise_token(name: str) -> str:
    """Click's token normaliser for every blueflow command: `--dry-run` and `--dry_run` are one flag (v1 wrote
    underscores, our own flags dashes; both spellings work everywhere)."""
    return name.replace("-", "_")


def switch_values(command: click.Command, args: list[str]) -> list[str]:
    """`--switch=true|false` (also 1/0, yes/no, on/off) → `--switch` or its `--no-switch` (or nothing, for a
    switch that is off unless given). Any other `--name=value` is left for Click to judge."""
    from streams.config.values import _FALSE, _TRUE

    switches = {}
    for param in command.params:
        if isinstance(param, click.Option) and param.is_flag and param.is_bool_flag:
            for name in param.opts:
                switches[normalise_token(name)] = (name, (param.secondary_opts or [None])[0])
    out = []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:]
        name, eq, value = arg.partition("=")
        target = switches.get(normalise_token(name)) if eq and arg.startswith("--") else None
        if target is None or value.strip().lower() not in _TRUE | _FALSE:
            out.append(arg)
        elif value.strip().lower() in _TRUE:
            out.append(target[0])
        elif target[1] is not None:
            out.append(target[1])
    return out


class SwitchesCommand(click.Command):
    """A command whose switches also take `=true/false` (Kentik's manifests write `--dry_run=true`)."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, switch_values(self, args))


class SwitchesGroup(click.Group):
    """A group of SwitchesCommands (and of groups like itself)."""

    command_class = SwitchesCommand
    group_class = type

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, switch_values(self, args))


def with_options(names: Iterable[str]):
    """Decorator: add the flags of `names` (secrets skipped) to a Click command."""
    def decorate(func):
        for name in reversed([n for n in names if not BY_NAME[n].secret]):
            func = click.option(*_flag_names(BY_NAME[name]), name, **_flag_attrs(BY_NAME[name]))(func)
        return func
    return decorate


def settings_for(values: dict, uses: Iterable[str]) -> Settings:
    """Settings from a command's flag values (popped from `values`), the environment and the configuration
    file. Raises UsageError (exit 2) for a bad value of an option the command uses."""
    flags = {name: values.pop(name) for name in list(values) if name in BY_NAME}
    try:
        return Settings.resolve(flags, os.environ, uses)
    except SettingError as exc:
        raise click.UsageError(str(exc)) from None


# Exit statuses of every blueflow command (README "Exit status").
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class Unavailable(click.ClickException):
    """A dependency (Kafka) did not answer: one line, exit status 3."""

    exit_code = EXIT_UNAVAILABLE


def kafka_conf(settings: Settings) -> dict:
    """The confluent-kafka settings of `settings`; UsageError when they cannot work (SASL without password)."""
    from streams.state.follower import kafka_client_config

    try:
        return kafka_client_config(settings)
    except ValueError as exc:
        raise click.UsageError(f"{exc}: set BLUEFLOW_KAFKA_SASL_PASSWORD") from None


def locate_kafka(settings: Settings) -> Settings:
    """`settings` pointing at the embedded Kafka of a worker running on this host with the same --data_dir,
    when no Kafka bootstrap is configured (streams/embedded/locate.py); Unavailable (exit 3) when none runs."""
    from dataclasses import replace

    from streams.embedded import locate

    if not locate.is_embedded(settings.kafka_bootstrap):
        return settings
    conflict = locate.protocol_conflict(settings.kafka_bootstrap, settings.kafka_security_protocol)
    if conflict:
        kafka_conf(settings)  # a missing SASL password is said first
        raise click.UsageError(conflict)
    data_dir = locate.data_dir_of(settings.data_dir)
    bootstrap, why = locate.running_bootstrap(locate.read_runtime(data_dir), data_dir)
    if bootstrap is None:
        raise Unavailable(why)
    return replace(settings, kafka_bootstrap=bootstrap, kafka_security_protocol="PLAINTEXT")


def require_kafka(settings: Settings) -> dict:
    """The Kafka settings, once the cluster answered; Unavailable (exit 3) with one clear line otherwise."""
    from streams.ops.kafka_check import KafkaUnreachable, probe
    from streams.config.kafka_profile import EVENT_STREAMS, resolve_profile

    conf = kafka_conf(settings)
    if resolve_profile(settings.kafka_profile, settings.kafka_bootstrap) == EVENT_STREAMS and \
            conf.get("security.protocol") != "SASL_SSL":
        raise click.UsageError(f"Kafka at {settings.kafka_bootstrap} is IBM Event Streams, which speaks only SASL_SSL: "
                               "set --kafka_security_protocol SASL_SSL (BLUEFLOW_KAFKA_SECURITY_PROTOCOL) and "
                               "BLUEFLOW_KAFKA_SASL_PASSWORD (the API key)")
    try:
        probe(conf)
    except KafkaUnreachable as exc:
        raise Unavailable(str(exc)) from None
    return conf
