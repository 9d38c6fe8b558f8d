"""Kentik client: device lookup/creation, export heartbeats and the flow-ingest POST (sync, requests).

Used by the app from a thread pool. No retries here: the caller decides (it retries 429/5xx and
transport errors, stops on 401/403, splits on 413). Error messages carry the HTTP status and a human
reason and never the API token.
"""
from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

CUSTOM_COLUMNS = tuple(f"STR{k:02d}" for k in range(19))
DEFAULT_API_ROOT = "https://api.kentik.com/api/internal"
DEFAULT_FLOW_URL = "https://flow.kentik.com/chf"


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


class KentikClient:
    def __init__(self, api_root: str = DEFAULT_API_ROOT, flow_url: str = DEFAULT_FLOW_URL, email: str = "",
                 token: str = "", timeout: float | tuple[float, float] = (5.0, 30.0), pool_size: int = 16):
        self.api_root = api_root.rstrip("/")
        self.flow_url = flow_url
        self.timeout = timeout
        self._token = token
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers.update({"X-CH-Auth-Email": email, "X-CH-Auth-API-Token": token})

    def __repr__(self) -> str:  # never show the token
        return f"KentikClient(api_root={self.api_root!r}, flow_url={self.flow_url!r})"

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> "KentikClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- plumbing ------------------------------------------------------------------------------
    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    def _request(self, op: str, method: str, url: str, **kw) -> requests.Response:
        try:
            return self._session.request(method, url, timeout=self.timeout, **kw)
        except requests.Timeout as exc:
            raise KentikTransportError(self._scrub(f"timeout after {self.timeout}s: {type(exc).__name__}"),
                                       op=op) from None
        except requests.RequestException as exc:
            raise KentikTransportError(self._scrub(f"transport error: {type(exc).__name__}: {exc}"),
                                       op=op) from None

    def _reason(self, resp: requests.Response) -> str:
        text = ""
        try:
            body = resp.json()
            if isinstance(body, dict):
                text = str(body.get("error") or body.get("message") or body.get("errors") or "")
        except ValueError:
            text = resp.text or ""
        text = " ".join(text.split())[:200]
        return self._scrub(text or resp.reason or "")

    def _fail(self, op: str, resp: requests.Response) -> KentikError:
        cls = KentikAuthError if resp.status_code in (401, 403) else KentikError
        return cls(self._reason(resp) or "request failed", resp.status_code, op=op)

    # --- devices -------------------------------------------------------------------------------
    def get_device(self, name: str) -> Device | None:
        resp = self._request("get device", "GET", f"{self.api_root}/device/{quote(name, safe='')}")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail(f"get device {name}", resp)
        try:
            return Device.from_json(resp.json()["device"])
        except (ValueError, KeyError, TypeError):
            raise KentikError(f"device {name}: answer is not {{\"device\": ...}}", resp.status_code,
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
        resp = self._request("create device", "POST", f"{self.api_root}/device/", json={"device": device})
        if resp.status_code not in (200, 201):
            raise self._fail(f"create device {name}", resp)
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
        resp = self._request("heartbeat", "PUT", f"{self.api_root}/cloudExport/status/{export_id}", json=body)
        if resp.status_code in (401, 403):
            raise self._fail("heartbeat", resp)
        return resp.status_code

    # --- flows ---------------------------------------------------------------------------------
    def post_flows_result(self, device: Device, body: bytes) -> PostResult:
        """POST one gzip-framed kflow body for ``device``; no retry. Raises KentikTransportError."""
        resp = self._request(
            f"post flows {device.name}", "POST", self.flow_url,
            params={"sid": "0", "sender_id": device.sender_id}, data=body,
            headers={"Content-Type": "application/binary", "Content-Encoding": "gzip"})
        try:
            if resp.status_code == 200:
                return PostResult(200)
            return PostResult(resp.status_code, parse_retry_after(resp.headers.get("Retry-After")),
                              self._reason(resp))
        finally:
            resp.close()

    def post_flows(self, device: Device, body: bytes) -> int:
        """HTTP status of the flow POST (200 = accepted). Raises KentikTransportError."""
        return self.post_flows_result(device, body).status


def _maybe_int(v: Any) -> Any:
    try:
        return int(v)
    except (TypeError, ValueError):
        return v
