"""nfdump's `nfcapd` as the local IPFIX collector of the demo, the benchmark and the tests (127.0.0.1 only).

nfcapd stores what it receives in `flowdir` and writes its file when it stops; `stop_and_read` returns what
`nfdump -o csv` then shows (times in UTC). nfcapd 1.7 listens on UDP only, so the only loss a run can have
is a datagram dropped on the way in: `socket_stats` reads the kernel's count of datagrams it dropped for
nfcapd's socket (full receive buffer) and what still waits in it, from /proc/net/udp.

Needs the Debian/Ubuntu package `nfdump` (`missing()` says so when it is absent).
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

RECEIVE_BUFFER = 4 << 20  # nfcapd -B: room for a stall of nfcapd on a busy machine (capped by net.core.rmem_max)


def missing() -> str | None:
    """Why nfcapd cannot be used here, or None."""
    if shutil.which("nfcapd") and shutil.which("nfdump"):
        return None
    return "nfdump's nfcapd/nfdump are not installed (apt-get install nfdump)"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def udp_socket_stats(proc_net_udp: str, port: int) -> dict[str, int] | None:
    """{"rx_queue": bytes waiting, "drops": datagrams dropped} of the socket bound to 127.0.0.1:`port`, from the
    text of /proc/net/udp (None when there is no such socket)."""
    want = f"0100007F:{port:04X}"
    for line in proc_net_udp.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 13 and fields[1] == want:
            return {"rx_queue": int(fields[4].split(":")[1], 16), "drops": int(fields[12])}
    return None


def read_csv(text: str) -> list[dict]:
    """The flow rows of `nfdump -o csv` output (the summary after them left out)."""
    return [row for row in csv.DictReader(io.StringIO(text.split("\nSummary")[0])) if row.get("sa")]


def sample_line(row: dict) -> str:
    """One nfdump row as a short line: start, protocol, src:port -> dst:port, packets, bytes."""
    return (f"{row['ts']} {row['pr']} {row['sa']}:{row['sp']} -> {row['da']}:{row['dp']} "
            f"{row['ipkt']} pkts {row['ibyt']} bytes")


class NfCapd:
    """nfcapd on 127.0.0.1:<free port> writing into `flowdir`; `repeat_to` = a local UDP port nfcapd copies every
    datagram to (-R), for a test's own decoder."""

    def __init__(self, flowdir: Path, repeat_to: int | None = None, startup_timeout_s: float = 10.0):
        self.flowdir = Path(flowdir)
        self.flowdir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port()
        self.log = self.flowdir / "nfcapd.log"
        self.final_stats: dict[str, int] | None = None  # socket_stats() just before it stopped
        args = ["nfcapd", "-b", "127.0.0.1", "-p", str(self.port), "-w", str(self.flowdir), "-t", "3600",
                "-B", str(RECEIVE_BUFFER)]
        if repeat_to is not None:
            args += ["-R", f"127.0.0.1/{repeat_to}"]
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + startup_timeout_s
        while b"Startup" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"nfcapd did not start: {self.log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def socket_stats(self) -> dict[str, int] | None:
        try:
            with open("/proc/net/udp") as f:
                return udp_socket_stats(f.read(), self.port)
        except OSError:
            return None

    def wait_drained(self, timeout_s: float = 30.0) -> None:
        """Until nfcapd has read every datagram waiting in its socket (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            stats = self.socket_stats()
            if stats is None or stats["rx_queue"] == 0:
                return
            time.sleep(0.1)

    def stop_and_read(self) -> list[dict]:
        """Stop nfcapd (it writes its file) and return `nfdump -o csv` rows, times in UTC."""
        self.wait_drained()
        self.final_stats = self.socket_stats()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)
        out = subprocess.run(["nfdump", "-R", str(self.flowdir), "-o", "csv"], capture_output=True, text=True,
                             check=True, env={**os.environ, "TZ": "UTC"}).stdout
        return read_csv(out)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
