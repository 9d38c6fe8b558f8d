"""Fault-suite scenarios for hostile inputs and misbehaving COS (issue: hostile inputs and peers).

- `overwrite`: objects overwritten in place while the pipeline delivers them (Kentik slowed down so many are
  mid-flight) — some with a new valid body, some with garbage. The new version's flows are owed (a key is
  never deleted unread); garbage must be quarantined and stay; the first version's flows may or may not
  have been read, so they are neither owed nor counted as lost.
- `ctrlkeys`: valid objects whose keys carry control characters (ESC, BEL, newline) in the stream id —
  keys the DeleteObjects XML cannot carry. Every flow accepted, every object deleted, nothing stalls.
- `delete403`: COS answers 403 to every DELETE for a while. No object may be deleted meanwhile, and
  `/readyz` must fail with the delete in `problems`; afterwards the bucket drains.
"""
from __future__ import annotations

import dataclasses
import random
import time

import requests

from devstack.workers import wait_until

CONTROL_SUFFIXES = ("\x1b[2J\x1b]0;pwned\x07", "\x07bell", "\nFAKE-LOG-LINE", "\x1b[31mred\x1b[0m")


def _client(run):
    from devstack.demo import hmac_client

    return hmac_client(run.env)


def _fresh_bodies(run, n: int, seed: int, start=None) -> list:
    """`n` good generated objects of the run's world (capture times from `start`, default the generator's)."""
    from devstack.generator import DEFAULT_START, generate_objects
    from devstack.world import build_world

    env = run.env
    world = build_world(seed=int(env["BLUEFLOW_WORLD_SEED"]), regions=tuple(env["BLUEFLOW_REGIONS"].split(",")))
    return [o for o in generate_objects(world, objects=n * 2, seed=seed, mean_flows=30, empty_share=0.0,
                                        start=start or DEFAULT_START) if o.kind == "good"][:n]


def _put(run, key: str, body: bytes, metadata: dict) -> None:
    _client(run).put_object(Bucket=run.env["BLUEFLOW_BUCKET"], Key=key, Body=body, Metadata=metadata)


def fault_overwrite(run, rng: random.Random, quick: bool) -> float:
    from devstack.faults import inject

    kentik = run.env["BLUEFLOW_KENTIK_EMULATOR"]
    inject(kentik, {"latency_ms": 400, "count": 150 if quick else 600, "path_prefix": "/chf"})
    time.sleep(2.0)
    present = sorted(run.bucket_keys() - run.bad_keys)
    victims = rng.sample(present, min(len(present), 20 if quick else 60))
    garbage, valid = victims[:2], victims[2:]
    by_key = {o.key: i for i, o in enumerate(run.objects)}
    for victim, new in zip(valid, _fresh_bodies(run, len(valid), rng.randrange(1 << 30))):
        _put(run, victim, new.body, new.metadata)
        run.rewritten_at[victim] = time.time()  # deletes before this were of the first version
        run.objects[by_key[victim]] = dataclasses.replace(new, key=victim)  # the new version is what is owed
    for victim in garbage:
        _put(run, victim, b"overwritten with something that is not a flow log", {})
        run.rewritten_at[victim] = time.time()
        run.bad_keys.add(victim)
    run.notes["overwritten"] = {"valid": len(valid), "garbage": len(garbage)}
    return time.time()


def fault_ctrlkeys(run, rng: random.Random, quick: bool) -> float:
    written = []
    for i, new in enumerate(_fresh_bodies(run, 8 if quick else 24, rng.randrange(1 << 30))):
        head, _, tail = new.key.rpartition("/")  # .../stream-id=<id><control characters>/00000001.gz
        key = f"{head}{CONTROL_SUFFIXES[i % len(CONTROL_SUFFIXES)]}{i}/{tail}"
        _put(run, key, new.body, new.metadata)
        run.objects.append(dataclasses.replace(new, key=key))
        written.append(key)
    run.notes["control_character_keys"] = len(written)
    return time.time()


def fault_delete403(run, rng: random.Random, quick: bool) -> float:
    from devstack.faults import _healthz, inject

    bucket = run.env["BLUEFLOW_BUCKET"]
    inject(run.proxy, {"status": 403, "count": 0, "method": "DELETE", "path_prefix": f"/{bucket}/"},
           {"status": 403, "count": 0, "method": "POST", "path_prefix": f"/{bucket}"})
    started = time.time()
    seen: list = []

    def unhealthy_with_cause() -> bool:
        answers = [_healthz(w) for w in run.live()]
        seen.extend(answers)
        return any(code == 503 and any("delete" in p for p in problems) for code, problems in answers)

    reported = wait_until(unhealthy_with_cause, 120, 2.0)
    held_s = round(time.time() - started, 1)
    requests.delete(run.proxy + "/_emulator/faults", timeout=10).raise_for_status()
    run.notes["delete403"] = {"unhealthy_with_cause": reported, "seconds_to_report": held_s,
                              "problems": next((p for c, p in seen if c == 503), [])[:2]}
    if not reported:
        run.notes.setdefault("problems", []).append("COS 403 on DELETE: /readyz never failed with the cause")
    return time.time()


ACTIONS = {"overwrite": fault_overwrite, "ctrlkeys": fault_ctrlkeys, "delete403": fault_delete403}
OVERRIDES = {"delete403": {"BLUEFLOW_UNHEALTHY_AFTER": "8"}}
