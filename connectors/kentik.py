"""Kentik client: device lookup/creation, export heartbeats and the flow-ingest POST (sync, urllib3).

Used by the app from a thread pool. No retries here: the caller decides (it retries 3xx, 429/5xx and
transport errors, stops on 401/403, splits on 413). Every call goes through connectors.bounded_http: a
redirect is never followed (the token goes to the configured URLs only; a 3xx comes back as a status whose
reason names the Location host), bodies are never decoded, at most a bounded part of an answer is read, and
connect/read/overall deadlines hold (LIMITS). Error messages carry the HTTP status and a human reason and
never the API token.
"""
from __future__ import annotations

import email.utils
import enum
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from connectors.bounded_http import Answer, HttpFailure, Limits, exchange, make_manager

CUSTOM_COLUMNS = tuple(f"STR{k:02d}" for k in range(19))
DEFAULT_API_ROOT = "https://api.kentik.com/api/internal"
DEFAULT_FLOW_URL = "https://flow.kentik.com/chf"
ERROR_TEXT_LIMIT = 64 * 1024       # bytes of an answer read for its error text (flow POST, heartbeat)
API_BODY_LIMIT = 1024 * 1024       # bytes of a device-API answer read (a device JSON is a few KB)
# Kentik's ingest answers in well under a second when healthy. A POST we give up on may still be accepted,
# and re-sending it is a duplicate, so wait long for an answer: 100 s without a byte (past the 60 s idle
# limit of common load balancers, whose 504 is then an answer and not our timeout), 120 s for the whole
# exchange (so a peer trickling bytes cannot hold a POST longer), 5 s to read an error text, 10 s to connect.
LIMITS = Limits(connect_s=10.0, read_s=100.0, deadline_s=120.0, body_s=5.0)


class KentikError(Exception):
    """A Kentik call failed: ``status`` (HTTP status, or None) and ``reason`` (human text, no secrets)."""

    def __init__(self, reason: str, status: int | None = None, *, op: str = ""):
        self.status, self.reason, self.op = status, reason, op
        where = f"kentik {op}: " if op else "kentik: "
        super().__init__(f"{where}{reason}" + (f" (HTTP {status})" if status is not None else ""))


class KentikTransportError(KentikError):
    """No HTTP answer: connection refused/reset/dropped, DNS, TLS or timeout."""


class KentikAuthError(KentikError):
    """401/403: the email/token pair is wrong or lacks rights (a configuration error)."""


@dataclass(frozen=True)
class Device:
    id: int
    name: str
    company_id: str
    custom_ids: dict[str, int] = field(default_factory=dict, hash=False)

    @property
    def sender_id(self) -> str:
        return f"{self.company_id}:{self.name}:{self.id}"

    def custom_field_ids(self, columns=CUSTOM_COLUMNS) -> list[int]:
        """Field ids in STR00..STR18 order (for the kflow encoder); KentikError if one is missing."""
        missing = [c for c in columns if c not in self.custom_ids]
        if missing:
            raise KentikError(f"device {self.name} has no custom column(s) {', '.join(missing)}", op="device")
        return [self.custom_ids[c] for c in columns]

    @classmethod
    def from_json(cls, d: dict) -> "Device":
        try:
            custom = {c["col_name"]: int(c["field_id"]) for c in d.get("custom_column_data") or []}
            return cls(id=int(d["id"]), name=str(d["device_name"]), company_id=str(d["company_id"]),
                       custom_ids=custom)
        except (KeyError, TypeError, ValueError) as exc:
            raise KentikError(f"unexpected device JSON: {type(exc).__name__}: {exc}", op="device") from None


class Verdict(enum.Enum):
    """What one answer to the flow POST means (the pipeline's policy acts on it: streams/stages/retry.py)."""

    ACCEPTED = "accepted"  # 200 only, whatever its body
    RETRY = "retry"  # no answer, 408, 429, 3xx (a redirect is never followed), 5xx: goes away by itself
    CREDENTIALS = "credentials"  # 401/403: the token or user is wrong; an operator must fix it
    TOO_LARGE = "too_large"  # 413: send it in halves
    REFUSED = "refused"  # any other 4xx: refused for good


def classify(status: int) -> Verdict:
    """The verdict of a flow POST's HTTP `status` (0 = no HTTP answer: a transport error or timeout)."""
    if status == 200:
        return Verdict.ACCEPTED
    if status in (401, 403):
        return Verdict.CREDENTIALS
    if status == 413:
        return Verdict.TOO_LARGE
    if status in (0, 408, 429) or 300 <= status < 400 or status >= 500:
        return Verdict.RETRY
    return Verdict.REFUSED


@dataclass(frozen=True)
class PostResult:
    status: int
    retry_after: float | None = None   # seconds, from a Retry-After header (delta or HTTP date)
    reason: str = ""                   # short text from the answer body on errors


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (>= 0): either delta-seconds or an HTTP date; None if absent/invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def answer_reason(status: int, headers, body: bytes) -> str:
    """A short, printable reason for a non-200 answer, from its headers and (raw, capped) body."""
    if 300 <= status < 400:
        host = _location_host(headers.get("Location"))
        return (f"redirect (HTTP {status}) to {host} not followed: blueflow sends the token only to the "
                f"configured Kentik URLs (check --kentik_flow_url / --kentik_api_root)")
    encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        return f"HTTP {status} with a {_printable(encoding)[:20]}-encoded body (not decoded)"
    text = body.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            text = str(doc.get("error") or doc.get("message") or doc.get("errors") or "")
    except ValueError:
        pass
    return _printable(" ".join(text.split()))[:200]


def _location_host(location: str | None) -> str:
    if not location:
        return "(no Location)"
    try:
        host = urlsplit(location.strip()).hostname
    except ValueError:
        host = None
    return _printable(host)[:100] if host else "(a path on the same host)"


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else "?" for c in text)


class KentikClient:
    def __init__(self, api_root: str = DEFAULT_API_ROOT, flow_url: str = DEFAULT_FLOW_URL, email: str = "",
                 token: str = "", limits: Limits = LIMITS, pool_size: int = 16):
        self.api_root = api_root.rstrip("/")
        self.flow_url = flow_url
        self.limits = limits
        self._token = token
        self._flow_http = make_manager(flow_url, pool_size)
        self._api_http = make_manager(self.api_root, 4)
        self._headers = {"X-CH-Auth-Email": email, "X-CH-Auth-API-Token": token, "User-Agent": "blueflow",
                         "Accept-Encoding": "identity"}

    def __repr__(self) -> str:  # never show the token
        return f"KentikClient(api_root={self.api_root!r}, flow_url={self.flow_url!r})"

    def close(self) -> None:
        self._flow_http.clear()
        self._api_http.clear()

    def __enter__(self) -> "KentikClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- plumbing ------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _request(self, op: str, method: str, url: str, *, body: bytes | None = None,
                 headers: dict[str, str] | None = None, body_limit: int = ERROR_TEXT_LIMIT) -> Answer:
        http = self._flow_http if url.startswith(self.flow_url) else self._api_http
        try:
            return exchange(http, method, url, body=body, headers={**self._headers, **(headers or {})},
                            limits=self.limits, body_limit=body_limit)
        except HttpFailure as exc:
            raise KentikTransportError(self._scrub(str(exc)), op=op) from None

    def _api_json(self, op: str, method: str, url: str, doc: dict | None = None) -> Answer:
        body = json.dumps(doc).encode() if doc is not None else None
        return self._request(op, method, url, body=body, body_limit=API_BODY_LIMIT,
                             headers={"Content-Type": "application/json"} if body is not None else None)

    def _reason(self, answer: Answer) -> str:
        return self._scrub(answer_reason(answer.status, answer.headers, answer.body))

    def _fail(self, op: str, answer: Answer) -> KentikError:
        cls = KentikAuthError if answer.status in (401, 403) else KentikError
        return cls(self._reason(answer) or "request failed", answer.status, op=op)

    # --- devices -------------------------------------------------------------------------------
    def get_device(self, name: str) -> Device | None:
        answer = self._api_json("get device", "GET", f"{self.api_root}/device/{quote(name, safe='')}")
        if answer.status == 404:
            return None
        if answer.status != 200:
            raise self._fail(f"get device {name}", answer)
        try:
            if not answer.complete or (answer.headers.get("Content-Encoding") or "identity") != "identity":
                raise ValueError("answer too large or encoded")
            return Device.from_json(json.loads(answer.body)["device"])
        except (ValueError, KeyError, TypeError):
            raise KentikError(f"device {name}: answer is not {{\"device\": ...}}", answer.status,
                              op="get device") from None

    def create_device(self, name: str, plan_id: Any, export_id: Any, region: str, zone: str,
                      description: str = "", *, device_type: str = "host-nprobe-dns-www",
                      device_subtype: str = "ibm_subnet") -> Device:
        """Create device ``name`` in ``plan_id``; tied to the IBM cloud export ``export_id`` (with its region and
        zone) when one is given, else by plan only (Kentik accounts without an IBM export)."""
        device = {
            "device_name": name, "device_type": device_type, "device_subtype": device_subtype,
            "device_description": description or name, "device_sample_rate": "1", "device_bgp_type": "none",
            "plan_id": _maybe_int(plan_id), "sending_ips": []}
        if export_id:
            device.update(cloud_export_id=_maybe_int(export_id), cloud_region=region, cloud_zone=zone)
        answer = self._api_json("create device", "POST", f"{self.api_root}/device/", {"device": device})
        if answer.status not in (200, 201):
            raise self._fail(f"create device {name}", answer)
        dev = self.get_device(name)   # the create answer lacks the custom columns
        if dev is None:
            raise KentikError(f"device {name} not found right after creating it", op="create device")
        return dev

    def resolve_device(self, name: str, plan_id: Any, export_id: Any, region: str, zone: str,
                       description: str = "", **kind: str) -> Device:
        """The device called ``name``; created first (``kind``: device_type, device_subtype) if Kentik does
        not know it."""
        dev = self.get_device(name)
        if dev is not None:
            return dev
        try:
            return self.create_device(name, plan_id, export_id, region, zone, description, **kind)
        except KentikError as exc:
            if exc.status in (400, 409):     # someone else created it meanwhile
                dev = self.get_device(name)
                if dev is not None:
                    return dev
            raise

    # --- heartbeat -----------------------------------------------------------------------------
    def heartbeat(self, export_id: Any, status: str, message: str = "") -> int:
        body = {"export_id": _maybe_int(export_id), "status": status, "message": message}
        answer = self._api_json("heartbeat", "PUT", f"{self.api_root}/cloudExport/status/{export_id}", body)
        if answer.status in (401, 403):
            raise self._fail("heartbeat", answer)
        return answer.status

    # --- flows ---------------------------------------------------------------------------------
    def post_flows_result(self, device: Device, body: bytes) -> PostResult:
        """POST one gzip-framed kflow body for ``device``; no retry. Raises KentikTransportError.

        Any 200 is accepted, whatever its body; a 3xx is not (its reason names the Location host)."""
        query = urlencode({"sid": "0", "sender_id": device.sender_id})
        url = f"{self.flow_url}{'&' if '?' in self.flow_url else '?'}{query}"
        answer = self._request(f"post flows {device.name}", "POST", url, body=body,
                               headers={"Content-Type": "application/binary", "Content-Encoding": "gzip"})
        if answer.status == 200:
            return PostResult(200)
        return PostResult(answer.status, parse_retry_after(answer.headers.get("Retry-After")), self._reason(answer))



def _maybe_int(v: Any) -> Any:
    try:
        return int(v)
    except (TypeError, ValueError):
        return v
