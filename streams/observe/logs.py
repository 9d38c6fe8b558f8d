"""The worker's logging: one handler on the root logger, so every logger (ours, Faust, aiokafka, urllib3,
botocore, the IBM SDKs, http.client's debug dump) goes through the same two steps:

1. `ScrubFilter` (on the handler): replaces every configured secret value and anything shaped like a
   credential (bearer tokens, Authorization / X-CH-Auth-API-Token / X-Amz-Security-Token headers, SigV4
   signatures, JWTs, token and API-key fields) in the message, the traceback and the stack.
2. A formatter: `text` (one line per record, control characters escaped, traceback lines indented) or
   `json` (one JSON object per line: time, level, logger, worker, stage, key, message).

`Scrubber` is the one scrubber of the process; `Runtime.scrub` (dead-letter reasons, health problems) uses
it too. Stage and object key come from `extra={"stage": ..., "key": ...}`, from `log_context(...)`, or
the stage from the logger name (`blueflow.sink` → sink).
"""
from __future__ import annotations

import contextlib
import contextvars
import http.client
import json
import logging
import re
import socket
import sys
from datetime import datetime, timezone
from typing import Iterable
from urllib.parse import quote

from streams.formats.textsafe import escape, escape_lines

MASK = "***"
FORMATS = ("text", "json")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
HTTP_DUMP_MAX = 2000  # characters of one http.client debug line (request bodies are megabytes of binary)

_HEADERS = r"(?:proxy-)?authorization|x-ch-auth-api-token|x-amz-security-token|x-auth-token|cookie|set-cookie"
_FIELDS = (r"access_token|refresh_token|id_token|apikey|api_key|api-key|password|passwd|client_secret|"
           r"secret_access_key|aws_secret_access_key|x-amz-signature|x-amz-security-token|signature")
_PATTERNS = (
    # `Name: value` up to the end of the line, a repr'd `\r\n`, or a closing quote: the whole header value
    # (a SigV4 Authorization value has spaces and commas), also as a dict entry `'Name': b'value'`.
    re.compile(rf"(?i)(\b(?:{_HEADERS})['\"]?\s*[:=]\s*(?:b?['\"])?)((?:(?!\\r|\\n)[^\r\n'\"])+)"),
    # `field=value`, `"field": "value"` (JSON bodies, forms, query strings)
    re.compile(rf"(?i)(\b(?:{_FIELDS})['\"]?\s*[:=]\s*(?:b?['\"])?)((?:(?!\\r|\\n)[^\s'\"&,;}})\]])+)"),
    re.compile(r"(?i)(\b(?:bearer|basic)\s+)([A-Za-z0-9\-._~+/]+=*)"),
    re.compile(r"()(\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*)"),  # a JWT anywhere
)


class Scrubber:
    """Replaces secret values (and their URL-encoded and repr forms) and credential-shaped text."""

    def __init__(self, secrets: Iterable[str] = ()):
        variants = set()
        for secret in secrets:
            if secret:
                variants.update({secret, quote(secret, safe=""), repr(secret)[1:-1]})
        self.secrets = sorted(variants, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        text = "" if text is None else str(text)
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text


_current = Scrubber()  # replaced by configure(); used by the http.client dump before any handler runs


def scrub(text: str) -> str:
    """`text` through the process's scrubber (the one `configure` installed)."""
    return _current(text)


# ------------------------------------------------------------------------------------ context
_stage: contextvars.ContextVar[str] = contextvars.ContextVar("blueflow_stage", default="")
_key: contextvars.ContextVar[str] = contextvars.ContextVar("blueflow_key", default="")


@contextlib.contextmanager
def log_context(stage: str = "", key: str = ""):
    """Records logged inside carry this stage and object key (JSON fields `stage`, `key`)."""
    tokens = [_stage.set(stage) if stage else None, _key.set(key) if key else None]
    try:
        yield
    finally:
        for var, token in zip((_stage, _key), tokens):
            if token is not None:
                var.reset(token)


def _stage_of(record: logging.LogRecord) -> str:
    stage = getattr(record, "stage", "") or _stage.get()
    if not stage and record.name.startswith("blueflow."):
        stage = record.name.split(".", 1)[1]
    return stage


class ScrubFilter(logging.Filter):
    """On the handler: the record's final message, traceback and stack scrubbed; stage and key attached."""

    def __init__(self, scrubber: Scrubber):
        super().__init__()
        self.scrubber = scrubber

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed call (wrong %-args) is still logged, never lost
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = self.scrubber(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrubber(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrubber(record.stack_info)
        record.stage = _stage_of(record)
        record.key = self.scrubber(getattr(record, "key", "") or _key.get())
        return True


# ------------------------------------------------------------------------------------ formatters
def _iso(created: float) -> str:
    return datetime.fromtimestamp(created, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TextFormatter(logging.Formatter):
    """`[time] [pid] [LEVEL] logger: message` on one line; a traceback follows on indented lines."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        where = f" {escape(record.stage)}" if getattr(record, "stage", "") else ""
        key = getattr(record, "key", "")
        shown = key and (key in message or repr(key) in message)  # the key once per line is enough
        key = f" key={escape(key)}" if key and not shown else ""
        line = (f"[{_iso(record.created)}] [{record.process}] [{record.levelname}] {escape(record.name)}{where}: "
                f"{escape(message)}{key}")
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        extra = "\n".join(t for t in (record.exc_text, record.stack_info) if t)
        if extra:
            line += "".join("\n    " + part for part in escape_lines(extra.rstrip("\n")))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per record (non-ASCII escaped, so no raw control or bidi character is written)."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": _iso(record.created), "level": record.levelname, "logger": record.name,
               "worker": f"{socket.gethostname()}/{record.process}", "stage": getattr(record, "stage", "") or None,
               "key": getattr(record, "key", "") or None, "message": record.getMessage()}
        if record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return json.dumps(doc, default=str)


class JsonTableFilter(logging.Filter):
    """JSON mode: Faust's multi-line ASCII tables (assignments, recovery) are dropped from messages."""

    _TABLE = re.compile(r"^\s*[┌├└│╒╞╘║+|].*$", re.M)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "\n" in message:
            message = self._TABLE.sub("", message).strip()
            record.msg, record.args = message, None
        return bool(message)


# ------------------------------------------------------------------------------------ setup
def _http_client_print(*args) -> None:
    """http.client's debug dump (it calls print()) as a scrubbed, bounded DEBUG record."""
    text = scrub(" ".join(str(a) for a in args))
    if len(text) > HTTP_DUMP_MAX:
        text = text[:HTTP_DUMP_MAX] + f"… ({len(text) - HTTP_DUMP_MAX} more characters)"
    logging.getLogger("http.client").debug(text)


def parse_level(name: str) -> int:
    """debug/info/warning/error (any case) → logging level; anything else is a ValueError."""
    try:
        return LEVELS[(name or "info").strip().lower()]
    except KeyError:
        raise ValueError(f"unknown log level {name!r}: use one of {', '.join(LEVELS)}") from None


def make_handler(fmt: str, secrets: Iterable[str], stream=None) -> logging.Handler:
    """The one handler: scrubbing filter + text or JSON formatter, writing to `stream` (stdout)."""
    global _current
    if fmt not in FORMATS:
        raise ValueError(f"unknown log format {fmt!r}: use text or json")
    _current = Scrubber(secrets)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.addFilter(ScrubFilter(_current))
    if fmt == "json":
        handler.addFilter(JsonTableFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    return handler


def configure(level: str, fmt: str, secrets: Iterable[str], stream=None) -> logging.Handler:
    """Root logger → only our handler, at `level`; http.client's print() routed through it."""
    handler = make_handler(fmt, secrets, stream)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(parse_level(level))
    http.client.print = _http_client_print  # module global: http.client looks `print` up there first
    logging.captureWarnings(True)
    return handler


def faust_logging_config(level: str) -> dict:
    """For Faust/mode's `logging_config`: the root at `level` and no handlers of its own (ours is added)."""
    return {"version": 1, "disable_existing_loggers": False, "root": {"level": parse_level(level), "handlers": []}}
