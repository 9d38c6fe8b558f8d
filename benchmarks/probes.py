"""What the benchmark reads from the running processes and the stack: CPU and peak RSS from /proc, each stack
process's CPU, workers' /metrics, the run's Kafka bytes; the stand-in sanity check; tidying a run's topics.
The parsing itself is pure (benchmarks/measure.py)."""
from __future__ import annotations

import os
from pathlib import Path

import requests

from benchmarks import measure


def read_text(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def proc_cpu_s(pid: int) -> float | None:
    text = read_text(f"/proc/{pid}/stat")
    return measure.proc_stat_cpu_ticks(text) / os.sysconf("SC_CLK_TCK") if text else None


def proc_hwm_kb(pid: int) -> int | None:
    text = read_text(f"/proc/{pid}/status")
    return measure.proc_status_kb(text, "VmHWM") if text else None


def stack_cpu_s() -> dict[str, float]:
    """CPU seconds so far of each local-stack process (Kafka, S3Proxy, stand-ins), from its pids.json."""
    from devstack.stack.procs import load_pids

    out = {}
    for name, entry in load_pids().items():
        cpu = proc_cpu_s(int(entry.get("pid", 0))) if entry.get("pid") else None
        if cpu is not None:
            out[name] = cpu
    return out


STANDINS = ("iam", "vpc", "kentik", "cos-iam-proxy")  # what stands in for SaaS we cannot reach
STANDIN_CPU_LIMIT = 0.10  # a stand-in must never be the bottleneck: at most 10 % of the workers' CPU


def standin_check(stack_cpu: dict[str, float], worker_cpu_s: float) -> dict:
    """The stand-ins' CPU next to the workers'; `ok` False when they used more than STANDIN_CPU_LIMIT of it."""
    used = sum(v for k, v in stack_cpu.items() if k in STANDINS)
    share = used / worker_cpu_s if worker_cpu_s else None
    return {"standin_cpu_s": round(used, 2), "share_of_worker_cpu": measure.rnd(share, 3),
            "limit": STANDIN_CPU_LIMIT, "ok": share is not None and share <= STANDIN_CPU_LIMIT}


def worker_metrics(port: int) -> list:
    try:
        reply = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        return measure.parse_prometheus(reply.text) if reply.status_code == 200 else []
    except requests.RequestException:
        return []


def kafka_run_bytes(kafka_dir: Path, run_id: str) -> dict[str, int]:
    """Topic -> bytes of its log segments (*.log) over all partitions, for the run's topics."""
    try:
        names = os.listdir(kafka_dir)
    except OSError:
        return {}
    out = {}
    for topic, dirs in measure.kafka_topic_dirs(names, run_id).items():
        total = 0
        for d in dirs:
            for f in os.scandir(kafka_dir / d):
                if f.name.endswith(".log"):
                    total += f.stat().st_size
        out[topic] = total
    return out


def delete_run_topics(env: dict[str, str], topics: list[str]) -> None:
    if not topics:
        return
    try:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": env["BLUEFLOW_KAFKA_BOOTSTRAP"]})
        for fut in admin.delete_topics(topics, operation_timeout=30).values():
            try:
                fut.result(30)
            except Exception:  # noqa: BLE001 - tidying only
                pass
    except Exception:  # noqa: BLE001
        pass
