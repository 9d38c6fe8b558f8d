"""An object whose key carries a forged log line and terminal escape sequences, end to end on the stack.

The key (not gzip, so it is quarantined) holds `\\n[...] [CRITICAL] FAKE-LOG-LINE`, ESC[2J, an OSC window
title with BEL, a carriage return, U+202E and the C1 CSI 0x9b. The worker's log must keep every record on
its own line with the key escaped; `blueflow deadletter list` must print the whole key escaped and number
it, `show --index 1` must find it, and neither command may emit any control character.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from devstack.stack.bucket import delete_object, put_object
from devstack.stack.bucket import hmac_client
from streams.formats.textsafe import escape
from tests.unit.formats.test_textsafe import is_safe
from tests.integration.pipeline_support import prepare, wait_for

pytestmark = pytest.mark.stack

HOSTILE = ("ibm_vpc_flowlogs_v1/evil\n[2026-12-02T00:00:00.000Z] [1] [CRITICAL] blueflow: FAKE-LOG-LINE"
           "\x1b[2J\x1b]0;owned\x07\rX\u202egz.\x9b31m.gz")


@pytest.fixture(scope="module")
def run(stack):
    r = prepare(1, seed=81, mean_flows=10, empty_share=0.0)
    client = hmac_client(r.env)
    put_object(client, r.env["BLUEFLOW_BUCKET"], HOSTILE, b"this is not gzip")
    worker = r.start_worker("w1")
    try:
        done = wait_for(lambda: r.bucket_keys() == {HOSTILE} and r.counts().get("deadlettered", 0) == 1, 90)
        assert done, f"hostile object not quarantined; counts={r.counts()}\n{r.logs()}"
        r.log = worker.log_path.read_text(errors="replace")
        yield r
    finally:
        r.stop_all()
        # a batch delete (the next test's empty_bucket) cannot carry this key in its XML: delete it singly
        delete_object(client, r.env["BLUEFLOW_BUCKET"], HOSTILE)


def cli(run, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streams.ops.cli", "deadletter", *args], env=run.worker_env(),
                          capture_output=True, text=True, timeout=60)


def test_the_worker_log_keeps_the_key_on_its_record_line(run):
    lines = run.log.splitlines()
    assert not any("FAKE-LOG-LINE" in line and not line.startswith("[20") for line in lines)
    assert not any(line.startswith("[2026-12-02T00:00:00.000Z]") for line in lines)
    assert all(is_safe(line) for line in lines)
    assert any(escape(HOSTILE) in line and "[ERROR]" in line for line in lines)


def test_deadletter_list_and_show_print_the_whole_key_escaped_and_nothing_else(run):
    listed = cli(run, "list")
    assert listed.returncode == 0, listed.stderr
    assert all(is_safe(line) for line in listed.stdout.splitlines())
    assert "\n1  " in listed.stdout and listed.stdout.count(escape(HOSTILE)) == 1
    shown = cli(run, "show", "--index", "1")
    assert shown.returncode == 0, shown.stderr + shown.stdout
    assert all(is_safe(line) for line in shown.stdout.splitlines())
    pasted = cli(run, "show", escape(HOSTILE))  # the key as `list` printed it is accepted too
    assert pasted.returncode == 0 and "no dead letter" not in pasted.stdout
