"""Fault scenarios `secrets` and `secrets_debug` (workers at --log_level=debug): no secret in a worker's log,
its /metrics or any message of the run's topics.

The stand-ins are restarted with secret values of their own (`arm`), the workers use them (IAM path, and one
worker on the HMAC path, so the HMAC secret is in play too) and Kentik answers 500 a few times (errors are
logged). After the drain the configured secret values are counted everywhere (`scan_for_secrets`), and
credentials nobody configured (IAM bearer tokens, SigV4 signatures) are found in the logs by their shape.
`run` is a FaultRun (run.py).
"""
from __future__ import annotations

import re

import requests

from devstack import stack
from devstack.faults.run import FaultRun, inject, read_topic
from devstack.stack.env import HMAC_SECRET_KEY

SCENARIOS = ("secrets", "secrets_debug")

SECRET_IAM = "BFSECRET-iam-7f3a9c1e5d"
SECRET_KENTIK = "BFSECRET-kentik-2b8e6d4a0c"

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


def secret_values() -> list[str]:
    return [SECRET_IAM, SECRET_KENTIK, HMAC_SECRET_KEY]


def scan_for_secrets(run: FaultRun, metrics_texts: list[str]) -> dict:
    """Occurrences of each secret in worker logs, /metrics texts and every message of every run topic."""
    from confluent_kafka.admin import AdminClient

    hits: dict[str, int] = {}
    secrets = [s.encode() for s in secret_values()]
    def count(where: str, data: bytes) -> None:
        for s in secrets:
            n = data.count(s)
            if n:
                hits[where] = hits.get(where, 0) + n
    lines = 0
    for w in run.all_workers():
        try:
            data = w.log_path.read_bytes()
        except OSError:
            continue
        lines += data.count(b"\n")
        count(f"log:{w.name}", data)
    for i, text in enumerate(metrics_texts):
        count(f"metrics:{i}", text.encode())
    admin = AdminClient({"bootstrap.servers": run.env["BLUEFLOW_KAFKA_BOOTSTRAP"]})
    topics = sorted(t for t in admin.list_topics(timeout=10).topics if t.startswith(run.run_id))
    messages = 0
    for topic in topics:
        for key, value, _ in read_topic(run.env, topic, 30):
            messages += 1
            count(f"topic:{topic}", (key or b"") + (value or b""))
    return {"secret_hits": hits, "log_lines": lines, "metrics_pages": len(metrics_texts), "topics": len(topics),
            "messages": messages}


def _replace_arg(cmd: list[str], flag: str, value: str, *, append: bool = False) -> list[str]:
    out = list(cmd)
    if append or flag not in out:
        return out + [flag, value]
    out[out.index(flag) + 1] = value
    return out


def arm(name: str) -> tuple[dict[str, str], list[tuple[str, list[str]]]]:
    """Restart the IAM and Kentik stand-ins with the secret values; the workers' settings that use them, and
    the stand-ins' original command lines (to restore after the scenario)."""
    restore = []
    for component, flag, value, append in (("iam", "--api-key", SECRET_IAM, True),
                                           ("kentik", "--token", SECRET_KENTIK, False)):
        original = stack.component_cmd(component)
        restore.append((component, original))
        stack.stop_component(component)
        stack.start_component(component, cmd=_replace_arg(original, flag, value, append=append))
    overrides = dict(IBM_COS_API_KEY=SECRET_IAM, IBM_VPC_API_KEY=SECRET_IAM, KENTIK_API_TOKEN=SECRET_KENTIK)
    return {**overrides, **debug_secrets_overrides(name)}, restore


def start_hmac_worker(run: FaultRun) -> None:
    """A third worker on the HMAC path (the HMAC secret in play), and Kentik errors to log."""
    env = run.env
    run.start("w3", BLUEFLOW_COS_ENDPOINT=env["BLUEFLOW_COS_ENDPOINT"],
              BLUEFLOW_COS_HMAC_ACCESS_KEY=env["BLUEFLOW_COS_HMAC_ACCESS_KEY"],
              BLUEFLOW_COS_HMAC_SECRET_KEY=env["BLUEFLOW_COS_HMAC_SECRET_KEY"])
    inject(env["BLUEFLOW_KENTIK_EMULATOR"], {"status": 500, "count": 3, "path_prefix": "/chf"})


def metrics_pages(run: FaultRun) -> list[str]:
    """Every live worker's /metrics text (read before the workers stop)."""
    texts = []
    for w in run.live():
        try:
            texts.append(requests.get(f"http://127.0.0.1:{w.port}/metrics", timeout=10).text)
        except requests.RequestException:
            pass
    return texts


def check(run: FaultRun, name: str, metrics_texts: list[str]) -> None:
    """The scenario's findings in its notes; a secret or credential found anywhere is a problem."""
    run.notes.update(scan_for_secrets(run, metrics_texts))
    if run.notes["secret_hits"]:
        run.notes.setdefault("problems", []).append(f"secrets leaked: {run.notes['secret_hits']}")
    check_debug_scan(run, name)
