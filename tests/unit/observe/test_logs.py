"""Worker logging (streams/observe/logs.py): no secret at any level, one line per record, text or JSON."""
from __future__ import annotations

import http.client
import http.server
import io
import json
import logging
import threading

import pytest
import requests

from streams.observe import logs
from streams.observe.logs import Scrubber, log_context

TOKEN = "BFSECRET-kentik-2b8e6d4a0c"
APIKEY = "BFSECRET-iam-7f3a9c1e5d"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJibHVlZmxvdyJ9.c2lnbmF0dXJlLW9mLXRoZS1pYW0tdG9rZW4"
SIGV4 = ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-south/s3/aws4_request, "
         "SignedHeaders=host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7")


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, http.client.__dict__.get("print"), http.client.HTTPConnection.debuglevel)
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    if saved[2] is None:
        http.client.__dict__.pop("print", None)
    else:
        http.client.print = saved[2]
    http.client.HTTPConnection.debuglevel = saved[3]
    logging.captureWarnings(False)


@pytest.mark.parametrize("text", [
    f"send: b'PUT /api/internal/export HTTP/1.1\\r\\nX-CH-Auth-API-Token: {TOKEN}\\r\\nX-CH-Auth-Email: a@b'",
    f"header: Authorization: Bearer {JWT}",
    f"{{'Authorization': b'{SIGV4}', 'X-Amz-Date': b'20261202T000000Z'}}",
    f"Authorization: {SIGV4}\r\nHost: s3",
    "X-Amz-Security-Token: FQoGZXIvYXdzEJr//////////wEaDGV4YW1wbGU=",
    f'{{"access_token": "{JWT}", "refresh_token": "r3fr3sh-t0ken", "token_type": "Bearer"}}',
    f"grant_type=urn%3Aibm%3Aparams%3Aoauth%3Agrant-type%3Aapikey&apikey={APIKEY}",
    f"https://s3.example/b/k?X-Amz-Signature=5d672d79c15b13&X-Amz-Expires=60 and id {JWT}",
    "token in a form: apikey=" + "BFSECRET%2Fiam",
])
def test_scrubber_masks_secret_values_and_credential_shaped_text(text):
    scrubbed = Scrubber([TOKEN, APIKEY, "BFSECRET/iam"])(text)
    for secret in (TOKEN, APIKEY, JWT, "5d672d79c15b13", "r3fr3sh-t0ken", "FQoGZXIvYXdzEJr", "BFSECRET%2Fiam"):
        assert secret not in scrubbed
    assert "***" in scrubbed


def test_scrubber_masks_a_signature_whole_even_when_it_starts_like_a_bytes_prefix():
    assert Scrubber([])("Signature:\nb5d672d79c15b13162d9279b0855cfba") == "Signature:\n***"
    assert Scrubber([])("{'Authorization': b'Bearer x.y.z'}") == "{'Authorization': b'***'}"


def test_fault_suite_credential_scan_sees_what_the_scrubber_masks():
    from devstack.faults.secrets import credential_hits

    from streams.formats.textsafe import escape

    record = f"Signature:\nb5d672d79c15b13162d9 X-CH-Auth-API-Token: {TOKEN} Authorization: Bearer {JWT}"
    assert set(credential_hits(escape(record))) == {"sigv4", "kentik_header", "bearer", "jwt"}  # as logged raw
    assert credential_hits(escape(Scrubber([])(record))) == {}


def test_scrubber_leaves_ordinary_text_alone():
    text = "progress (last 30s): 12 objects parsed, 3400 flows; authorization failed for device ibm_0717"
    assert Scrubber([TOKEN])(text) == text


class _Echo(http.server.BaseHTTPRequestHandler):
    def do_PUT(self):  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Set-Cookie", f"session={TOKEN}")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize("via_ibm_sdk", [False, True])
def test_http_client_debug_dump_at_debug_level_leaves_no_secret(restore_logging, local_server, capfd, via_ibm_sdk):
    """The export heartbeat PUT with http.client's dump on (as ibm_cloud_sdk_core turns it on at DEBUG)."""
    out = io.StringIO()
    logs.configure("debug", "text", [TOKEN, APIKEY], stream=out)
    http.client.HTTPConnection.debuglevel = 1
    if via_ibm_sdk:  # the SDK replaces http.client's print with its own logger: still our handler
        from ibm_cloud_sdk_core import BaseService
        from ibm_cloud_sdk_core.authenticators import NoAuthAuthenticator

        BaseService(service_url=local_server, authenticator=NoAuthAuthenticator())
    headers = {"X-CH-Auth-API-Token": TOKEN, "X-CH-Auth-Email": "ops@example.com", "Authorization": f"Bearer {JWT}"}
    assert requests.put(local_server + "/api/internal/export", data=b'{"status": "OK"}', headers=headers).ok
    printed = capfd.readouterr()
    logged = out.getvalue()
    assert "send:" in logged and "X-CH-Auth-API-Token: ***" in logged  # the dump is there, scrubbed
    for secret in (TOKEN, JWT):
        assert secret not in logged and secret not in printed.out and secret not in printed.err


def test_a_key_with_a_newline_cannot_forge_a_log_line(restore_logging):
    out = io.StringIO()
    logs.configure("info", "text", [], stream=out)
    logging.getLogger("blueflow").error("quarantined object %s: %s", "k\n[2026-12-02] [CRITICAL] FAKE-LOG-LINE",
                                        "bad \x1b]0;owned\x07 gzip")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert "\\n[2026-12-02] [CRITICAL] FAKE-LOG-LINE" in lines[0] and "\\x1b]0;owned\\x07" in lines[0]


def test_a_traceback_stays_indented_under_its_line_and_is_scrubbed(restore_logging):
    out = io.StringIO()
    logs.configure("info", "text", [TOKEN], stream=out)
    try:
        raise RuntimeError(f"kentik said no to {TOKEN}\n[CRITICAL] forged")
    except RuntimeError:
        logging.getLogger("blueflow.sink").exception("sink: failure on %r", "k")
    lines = out.getvalue().splitlines()
    assert "[ERROR] blueflow.sink sink: sink: failure on 'k'" in lines[0]
    assert all(line.startswith("    ") for line in lines[1:]) and len(lines) > 2
    assert TOKEN not in out.getvalue()


def test_json_lines_carry_worker_stage_key_and_drop_faust_tables(restore_logging):
    out = io.StringIO()
    logs.configure("info", "json", [TOKEN], stream=out)
    with log_context(stage="parse", key="logs/a\nb.json.gz"):
        logging.getLogger("blueflow").warning("parse: object %r failed: token %s", "logs/a\nb.json.gz", TOKEN)
    logging.getLogger("faust.transport.consumer").info("Fetcher assigned:\n+T--+---+\n| x | y |\n+---+---+")
    logging.getLogger("blueflow.sink").info("delivered")
    docs = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(docs) == 3
    first = docs[0]
    assert set(first) >= {"time", "level", "logger", "worker", "stage", "key", "message"}
    assert (first["level"], first["logger"], first["stage"], first["key"]) == ("WARNING", "blueflow", "parse",
                                                                                "logs/a\nb.json.gz")
    assert first["message"].endswith("token ***") and first["worker"].endswith(f"/{first['worker'].split('/')[1]}")
    assert docs[1]["message"] == "Fetcher assigned:"
    assert docs[2]["stage"] == "sink" and docs[2]["key"] is None


def test_json_lines_carry_a_typed_failure_cause(restore_logging):
    out = io.StringIO()
    logs.configure("info", "json", [TOKEN], stream=out)
    logging.getLogger("blueflow.sink").error("sink: Kentik rejected the credentials",
                                             extra={"dependency": "kentik", "cause": "credentials"})
    logging.getLogger("blueflow.sink").info("delivered")
    first, second = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (first["dependency"], first["cause"]) == ("kentik", "credentials") and "dependency" not in second


def test_unknown_level_or_format_is_refused():
    with pytest.raises(ValueError, match="verbose"):
        logs.parse_level("verbose")
    with pytest.raises(ValueError, match="yaml"):
        logs.make_handler("yaml", [])
