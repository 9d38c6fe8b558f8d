"""`blueflow-dev generate`: synthetic flow-log objects (generator.py) uploaded to the local stack's bucket.

`write_objects` uploads with ibm_boto3 (a few in flight, in order of generation); `main(argv)` reads the
stack's settings, uploads, writes a manifest and prints a one-line JSON summary.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

import orjson

from devstack.synth.generator import iter_objects
from devstack.synth.layout import DEFAULT_START, GeneratedObject

@dataclass
class WriteResult:
    written: int = 0
    bytes: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)   # (key, error class + message)


def _put(cos_client: Any, bucket: str, obj: GeneratedObject) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": obj.key, "Body": obj.body, "Metadata": obj.metadata}
    if obj.content_encoding:
        kwargs["ContentEncoding"] = obj.content_encoding
    cos_client.put_object(**kwargs)


def write_objects(cos_client: Any, bucket: str, objects: Iterable[GeneratedObject], workers: int = 8,
                  on_written=None) -> WriteResult:
    """Upload objects with put_object (header as Metadata) from a thread pool; bounded in-flight window so
    an iterator of objects is consumed lazily. Failures are collected, not raised."""
    result = WriteResult()
    window = max(1, workers) * 4
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="bf-put") as pool:
        pending: dict[Any, GeneratedObject] = {}

        def drain(block_until: int) -> None:
            while len(pending) > block_until:
                done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for fut in done:
                    obj = pending.pop(fut)
                    err = fut.exception()
                    if err is None:
                        result.written += 1
                        result.bytes += len(obj.body)
                        if on_written is not None:
                            on_written(obj)
                    else:
                        result.failed.append((obj.key, f"{type(err).__name__}: {err}"))

        for obj in objects:
            pending[pool.submit(_put, cos_client, bucket, obj)] = obj
            if len(pending) >= window:
                drain(window - 1)
        drain(0)
    return result


def load_devstack_env(paths: Sequence[Path] | None = None) -> dict[str, str]:
    """Settings: the local stack's env file (KEY=value lines, in $BLUEFLOW_DEVSTACK_DIR or .devstack) overlaid by
    the process environment."""
    found: dict[str, str] = {}
    from devstack.stack.env import state_dir  # honours $BLUEFLOW_DEVSTACK_DIR

    candidates = paths if paths is not None else [state_dir() / "env"]
    for p in candidates:
        if p.is_file():
            for line in p.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#") and "=" in line:
                    k, v = line.split("=", 1)
                    if k.startswith("export "):
                        k = k[len("export "):]
                    found.setdefault(k.strip(), v.strip().strip("'\""))
            break
    found.update({k: v for k, v in os.environ.items() if k.startswith(("BLUEFLOW_", "IBM_"))})
    return found


def _cos_client(settings: dict[str, str]) -> Any:
    endpoint = settings.get("BLUEFLOW_COS_ENDPOINT")
    if not endpoint:
        raise SystemExit("generate: BLUEFLOW_COS_ENDPOINT is not set (run `blueflow-dev devstack up` or export it)")
    access, secret = settings.get("BLUEFLOW_COS_HMAC_ACCESS_KEY"), settings.get("BLUEFLOW_COS_HMAC_SECRET_KEY")
    from connectors.cos import make_cos_client

    if access and secret:
        return make_cos_client(endpoint, hmac_access_key=access, hmac_secret_key=secret)
    return make_cos_client(endpoint, api_key=settings.get("IBM_COS_API_KEY"),
                           service_instance=settings.get("IBM_SERVICE_INSTANCE"),
                           iam_token_url=(settings["BLUEFLOW_IAM_URL"].rstrip("/") + "/identity/token"
                                          if settings.get("BLUEFLOW_IAM_URL") else None))


def _ensure_bucket(client: Any, bucket: str) -> None:
    try:
        client.head_bucket(Bucket=bucket)
    except Exception:  # noqa: BLE001 - any failure: try to create, which reports the real problem
        try:
            client.create_bucket(Bucket=bucket)
        except Exception as err:  # noqa: BLE001
            if "BucketAlready" not in type(err).__name__ and "BucketAlready" not in str(err):
                raise


def _parse_start(value: str | None) -> datetime:
    if not value:
        return DEFAULT_START
    if value == "now":
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        return now - timedelta(hours=1)
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="blueflow-dev generate", description="Write synthetic IBM VPC flow logs.")
    p.add_argument("--objects", type=int, default=100, help="flow-log objects (good + empty)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bad", type=int, default=0, help="extra bad-input objects (cycling the catalogue)")
    p.add_argument("--tricky", type=int, default=0, help="extra tricky-but-valid objects")
    p.add_argument("--bad-kinds", default=None, help="comma-separated bad kinds (default: all defaults)")
    p.add_argument("--empty-share", type=float, default=0.1)
    p.add_argument("--mean-flows", type=float, default=150)
    p.add_argument("--start", default=None, help="RFC 3339 start of the first window, or 'now' (default fixed)")
    p.add_argument("--bucket", default=None, help="default: BLUEFLOW_BUCKET")
    p.add_argument("--world-seed", type=int, default=None, help="default: BLUEFLOW_WORLD_SEED or 1")
    p.add_argument("--regions", default=None, help="default: BLUEFLOW_REGIONS or us-south,eu-de")
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--manifest", default=None, help="write a JSON-lines manifest of what was written")
    p.add_argument("--dry-run", action="store_true", help="generate only, do not upload")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_devstack_env()
    from devstack.synth.worldgen import build_world

    world_seed = args.world_seed if args.world_seed is not None else int(settings.get("BLUEFLOW_WORLD_SEED", "1"))
    regions = tuple(r for r in (args.regions or settings.get("BLUEFLOW_REGIONS", "us-south,eu-de")).split(",") if r)
    world = build_world(seed=world_seed, regions=regions)
    bad_kinds = [k for k in args.bad_kinds.split(",") if k] if args.bad_kinds else None
    summary = {"objects": 0, "good": 0, "empty": 0, "bad": 0, "flows": 0, "chf": 0, "bytes": 0, "failed": 0}
    manifest_lines: list[bytes] = []

    def account(obj: GeneratedObject) -> None:
        summary["objects"] += 1
        summary["bytes"] += len(obj.body)
        summary["flows"] += obj.flow_count
        summary["chf"] += obj.chf_count
        summary[obj.kind if obj.kind in ("good", "empty") else "bad"] += 1
        if args.manifest:
            manifest_lines.append(orjson.dumps(obj.manifest_entry()))

    objs = iter_objects(world, objects=args.objects, seed=args.seed, empty_share=args.empty_share,
                        mean_flows=args.mean_flows, start=_parse_start(args.start), bad=args.bad,
                        tricky=args.tricky, bad_kinds=bad_kinds, keep_flows=False)
    t0 = time.monotonic()
    if args.dry_run:
        for obj in objs:
            account(obj)
    else:
        bucket = args.bucket or settings.get("BLUEFLOW_BUCKET")
        if not bucket:
            raise SystemExit("generate: no bucket: give --bucket, set BLUEFLOW_BUCKET, or start the local stack "
                             "(blueflow-dev devstack up; it writes $BLUEFLOW_DEVSTACK_DIR/env)")
        client = _cos_client(settings)
        _ensure_bucket(client, bucket)
        res = write_objects(client, bucket, objs, workers=args.workers, on_written=account)
        summary["failed"] = len(res.failed)
        for key, err in res.failed[:5]:
            print(f"generate: put failed for {key}: {err}", file=sys.stderr)
    summary["seconds"] = round(time.monotonic() - t0, 3)
    if args.manifest:
        Path(args.manifest).write_bytes(b"\n".join(manifest_lines) + (b"\n" if manifest_lines else b""))
    print(json.dumps(summary))
    return 1 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
