"""`blueflow-dev status` (`blueflow status` with the local stack's settings) live in a real terminal (tmux,
80×50): one frame redrawn in place.

Two workers of a run drain a small bucket (one bad object stays quarantined). The view, started without
any worker URL or app id, must find both workers from the devstack records and show that run; after
several refreshes the screen holds exactly one header (no stale frames piling up) whose time moves on; a
worker stopped meanwhile is shown down with its whole error and the frame still fits the 80 columns and every
section the screen; Ctrl-C ends it. The first capture is compared
with the recorded one in captures/status_live.txt (same sections, in the same order).
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.pipeline_support import prepare, wait_for

pytestmark = [pytest.mark.stack,
              pytest.mark.skipif(subprocess.run(["which", "tmux"], capture_output=True).returncode != 0,
                                 reason="tmux is not installed")]

RECORDED = Path(__file__).parent / "captures" / "status_live.txt"
SECTIONS = ("workers", "pipeline", "objects waiting", "newest dead letters")


@pytest.fixture(scope="module")
def run(stack):
    r = prepare(3, bad=1, bad_kinds=["json_array"], seed=71, mean_flows=30, empty_share=0.0)
    r.urls = [f"http://127.0.0.1:{r.start_worker(name).port}" for name in ("w1", "w2")]
    try:
        done = wait_for(lambda: r.bucket_keys() == r.bad_keys and r.counts().get("deadlettered", 0) == 1,
                        timeout_s=120)
        assert done, f"run did not drain; counts={r.counts()}\n{r.logs()}"
        yield r
    finally:
        r.stop_all()


class Tmux:
    def __init__(self, name: str):
        self.socket = ["tmux", "-L", name]
        self.name = name

    def __call__(self, *args: str) -> str:
        return subprocess.run([*self.socket, *args], capture_output=True, text=True, timeout=20).stdout

    def capture(self) -> str:
        return self("capture-pane", "-p", "-t", self.name)

    def alive(self) -> bool:
        return subprocess.run([*self.socket, "has-session", "-t", self.name], capture_output=True).returncode == 0


def sections(screen: str) -> list[str]:
    return [s for s in SECTIONS if s in screen]


def headers(screen: str) -> list[str]:
    return re.findall(r"^blueflow status · app \S+ · (\S+) · ", screen, re.M)


def test_live_view_in_tmux_redraws_in_place_finds_local_workers_and_quits(run):
    env = {k: v for k, v in os.environ.items() if k not in ("BLUEFLOW_APP_ID", "BLUEFLOW_TOPIC_PREFIX", "TMUX")}
    devstack = {k: v for k, v in env.items() if k.startswith("BLUEFLOW_DEVSTACK")}
    command = " ".join(["env", *(f"{k}={shlex.quote(v)}" for k, v in devstack.items()), shlex.quote(sys.executable),
                        "-m", "devstack.cli", "status", "--interval", "1"])
    tmux = Tmux(f"bfstatus-{run.run_id}")
    subprocess.run([*tmux.socket, "new-session", "-d", "-s", tmux.name, "-x", "80", "-y", "50", command],
                   env=env, cwd=str(Path(__file__).parents[3]), check=True, timeout=20)
    try:
        assert wait_for(lambda: headers(tmux.capture()) and "leader" in tmux.capture(), 60, 0.5), tmux.capture()
        first = tmux.capture()
        time.sleep(6)  # several refreshes
        later = tmux.capture()
        assert len(headers(first)) == 1 and len(headers(later)) == 1, later  # redrawn, not appended
        assert headers(later)[0] != headers(first)[0]                        # and it is live
        assert f"blueflow status · app {run.run_id} · " in later              # the run's app id, found
        for url in run.urls:
            assert later.count(url.removeprefix("http://")) == 1, later       # one row per worker
        assert later.count("leader") == 1
        assert sections(first) == sections(RECORDED.read_text()) == list(SECTIONS), first
        run.workers[1].stop()
        assert wait_for(lambda: "down" in tmux.capture(), 30, 0.5), tmux.capture()
        screen = tmux.capture()
        assert "[Errno111]Connectionrefused\"))" in "".join(screen.split()), screen  # whole, to its end
        assert len(headers(screen)) == 1
        assert sections(screen) == list(SECTIONS), screen  # a worker down still fits the screen (80×50)
        assert max(len(line) for line in screen.splitlines()) <= 80
        tmux("send-keys", "-t", tmux.name, "C-c")
        assert wait_for(lambda: not tmux.alive(), 20, 0.5), "Ctrl-C did not end the live view"
    finally:
        if tmux.alive():
            tmux("kill-server")
        socket_dir = Path(os.environ.get("TMUX_TMPDIR", "/tmp")) / f"tmux-{os.getuid()}"
        (socket_dir / tmux.name).unlink(missing_ok=True)  # our private server's socket
        Path(run.log_dir).mkdir(parents=True, exist_ok=True)
        (Path(run.log_dir) / "status_live_capture.txt").write_text(locals().get("later") or "")
