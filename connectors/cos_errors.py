"""The errors of the COS calls (connectors/cos.py, the lean GET of connectors/cos_get.py): `CosError` with the
operation, bucket, key, S3 error code and a human reason, and whether retrying can help; `_error` turns the
SDK's exceptions into one. API keys and HMAC secrets never appear in them."""
from __future__ import annotations

import re

from ibm_botocore.exceptions import BotoCoreError, ClientError

_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


class CosError(Exception):
    """A COS call failed. `transient` tells retryable failures (throttling, 5xx, network) from others."""

    def __init__(self, op: str, bucket: str, key: str | None, code: str, reason: str, transient: bool) -> None:
        self.op, self.bucket, self.key, self.code, self.reason, self.transient = op, bucket, key, code, reason, transient
        where = f"{bucket}/{key}" if key else bucket
        super().__init__(f"COS {op} {where}: {code}: {reason}")


_TRANSIENT_CODES = frozenset({
    "SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "RequestTimeTooSkewed",
    "500", "502", "503", "504", "Throttling", "ThrottlingException",
})


def _error(op: str, bucket: str, key: str | None, exc: Exception) -> CosError:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {}) or {}
        code = str(err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or "Unknown")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        reason = str(err.get("Message") or f"HTTP {status}")
        transient = code in _TRANSIENT_CODES or (isinstance(status, int) and status >= 500)
        return CosError(op, bucket, key, code, reason, transient)
    if isinstance(exc, BotoCoreError):
        # connection problems, timeouts, IAM token failures (the message names the endpoint, never the key)
        name = type(exc).__name__
        return CosError(op, bucket, key, name, str(exc), transient=not _credentials_refused(name, str(exc)))
    return CosError(op, bucket, key, type(exc).__name__, str(exc) or type(exc).__name__, transient=True)


_IAM_STATUS = re.compile(r"HttpCode\((\d{3})\)")


def _credentials_refused(name: str, message: str) -> bool:
    """An IAM token or credentials failure that retrying cannot fix: IAM answered 4xx (a wrong or revoked
    key), or there are no credentials at all. IAM answering 5xx or 429, or not reachable, is transient like
    any outage — the fault suite's IAM 500s once turned a worker unhealthy as if its key were wrong."""
    if not ("Token" in name or "Credential" in name or "token" in message.lower()):
        return False
    status = _IAM_STATUS.search(message)
    if status:
        code = int(status.group(1))
        return 400 <= code < 500 and code != 429
    return name in ("NoCredentialsError", "PartialCredentialsError", "NoAuthTokenError")


def _is_missing(exc: Exception) -> bool:
    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in _MISSING_CODES or status == 404
