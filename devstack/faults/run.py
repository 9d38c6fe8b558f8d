"""One fault scenario's run on the local stack: its own topic prefix and app id, the generated objects in the
bucket, the workers, and what the stand-ins and Kafka saw (`FaultRun`); `prepare` writes the objects, `inject`
queues faults at a stand-in (or the COS proxy), `readyz` reads a worker's readiness."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from devstack.stack.bucket import empty_bucket, hmac_client
from devstack.stack.env import state_dir
from devstack.synth.generator import generate_objects
from devstack.synth.layout import DEFAULT_START
from devstack.synth.worldgen import build_world
from devstack.synth.writer import write_objects
from devstack.workers import WorkerProcess, run_environment, wait_until


@dataclass
class FaultRun:
    """One scenario's isolated run: topic prefix, generated objects, workers, stand-in endpoints."""

    env: dict[str, str]
    run_id: str
    objects: list
    bad_keys: set[str]
    log_dir: Path
    worker_overrides: dict[str, str] = field(default_factory=dict)
    workers: dict[str, WorkerProcess] = field(default_factory=dict)
    retired: list[WorkerProcess] = field(default_factory=list)
    kentik_before: list[dict] = field(default_factory=list)  # flows saved before a stand-in restart
    notes: dict = field(default_factory=dict)
    rewritten_at: dict[str, float] = field(default_factory=dict)  # key -> when the scenario overwrote it
    written_at: dict[str, float] = field(default_factory=dict)  # key -> when it was written (fault_phase)
    fault_events: list[tuple[str, float]] = field(default_factory=list)  # (what, when) the fault acted
    started_at: float = 0.0  # when the first worker was started

    def mark(self, what: str) -> None:
        """The fault acts now (a kill, a stop, an outage begins, faults armed for new work): its verdict
        counts the objects pending at this moment (phase.py)."""
        self.fault_events.append((what, time.time()))

    @property
    def good(self) -> list:
        return [o for o in self.objects if o.key not in self.bad_keys]

    @property
    def proxy(self) -> str:
        return self.env["BLUEFLOW_COS_IAM_ENDPOINT"]

    def worker_env(self, **overrides: str) -> dict[str, str]:
        base = {"BLUEFLOW_COS_ENDPOINT": self.env["BLUEFLOW_COS_IAM_ENDPOINT"], "BLUEFLOW_COS_HMAC_ACCESS_KEY": "",
                "BLUEFLOW_COS_HMAC_SECRET_KEY": "", "BLUEFLOW_CHUNK_FLOWS": "40"}
        base.update(self.worker_overrides)
        base.update(overrides)
        return run_environment(self.env, self.run_id, **base)

    def start(self, name: str, **overrides: str) -> WorkerProcess:
        old = self.workers.get(name)
        if old is not None:
            self.retired.append(old)
        worker = WorkerProcess(name, self.worker_env(**overrides), self.log_dir).start()
        self.workers[name] = worker
        return worker

    def live(self) -> list[WorkerProcess]:
        return [w for w in self.workers.values() if w.alive]

    def leader(self) -> WorkerProcess | None:
        for w in self.live():
            info = w.info()
            if info and info.get("leader"):
                return w
        return None

    def stop_all(self) -> None:
        for w in list(self.workers.values()):
            w.stop(20)

    def bucket_keys(self) -> set[str]:
        from connectors.cos import list_objects

        return {o.key for o in list_objects(hmac_client(self.env), self.env["BLUEFLOW_BUCKET"], "")}

    def drained(self) -> bool:
        try:
            return self.bucket_keys() <= self.bad_keys and len(self.deadletters()) >= len(self.bad_keys)
        except Exception:  # noqa: BLE001 - S3Proxy may be down during the fault
            return False

    def deadletters(self) -> dict[str, list[dict]]:
        from streams.formats.avro import Codec

        if not self.bad_keys:
            return {}
        codec = Codec("deadletter")
        out: dict[str, list[dict]] = {}
        for _, value, _ in read_topic(self.env, f"{self.run_id}.deadletter", 10):
            record = codec.decode(value)
            out.setdefault(record["key"], []).append(record)
        return out

    def flows(self) -> list[dict]:
        reply = requests.get(self.env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/flows", timeout=600)  # huge: ~1M
        reply.raise_for_status()
        return self.kentik_before + reply.json()["flows"]

    def proxy_requests(self) -> list[dict]:
        reply = requests.get(self.proxy + "/_emulator/requests", timeout=60)
        reply.raise_for_status()
        return reply.json()["requests"]

    def all_workers(self) -> list[WorkerProcess]:
        return self.retired + list(self.workers.values())


def read_topic(env: dict[str, str], topic: str, timeout_s: float = 10.0) -> list[tuple[bytes, bytes, int]]:
    """Every message of `topic` (key, value, timestamp ms), from the beginning to the current end."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": env["BLUEFLOW_KAFKA_BOOTSTRAP"], "group.id": f"faults-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10)
        if topic not in meta.topics or meta.topics[topic].error is not None:
            return []
        partitions = sorted(meta.topics[topic].partitions)
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        starts = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0] for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        out, positions = [], dict(starts)
        deadline = time.monotonic() + timeout_s
        while any(positions[p] < ends[p] for p in partitions) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            positions[msg.partition()] = msg.offset() + 1
            out.append((msg.key(), msg.value(), msg.timestamp()[1]))
        return out
    finally:
        consumer.close()


def prepare(env: dict[str, str], objects: int, *, seed: int, bad_kinds: list[str] | None = None,
            mean_flows: float = 30, log: Callable[[str], None] = print) -> FaultRun:
    """Empty bucket, Kentik stand-in and proxy log reset; the generated objects written."""
    client = hmac_client(env)
    empty_bucket(client, env["BLUEFLOW_BUCKET"])
    for url in (env["BLUEFLOW_KENTIK_EMULATOR"], env["BLUEFLOW_COS_IAM_ENDPOINT"], env["BLUEFLOW_IAM_URL"],
                vpc_root(env)):
        requests.post(url + "/_emulator/reset", timeout=10).raise_for_status()
    bad_kinds = list(bad_kinds or [])
    generated = generate_objects(world_of(env), objects=objects, seed=seed, mean_flows=mean_flows, bad=len(bad_kinds),
                                 bad_kinds=bad_kinds or None, empty_share=0.1)
    written_at: dict[str, float] = {}
    result = write_objects(client, env["BLUEFLOW_BUCKET"], generated,
                           on_written=lambda o: written_at.__setitem__(o.key, time.time()))
    if result.failed:
        raise RuntimeError(f"could not write objects: {result.failed[:3]}")
    run_id = f"f{uuid.uuid4().hex[:10]}"
    bad = {o.key for o in generated if o.kind not in ("good", "empty")}
    log(f"  {len(generated)} objects written ({len(bad)} bad), run {run_id}")
    return FaultRun(env, run_id, generated, bad, state_dir() / "logs" / run_id, written_at=written_at)


def world_of(env: dict[str, str]):
    """The VPC world of the local stack (the stand-ins serve it; generated objects are of its vNICs)."""
    return build_world(seed=int(env["BLUEFLOW_WORLD_SEED"]), regions=tuple(env["BLUEFLOW_REGIONS"].split(",")))


def fresh_bodies(run, n: int, seed: int, start=None) -> list:
    """`n` good generated objects of the run's world (capture times from `start`, default the generator's)."""
    return [o for o in generate_objects(world_of(run.env), objects=n * 2, seed=seed, mean_flows=30, empty_share=0.0,
                                        start=start or DEFAULT_START) if o.kind == "good"][:n]


def vpc_root(env: dict[str, str]) -> str:
    return env["BLUEFLOW_VPC_URL_TEMPLATE"].split("/{region}")[0]


def inject(url: str, *faults: dict) -> None:
    requests.post(url + "/_emulator/faults", json=list(faults), timeout=10).raise_for_status()


def readyz(w: WorkerProcess, path: str = "/readyz") -> tuple[int, list]:
    """(status, problems) of a worker's readiness — where a stall must show with its cause (liveness, /healthz,
    fails only when a restart helps)."""
    try:
        reply = requests.get(f"http://127.0.0.1:{w.port}{path}", timeout=3)
        return reply.status_code, reply.json().get("problems", [])
    except (requests.RequestException, ValueError):
        return 0, []


def progress_started(run: FaultRun, timeout: float = 120) -> bool:
    """Wait until the first objects were delivered and deleted (so faults land mid-stream)."""
    total = len(run.good)
    return wait_until(lambda: len(run.bucket_keys() - run.bad_keys) < total * 0.9, timeout, 1.0)
