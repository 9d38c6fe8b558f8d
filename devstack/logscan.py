"""The fault suite's look for credentials in worker logs, at info and at debug level (`secrets_debug`).

The `secrets` scenario counts the configured secret values; credentials nobody configured (IAM bearer tokens,
SigV4 signatures) are found here by their shape. `run` is a devstack.faults.FaultRun.
"""
from __future__ import annotations

import re

# Credentials whose values nobody configured (IAM bearer tokens are JWTs; SigV4 signatures are hex): their
# shape is what gives them away in a log.
CREDENTIAL_SHAPES = {
    "jwt": re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    "bearer": re.compile(r"(?i)bearer\s+(?!\*\*\*)[A-Za-z0-9\-._~+/]{8,}"),
    "sigv4": re.compile(r"Signature(?:=|:(?:\\n|\s)*)(?!\*\*\*)b?[0-9a-f]{16,}"),
    "kentik_header": re.compile(r"(?i)x-ch-auth-api-token['\"]?\s*[:=]\s*(?:b?['\"])?(?!\*\*\*)[^\s'\"\\]{4,}"),
}


def credential_hits(text: str) -> dict[str, int]:
    """How often each credential shape occurs in `text` (a worker log): {} when none."""
    hits = {name: len(pattern.findall(text)) for name, pattern in CREDENTIAL_SHAPES.items()}
    return {name: n for name, n in hits.items() if n}


def scan_logs_for_credentials(run) -> dict:
    """Credential-shaped text in the worker logs, and how many HTTP exchanges the logs dumped (debug level
    dumps them all: a scan of a log without them proves nothing about the dump)."""
    hits: dict[str, int] = {}
    dumped = 0
    for w in run.all_workers():
        try:
            text = w.log_path.read_text(errors="replace")
        except OSError:
            continue
        dumped += text.count("send: ")
        for name, n in credential_hits(text).items():
            hits[f"log:{w.name}:{name}"] = n
    return {"credential_hits": hits, "http_exchanges_dumped": dumped}


def debug_secrets_overrides(name: str) -> dict[str, str]:
    """The `secrets_debug` scenario is `secrets` with every worker at --log_level=debug."""
    return {"BLUEFLOW_LOG_LEVEL": "debug"} if name == "secrets_debug" else {}


def check_debug_scan(run, name: str) -> None:
    """Add the credential scan to the notes; at debug level the HTTP dump must have been seen."""
    run.notes.update(scan_logs_for_credentials(run))
    if run.notes["credential_hits"]:
        run.notes.setdefault("problems", []).append(f"credentials in logs: {run.notes['credential_hits']}")
    if name == "secrets_debug" and not run.notes["http_exchanges_dumped"]:
        run.notes.setdefault("problems", []).append("debug level: no HTTP exchange dumped, the scan proves nothing")
