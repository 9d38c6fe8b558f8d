"""Stage enrich: flows → kflow. Translate one FlowChunk into kflow records labelled with IBM VPC metadata
(docs/translation.md; implemented in streams/translate.py). Without metadata the labels fall back to the ids
in the object key: missing or failing VPC/IAM APIs degrade names, they never hold this stage.

Pure core: `kflow_chunk(flow chunk, ip index)` and `process` (raw message → Enriched). Shell: `handle`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from streams import metrics
from streams.avro import AvroDecodeError
from streams.flowlog import FlowLogError, parse_object_key
from streams.records import KFLOW_COLUMNS, FlowChunk, KflowChunk
from streams.translate import device_name_for_subnet, translate_batch

log = logging.getLogger("blueflow")

METADATA_WAIT_S = 10.0  # only until the metadata topic was read: never waits for the VPC API


def kflow_chunk(flow: FlowChunk, index) -> KflowChunk:
    """The KflowChunk translated from `flow` with the IP index (None = no metadata: ids from the key)."""
    key_info = parse_object_key(flow.key)
    subnet = index.subnet_info(key_info.subnet_id) if index is not None else None
    out = KflowChunk(bucket=flow.bucket, key=flow.key, etag=flow.etag, size=flow.size,
                     last_modified=flow.last_modified, device_name=device_name_for_subnet(key_info.subnet_id),
                     subnet_id=key_info.subnet_id, region=key_info.region,
                     zone=(subnet.zone if subnet is not None and subnet.zone else key_info.subnet_zone),
                     chunk=flow.chunk, chunks=flow.chunks, source_flows=flow.flow_count, replay=bool(flow.replay),
                     source=flow.source)
    if flow.flow_count:
        translated = translate_batch(key_info, flow.header, flow.columns, index)
        out.flow_count = translated["flow_count"]
        out.columns = {name: translated[name] for name in KFLOW_COLUMNS}
    return out


@dataclass(frozen=True)
class Enriched:
    """What one flows message became: the kflow message, or why it could not be (errors are values)."""

    flow: FlowChunk | None
    message: bytes = b""
    count: int = 0
    stage: str = ""
    reason: str = ""


def process(raw: bytes, index) -> Enriched:
    """Blocking, one hand-off per message: decode the FlowChunk, translate, encode the KflowChunk."""
    try:
        flow = FlowChunk.decode(raw)
    except AvroDecodeError as exc:
        return Enriched(None, stage="decode", reason=f"flows message could not be decoded: {exc}")
    try:
        chunk = kflow_chunk(flow, index)
        return Enriched(flow, chunk.encode(), chunk.flow_count)
    except FlowLogError as exc:
        return Enriched(flow, stage=exc.stage, reason=exc.reason)
    except Exception as exc:
        return Enriched(flow, stage="enrich", reason=f"translation failed on chunk {flow.chunk}: {exc!r}")


async def handle(ctx, raw: bytes, event_key: bytes | None) -> None:
    started = time.perf_counter()
    await _first_wait_for_metadata(ctx)
    result = await ctx.rt.run_sync(process, raw, ctx.metadata.index)
    if result.reason:
        await ctx.quarantine(result.flow or ctx.unknown(event_key), result.stage, result.reason)
        return
    await ctx.send(ctx.topics.kflow, result.flow.skey, result.message)
    metrics.CHF_TRANSLATED.inc(result.count)
    metrics.STAGE_SECONDS.labels(stage="enrich").observe(time.perf_counter() - started)


async def _first_wait_for_metadata(ctx) -> None:
    """Once per process, give the VPC metadata follower a bounded moment to load, so the first flows get
    names; after that (or without metadata) flows are labelled with what is there, never held."""
    if ctx.metadata_waited:
        return
    ctx.metadata_waited = True
    if not await ctx.rt.run_sync(ctx.metadata.wait_ready, METADATA_WAIT_S):
        log.warning("enrich: no VPC metadata after %ss; labelling flows with ids from the object keys until it "
                    "arrives", METADATA_WAIT_S)
