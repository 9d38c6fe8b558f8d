"""Local stand-in for the IBM Cloud IAM token service (`POST /identity/token`).

Issues HS256-signed three-part JWTs (claims iat, exp, iam_id, sub, account, ...) for the API keys
given with `--api-key` (repeatable; default `blueflow-dev-key`; `KEY=ACCOUNT` puts that account in the key's
tokens instead of the default one: several accounts), with a secret that lives only in
this process. Unknown keys get IAM's `400 BXNIM0415E`. `grant_type=refresh_token` is not supported
(tokens carry `"refresh_token": "not_supported"`). `GET /_emulator/verify?token=T` (or a Bearer
header) answers 200 for a token this process issued that has not expired, else 401 — the VPC
stand-in and the COS auth proxy use it. Fault injection: see devstack.standins.common.

    python -m devstack.standins.iam --host 127.0.0.1 --port 19082 [--api-key K ...] [--ttl 3600]
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid

from aiohttp import web

from devstack.standins.common import base_parser, make_base_app, run_main

__all__ = ["make_app", "main", "DEFAULT_API_KEY", "decode_jwt_unverified"]

DEFAULT_API_KEY = "blueflow-dev-key"
APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"
STATE = web.AppKey("iam_state", dict)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_jwt_unverified(token: str) -> dict | None:
    """The payload of a three-part JWT without checking the signature; None if malformed."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(_unb64(parts[1]))
        header = json.loads(_unb64(parts[0]))
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(payload, dict) or not isinstance(header, dict):
        return None
    return payload


def _sign(secret: bytes, claims: dict) -> str:
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "blueflow-standin"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(sig)}"


def _verify(secret: bytes, token: str, now: float) -> dict | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    expected = _b64(hmac.new(secret, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, parts[2]):
        return None
    claims = decode_jwt_unverified(token)
    if claims is None or not isinstance(claims.get("exp"), (int, float)) or claims["exp"] <= now:
        return None
    return claims


def _iam_error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"errorCode": code, "errorMessage": message, "context": {
        "requestId": uuid.uuid4().hex, "requestType": "incoming.OIDC_Token", "startTime": time.strftime(
            "%d.%m.%Y %H:%M:%S:000 UTC", time.gmtime())}}, status=status)


def _identity_for_key(key: str, account: str) -> dict:
    digest = hashlib.sha256(key.encode()).digest()
    service_id = f"ServiceId-{uuid.UUID(bytes=digest[:16], version=4)}"
    return {"iam_id": f"iam-{service_id}", "sub": service_id, "account": account}


async def _token(request: web.Request) -> web.Response:
    st = request.app[STATE]
    auth = request.headers.get("Authorization", "")
    if auth:
        if not auth.startswith("Basic "):
            return _iam_error(400, "BXNIM0400E", "Authorization header is not a Basic client credential.")
        try:
            user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return _iam_error(400, "BXNIM0400E", "Malformed Basic authorization header.")
        if (user, pw) != ("bx", "bx"):
            return _iam_error(401, "BXNIM0309E", "Client credentials are not valid.")
    form = await request.post()
    grant = form.get("grant_type", "")
    if grant == "refresh_token":
        return _iam_error(400, "BXNIM0407E", "Provided refresh token is not supported by this stand-in.")
    if grant != APIKEY_GRANT:
        return _iam_error(400, "BXNIM0412E", f"Grant type '{grant}' is not supported.")
    key = form.get("apikey", "")
    if not key:
        return _iam_error(400, "BXNIM0109E", "Property missing or empty. Location: body, Property: apikey")
    if key not in st["keys"]:
        return _iam_error(400, "BXNIM0415E", "Provided API key could not be found.")
    now = int(time.time())
    ident = _identity_for_key(key, st["accounts"].get(key) or st["account"])
    claims = {
        "iam_id": ident["iam_id"], "id": ident["iam_id"], "realmid": "iam", "jti": uuid.uuid4().hex,
        "identifier": ident["sub"], "sub": ident["sub"], "sub_type": "ServiceId",
        "account": {"valid": True, "bss": ident["account"], "frozen": True},
        "iat": now, "exp": now + st["ttl"], "iss": "https://iam.cloud.ibm.com/identity",
        "grant_type": APIKEY_GRANT, "scope": "ibm openid", "client_id": "default", "acr": 1, "amr": ["pwd"],
    }
    st["issued"] += 1
    return web.json_response({
        "access_token": _sign(st["secret"], claims), "refresh_token": "not_supported", "token_type": "Bearer",
        "expires_in": st["ttl"], "expiration": now + st["ttl"], "scope": "ibm openid",
        "ims_user_id": 0,
    })


async def _verify_handler(request: web.Request) -> web.Response:
    st = request.app[STATE]
    token = request.query.get("token", "")
    if not token:
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
    claims = _verify(st["secret"], token, time.time()) if token else None
    if claims is None:
        return web.json_response({"active": False}, status=401)
    return web.json_response({"active": True, "sub": claims.get("sub"), "iam_id": claims.get("iam_id"),
                              "account": claims.get("account", {}).get("bss"), "exp": claims.get("exp")})


def make_app(*, api_keys=(DEFAULT_API_KEY,), ttl: int = 3600, account: str | None = None,
             secret: bytes | None = None) -> web.Application:
    """The IAM stand-in app. `account` defaults to the devstack world's account (seed 1)."""
    if account is None:
        from devstack.synth.worldgen import build_world
        account = build_world(1).account
    app = make_base_app()
    specs = [k.partition("=") for k in (api_keys or (DEFAULT_API_KEY,))]
    app[STATE] = {"keys": frozenset(k for k, _, _ in specs), "accounts": {k: a for k, _, a in specs if a},
                  "ttl": int(ttl), "account": account,
                  "secret": secret or os.urandom(32), "issued": 0}
    app.router.add_post("/identity/token", _token)
    app.router.add_get("/_emulator/verify", _verify_handler)
    return app


def main(argv: list[str] | None = None) -> None:
    p = base_parser("IBM Cloud IAM token service stand-in")
    p.add_argument("--api-key", action="append", dest="api_keys",
                   help="accepted API key, or KEY=ACCOUNT for another account's key (repeatable)")
    p.add_argument("--ttl", type=int, default=3600, help="token lifetime in seconds (default 3600)")
    p.add_argument("--account", default=None, help="account id put in tokens (default: the world's)")
    run_main(p, lambda a: make_app(api_keys=a.api_keys or (DEFAULT_API_KEY,), ttl=a.ttl, account=a.account), argv)


if __name__ == "__main__":
    main()
