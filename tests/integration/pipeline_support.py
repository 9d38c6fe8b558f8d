"""Helpers for the end-to-end tests: a prepared bucket, worker runs, topic reading, stand-in inspection."""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path

import requests

from devstack import stack
from devstack.stack import env as stack_env
from devstack.stack.bucket import empty_bucket, hmac_client
from devstack.faults.run import read_topic  # noqa: F401  (tests import it from here)
from devstack.synth.generator import generate_objects
from devstack.synth.writer import write_objects
from devstack.workers import WorkerProcess, run_environment, sum_counts
from devstack.workers import wait_until as wait_for  # noqa: F401  (tests import it from here)
from devstack.synth.worldgen import build_world


def iam_path_overrides(env: dict[str, str]) -> dict[str, str]:
    """Workers use COS's production default: an IAM API key, through the bearer-token checking proxy."""
    return {"BLUEFLOW_COS_ENDPOINT": env["BLUEFLOW_COS_IAM_ENDPOINT"], "BLUEFLOW_COS_HMAC_ACCESS_KEY": "",
            "BLUEFLOW_COS_HMAC_SECRET_KEY": ""}


@dataclass
class Run:
    """One isolated pipeline run: its id (topic prefix, app id), objects, workers."""

    env: dict[str, str]
    run_id: str
    objects: list
    bad_keys: set[str]
    log_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    @property
    def good(self) -> list:
        return [o for o in self.objects if o.key not in self.bad_keys]

    def worker_env(self, **overrides: str) -> dict[str, str]:
        return run_environment(self.env, self.run_id, **iam_path_overrides(self.env), **overrides)

    def start_worker(self, name: str, **overrides: str) -> WorkerProcess:
        worker = WorkerProcess(name, self.worker_env(**overrides), self.log_dir).start()
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()

    def counts(self) -> dict[str, int]:
        return sum_counts([w.info() for w in self.workers if w.alive])

    def bucket_keys(self) -> set[str]:
        from connectors.cos import list_objects

        return {o.key for o in list_objects(hmac_client(self.env), self.env["BLUEFLOW_BUCKET"], "")}

    def logs(self) -> str:
        return "\n".join(f"--- {w.name}\n{w.log_tail(60)}" for w in self.workers)


def prepare(objects: int, *, bad: int = 0, tricky: int = 0, seed: int = 11, mean_flows: float = 60,
            bad_kinds=None, empty_share: float = 0.15) -> Run:
    """Fresh bucket and Kentik stand-in; generated objects written; nothing started yet."""
    env = stack.ensure_up()
    client = hmac_client(env)
    empty_bucket(client, env["BLUEFLOW_BUCKET"])
    requests.post(env["BLUEFLOW_KENTIK_EMULATOR"] + "/_emulator/reset", timeout=5).raise_for_status()
    world = build_world(seed=int(env["BLUEFLOW_WORLD_SEED"]), regions=tuple(env["BLUEFLOW_REGIONS"].split(",")))
    generated = generate_objects(world, objects=objects, seed=seed, mean_flows=mean_flows, bad=bad, tricky=tricky,
                                 bad_kinds=bad_kinds, empty_share=empty_share)
    result = write_objects(client, env["BLUEFLOW_BUCKET"], generated)
    assert not result.failed, result.failed[:3]
    run_id = f"t{uuid.uuid4().hex[:10]}"
    bad_keys = {o.key for o in generated if o.kind not in ("good", "empty")}
    return Run(env, run_id, generated, bad_keys, stack_env.state_dir() / "logs" / run_id)


def kentik(env: dict[str, str], route: str):
    """A Kentik stand-in inspection route; list routes are unwrapped (flows, devices, requests)."""
    reply = requests.get(env["BLUEFLOW_KENTIK_EMULATOR"] + route, timeout=30)
    reply.raise_for_status()
    body = reply.json()
    for name in ("flows", "devices", "requests", "heartbeats"):
        if isinstance(body, dict) and isinstance(body.get(name), list):
            return body[name]
    return body


