"""One value of the option table checked: `convert` (a flag's or variable's text to its typed value, the same way
whatever its source) and its SettingError; the VPC regions a COS endpoint implies (`regions_for`). Below
settings.py, config_file.py and sources.py, which all use them.
"""
from __future__ import annotations

import re

from streams.config.option_table import Option

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingError(ValueError):
    """A value that cannot be used, with where it came from (the flag, the env var, the configuration file)."""

    def __init__(self, option: Option, source: str, raw: str, reason: str):
        self.option, self.source, self.raw, self.reason = option, source, raw, reason
        where = {"flag": f"--{option.name}", "env": option.env}.get(source, option.name)
        shown = "(secret)" if option.secret else repr(raw)
        super().__init__(f"invalid value {shown} for {where}: {reason}")


def convert(option: Option, raw: str):
    """The typed value of `raw` for `option`; ValueError(reason in operator words) when it is not one."""
    text = raw.strip()
    if option.kind == "bool":
        if text.lower() in _TRUE | _FALSE:
            return text.lower() in _TRUE
        raise ValueError("expected true or false")
    if option.kind == "choice":
        text = dict(option.aliases).get(text.lower(), text)
        for choice in option.choices:
            if text.lower() == choice.lower():
                return choice
        raise ValueError("expected one of " + ", ".join(option.choices))
    if option.kind not in ("int", "float"):
        return raw
    try:
        value = int(text) if option.kind == "int" else float(text)
    except ValueError:
        raise ValueError("expected a whole number" if option.kind == "int" else "expected a number of seconds "
                         "(e.g. 30 or 2.5, no unit)") from None
    if option.minimum is not None and value < option.minimum:
        raise ValueError(f"must be at least {option.minimum:g}")
    if option.maximum is not None and value > option.maximum:
        raise ValueError(f"must be at most {option.maximum:g}")
    return value


_ENDPOINT_REGION = re.compile(r"^s3\.(?:(?:direct|private)\.)?([a-z]{2}-[a-z]+)\.cloud-object-storage\.", re.I)
METADATA_OFF = "none"


def endpoint_region(endpoint: str) -> str | None:
    """The VPC region a regional COS endpoint names (s3.direct.us-east.cloud-object-storage… → us-east); None
    for cross-region and single-site endpoints and for anything else."""
    host = endpoint.strip().split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    found = _ENDPOINT_REGION.match(host)
    return found.group(1).lower() if found else None


def regions_for(regions: str, endpoint: str) -> list[str]:
    """`regions` as a list: empty → the endpoint's region (if it names one); `none` → [] (metadata off)."""
    if regions.strip().lower() == METADATA_OFF:
        return []
    listed = [r.strip() for r in regions.split(",") if r.strip()]
    if listed:
        return listed
    derived = endpoint_region(endpoint)
    return [derived] if derived else []
