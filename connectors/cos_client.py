"""The IBM COS SDK client (ibm_boto3) of connectors/cos.py: made from one SDK session per process with a fast
timestamp parser, authenticated by HMAC keys or an IAM API key, counting its HTTP requests, and able to send a
conditional DeleteObject (If-Match); with a lean GET of object versions beside it (connectors/cos_get.py)."""
from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import ibm_boto3
import ibm_boto3.session
import ibm_botocore.session
from ibm_botocore.client import Config
from ibm_botocore.httpsession import get_cert_path
from ibm_botocore.utils import parse_timestamp as _sdk_parse_timestamp

from connectors.cos_get import ObjectGetter

DEFAULT_TOKEN_URL = "https://iam.cloud.ibm.com/identity/token"


def make_cos_client(endpoint_url: str, *, api_key: str | None = None, service_instance: str | None = None,
                    iam_token_url: str | None = None, hmac_access_key: str | None = None,
                    hmac_secret_key: str | None = None, max_attempts: int = 5, connect_timeout: float = 5.0,
                    read_timeout: float = 60.0, max_pool_connections: int = 32,
                    on_request: Callable[[str], None] | None = None) -> Any:
    """An ibm_boto3 S3 client. HMAC keys win when given; otherwise the IAM API key is used.
    `on_request(operation name)` is called for every HTTP request the client sends (retries included).

    `iam_token_url` is the FULL token URL (`<iam base>/identity/token`); default IBM Cloud's.
    `endpoint_url` may omit the scheme (Kentik's `--service_endpoint` does): https is assumed.
    """
    if "://" not in endpoint_url:
        endpoint_url = "https://" + endpoint_url
    auth = dict(api_key=api_key, service_instance=service_instance, iam_token_url=iam_token_url,
                hmac_access_key=hmac_access_key, hmac_secret_key=hmac_secret_key, connect_timeout=connect_timeout,
                read_timeout=read_timeout, max_pool_connections=max_pool_connections, on_request=on_request)
    client = _client(endpoint_url, max_attempts=max_attempts, **auth)
    # A DeleteObjects must follow its version check (a listing) at once; the SDK's own retries would send it
    # again seconds later and delete a version written meanwhile, unread. Batched deletes therefore go through
    # a twin that never retries: the caller's retry lists again first (connectors/cos_delete.py).
    client.blueflow_delete_client = _client(endpoint_url, max_attempts=1, **auth)
    client.blueflow_get = _getter(client, endpoint_url, hmac_access_key, hmac_secret_key, max_attempts, connect_timeout,
                                  read_timeout, max_pool_connections, on_request)
    return client


def _getter(client: Any, endpoint_url: str, hmac_access_key, hmac_secret_key, max_attempts, connect_timeout,
            read_timeout, max_pool_connections, on_request) -> ObjectGetter:
    """The lean GET (connectors/cos_get.py) authenticated as `client`: SigV4 with the HMAC keys, or the
    client's own IAM bearer token (its credentials fetch and refresh the one token of the client)."""
    hmac_keys = (hmac_access_key, hmac_secret_key) if hmac_access_key and hmac_secret_key else None
    credentials = client._request_signer._credentials  # noqa: SLF001 - the SDK exposes no public accessor

    def token() -> str:  # as the SDK's OAuth2 signer reads it: fetched, cached and refreshed by the token manager
        return credentials.get_frozen_credentials().token

    return ObjectGetter(endpoint_url, hmac_keys=hmac_keys, token=None if hmac_keys else token,
                        region=client.meta.region_name or "us-east-1", max_attempts=max_attempts,
                        connect_timeout=connect_timeout, read_timeout=read_timeout,
                        max_pool_connections=max_pool_connections, ca_certs=get_cert_path(True),
                        on_request=on_request)


def _client(endpoint_url: str, *, api_key, service_instance, iam_token_url, hmac_access_key, hmac_secret_key,
            max_attempts, connect_timeout, read_timeout, max_pool_connections, on_request) -> Any:
    common = dict(connect_timeout=connect_timeout, read_timeout=read_timeout, max_pool_connections=max_pool_connections,
                  retries={"total_max_attempts": max_attempts, "mode": "standard"})
    if hmac_access_key and hmac_secret_key:
        client = _session().client(
            "s3", endpoint_url=endpoint_url, aws_access_key_id=hmac_access_key, aws_secret_access_key=hmac_secret_key,
            config=Config(signature_version="s3v4", **common))
    elif api_key:
        client = _session().client(
            "s3", endpoint_url=endpoint_url, ibm_api_key_id=api_key, ibm_service_instance_id=service_instance,
            ibm_auth_endpoint=iam_token_url or DEFAULT_TOKEN_URL, config=Config(signature_version="oauth", **common))
    else:
        raise ValueError("make_cos_client needs an IAM api_key or both HMAC keys")
    if on_request is not None:
        client.meta.events.register("request-created.s3", lambda operation_name=None, **_: on_request(
            operation_name or "?"))
    return _register_conditional_delete(client)


_SESSION: list = []
_SESSION_LOCK = threading.Lock()


def _session() -> Any:
    """The process's SDK session (clients are made from one session, under a lock: sessions are not
    thread-safe), with a fast timestamp parser: a listing's LastModified values are ISO 8601, which the SDK's
    default (dateutil) parses at ~50 µs each — most of a listing's CPU."""
    with _SESSION_LOCK:
        if not _SESSION:
            core = ibm_botocore.session.get_session()
            core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
            _SESSION.append(ibm_boto3.session.Session(botocore_session=core))
        return _SESSION[0]


def parse_timestamp(value: Any) -> datetime:
    """A timestamp of an S3 answer: ISO 8601 ('2026-12-02T06:00:00.000Z', listings) parsed by the standard
    library; anything else (RFC 1123 headers, epoch numbers) by the SDK's own parser."""
    if isinstance(value, str) and value.endswith("Z") and "T" in value:
        try:
            return datetime.fromisoformat(value[:-1]).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return _sdk_parse_timestamp(value)


_IF_MATCH_PARAM = "BlueflowIfMatch"  # not an S3 parameter: moved into the If-Match header by the hooks below


def _stash_if_match(params: dict, context: dict, **_: Any) -> None:
    value = params.pop(_IF_MATCH_PARAM, None)
    if value:
        context["blueflow_if_match"] = value


def _send_if_match(params: dict, context: dict, **_: Any) -> None:
    value = context.get("blueflow_if_match")
    if value:
        params["headers"]["If-Match"] = value


def _register_conditional_delete(client: Any) -> Any:
    client.meta.events.register("before-parameter-build.s3.DeleteObject", _stash_if_match)
    client.meta.events.register("before-call.s3.DeleteObject", _send_if_match)
    return client
