"""The two sinks as the benchmark drives them: what the workers are told, and the referee of a run.

Kentik: the stand-in's accepted flows against the owed records (devstack/referee.compare) — lost, duplicates,
and each object's latency from its LastModified to the acceptance of its last record.

IPFIX: an nfcapd on 127.0.0.1 (devstack/nfcapd.py) started for the run; after the drain, what `nfdump` read
from it against the owed IPFIX records (devstack/referee.compare_collector). nfcapd listens on UDP only, so
this is what UDP lets us verify: every owed record arrived at the collector once (lost 0 means nothing was
dropped anywhere on the way, which UDP does not promise), the kernel's drop count at nfcapd's socket, and
latency to the collector's receive time (`tr`). The sink's own claim (records handed to the socket at the
pace) is blueflow_ipfix_exported_total, reported next to it (`sent_metric`), with the seconds it waited for its
pace.
"""
from __future__ import annotations

import shutil

import requests

from devstack.referee import compare, compare_collector

SINKS = ("kentik", "ipfix")


def accepted_flows(env: dict[str, str], page: int = 100_000) -> list[dict]:
    """Every flow the Kentik stand-in accepted, in pages (the list can be large)."""
    out: list[dict] = []
    while True:
        reply = requests.get(env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/flows",
                             params={"offset": len(out), "limit": page}, timeout=600)
        reply.raise_for_status()
        body = reply.json()
        out.extend(body["flows"])
        if not body["flows"] or len(out) >= body["count"]:
            return out


def reset_kentik(env: dict[str, str]) -> None:
    """A fresh Kentik stand-in whose /chf defers unpacking each body to the referee's decode (headers, gzip
    and prefix still checked before the 200): it stays far below the workers' CPU. A body the decode cannot
    read, or a flow of another device, is not stored — the referee counts its flows as lost."""
    url = env["BLUEFLOW_KENTIK_EMULATOR"]
    requests.post(url + "/_emulator/reset", timeout=30).raise_for_status()
    requests.post(url + "/_emulator/chf_check", json={"check": "deferred"}, timeout=30).raise_for_status()


def kentik_decode_problems(env: dict[str, str]) -> dict:
    stats = requests.get(env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/stats", timeout=30).json()["kentik"]
    return {k: stats.get(k, 0) for k in ("bodies_unreadable", "flows_wrong_device")}


class KentikSink:
    name = "kentik"
    sent_metric = "blueflow_chf_delivered_total"

    def __init__(self, env: dict[str, str], run_id: str):
        self.env = env
        reset_kentik(env)

    def worker_overrides(self) -> dict[str, str]:
        return {}

    def collector_cpu_s(self) -> float | None:
        return None

    def referee(self, objects, uploaded: dict[str, float]) -> tuple[dict, list[float]]:
        """The referee's counts and each object's latency (s) from upload to Kentik's last acceptance."""
        accepted = accepted_flows(self.env)
        verdict = compare(objects, accepted)
        problems = kentik_decode_problems(self.env)
        del accepted
        latencies = [verdict.last_accept_by_object[k] - uploaded[k] for k in verdict.last_accept_by_object
                     if k in uploaded]
        reset_kentik(self.env)
        return ({"owed": verdict.owed, "accepted": verdict.accepted, "lost": verdict.lost,
                 "duplicates": verdict.duplicates, "unexpected": verdict.unexpected, **problems}, latencies)

    def close(self) -> None:
        pass


class IpfixSink:
    name = "ipfix"
    sent_metric = "blueflow_ipfix_exported_total"

    def __init__(self, env: dict[str, str], run_id: str):
        from devstack import nfcapd
        from devstack.stack import env as stack_env

        if nfcapd.missing():
            raise RuntimeError(f"--sink ipfix needs a local collector: {nfcapd.missing()}")
        self.collector = nfcapd.NfCapd(stack_env.state_dir() / "nfcapd" / run_id)

    def worker_overrides(self) -> dict[str, str]:
        return {"BLUEFLOW_SINK": "ipfix", "BLUEFLOW_IPFIX_COLLECTORS": self.collector.address}

    def collector_cpu_s(self) -> float | None:
        from benchmarks.probes import proc_cpu_s

        return proc_cpu_s(self.collector.proc.pid)

    def referee(self, objects, uploaded: dict[str, float]) -> tuple[dict, list[float]]:
        """What nfdump read against what was owed; latency from upload to nfcapd's receipt of the last record."""
        rows = self.collector.stop_and_read()
        verdict = compare_collector(objects, rows)
        del rows
        latencies = [verdict.last_received_by_object[k] - uploaded[k] for k in verdict.last_received_by_object
                     if k in uploaded]
        stats = self.collector.final_stats or {}
        return ({"owed": verdict.owed, "accepted": verdict.received, "lost": verdict.lost,
                 "duplicates": verdict.duplicates, "unexpected": verdict.unexpected,
                 "collector": "nfcapd (UDP)", "collector_socket_drops": stats.get("drops")}, latencies)

    def close(self) -> None:
        self.collector.kill()
        shutil.rmtree(self.collector.flowdir, ignore_errors=True)


def make_sink(name: str, env: dict[str, str], run_id: str):
    return {"kentik": KentikSink, "ipfix": IpfixSink}[name](env, run_id)
