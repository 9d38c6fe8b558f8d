"""Several sources on the local stack: one bucket, IAM API key, VPC world and Kentik plan/export per source,
and the configuration file (streams/config/config_file.py) that lists them.

Used by `./dev demo --sources N` (devstack/demo.py) and the fault suite's `sources` scenario
(devstack/faults/sources.py). Every source reaches the one S3Proxy through the COS auth proxy (so its request
log gives each bucket's deletion times and faults can be injected per bucket) with its own IAM API key (the
IAM stand-in accepts DEV_API_KEY and DEV_API_KEY_B of devstack/stack/env.py, of two accounts), which is also
its VPC API key; each source's objects come from its own world (a different seed: other ids and devices, but the same private
address ranges), and its flows go to its own plan and export. The VPC stand-in serves the first two worlds,
each to its own account's tokens: acct-a's flows are labelled from world 1, acct-b's from world 98.
"""
from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from devstack.stack import env as stack_env

PLANS = ((11467, 3302), (5555, 7777), (6161, 8181), (7272, 9292))
NAMES = ("acct-a", "acct-b", "acct-c", "acct-d")


@dataclass(frozen=True)
class StackSource:
    name: str
    bucket: str
    api_key: str
    plan_id: int
    export_id: int
    world_seed: int

    @property
    def key_variable(self) -> str:
        """The environment variable the configuration file names for this source's COS API key."""
        return f"BLUEFLOW_{self.name.upper().replace('-', '_')}_COS_API_KEY"


def stack_sources(env: dict[str, str], run_id: str, count: int) -> list[StackSource]:
    """`count` sources: the first uses the stack's bucket, the others buckets of this run; keys alternate."""
    if not 1 <= count <= len(NAMES):
        raise ValueError(f"between 1 and {len(NAMES)} sources, not {count}")
    keys = (stack_env.DEV_API_KEY, stack_env.DEV_API_KEY_B)
    seed = int(env.get("BLUEFLOW_WORLD_SEED", "1"))
    return [StackSource(NAMES[i], env["BLUEFLOW_BUCKET"] if i == 0 else f"{run_id.lower()}-{NAMES[i]}",
                        keys[i % 2], PLANS[i][0], PLANS[i][1], seed + stack_env.WORLD_SEED_STEP * i)
            for i in range(count)]


def config_text(env: dict[str, str], sources: list[StackSource], **top: object) -> str:
    """The YAML configuration file for `sources` (top-level settings from `top`)."""
    lines = [f"{name}: {value}" for name, value in top.items()] + ["sources:"]
    for s in sources:
        lines.append(textwrap.indent(textwrap.dedent(f"""\
            - name: {s.name}
              bucket: {s.bucket}
              endpoint: {env['BLUEFLOW_COS_IAM_ENDPOINT']}
              cos_api_key_env: {s.key_variable}
              vpc_api_key_env: {s.key_variable}
              service_instance: {env['IBM_SERVICE_INSTANCE']}
              plan_id: {s.plan_id}
              export_id: {s.export_id}"""), "  "))
    return "\n".join(lines) + "\n"


def write_config(path: Path, env: dict[str, str], sources: list[StackSource], **top: object) -> dict[str, str]:
    """Write the file; returns the environment the workers need with it (BLUEFLOW_CONFIG, the key variables)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_text(env, sources, **top))
    return {"BLUEFLOW_CONFIG": str(path), **{s.key_variable: s.api_key for s in sources}}


def prepare_buckets(client, sources: list[StackSource]) -> int:
    """Every source's bucket exists and is empty; returns how many old objects were removed."""
    from devstack.stack.bucket import empty_bucket

    removed = 0
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    for s in sources:
        if s.bucket in existing:
            removed += empty_bucket(client, s.bucket)
        else:
            client.create_bucket(Bucket=s.bucket)
    return removed


def remove_buckets(client, sources: list[StackSource], keep: str) -> None:
    """Empty and delete the run's own buckets (never `keep`, the stack's bucket)."""
    from devstack.stack.bucket import empty_bucket

    for s in sources:
        if s.bucket != keep:
            empty_bucket(client, s.bucket)
            client.delete_bucket(Bucket=s.bucket)


def generate_for(env: dict[str, str], source: StackSource, **kwargs) -> list:
    """Objects of `source`'s own world (generator.generate_objects keyword arguments)."""
    from devstack.synth.generator import generate_objects
    from devstack.synth.worldgen import build_world

    regions = tuple(env.get("BLUEFLOW_REGIONS", "us-south,eu-de").split(","))
    return generate_objects(build_world(seed=source.world_seed, regions=regions), **kwargs)


def own_flows(objects, flows: list[dict]) -> list[dict]:
    """The accepted flows of the devices (subnets) `objects` belong to: one source's share of Kentik's flows."""
    from devstack.referee import device_name, key_fields

    devices = {device_name(key_fields(o.key)["subnet-id"].rsplit(":", 1)[-1]) for o in objects}
    return [f for f in flows if f.get("device_name") in devices]
