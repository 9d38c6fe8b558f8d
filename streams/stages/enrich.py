"""Stage enrich: flows → kflow. Translate one FlowChunk (the rows of all its objects' parts in one pass, into
one KflowChunk with per-object row ranges and devices) into kflow records labelled with IBM VPC metadata
(docs/translation.md; implemented in streams/formats/translate.py). Without metadata the labels fall back to the ids
in the object key: missing or failing VPC/IAM APIs degrade names, they never hold this stage.

Every flow is labelled from its own source's account only (two accounts may use the same private addresses):
`process` takes `index_for(source) -> IpIndex | None` (streams/state/metadata.py, MetadataFollower.index_for).

Pure core: `translate_parts(flow chunk, ip index)` (one pass over the message's rows; part by part only to
find a part that fails), `concat_kflow` and `process` (raw message → Enriched).
Shell: `handle`.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace

import numpy as np

from streams.observe import metrics
from streams.formats.avro import AvroDecodeError
from streams.formats.flowlog.flowlog import FlowLogError, parse_object_key
from streams.formats.batches import (KFLOW_COLUMNS, KFLOW_INT_COLUMNS, FlowChunk, FlowPart, KflowChunk, KflowPart,
                                     part_object)
from streams.formats.columns import concat
from streams.formats.translate import Segment, device_name_for_subnet, translate_batch, translate_segments

log = logging.getLogger("blueflow")

METADATA_WAIT_S = 10.0  # only until the metadata topic was read: never waits for the VPC API


def kflow_part(flow: FlowChunk, part: FlowPart, index) -> tuple[KflowPart, dict]:
    """One object's rows of `flow` translated with the IP index (None = no metadata: ids from the key)."""
    key_info = parse_object_key(part.key)
    columns: dict = {}
    if part.flow_count:
        translated = translate_batch(key_info, part.header, flow.rows(part), index)
        columns = {name: translated[name] for name in KFLOW_COLUMNS}
        columns["flow_count"] = translated["flow_count"]
    return _kflow_part(flow, part, key_info, index, 0, columns.get("flow_count", 0)), columns


def translate_parts(flow: FlowChunk, index) -> tuple[KflowChunk | None, list]:
    """The KflowChunk of every part that translates, and (part, exception) of those that do not. The parts
    are translated in one pass over the message's rows; if that pass fails, part by part to find the culprit."""
    named, failures = [], []
    for part in flow.parts:
        try:
            named.append((part, parse_object_key(part.key)))
        except Exception as exc:  # noqa: BLE001 - the reason is the value
            failures.append((part, exc))
    if not named:
        return None, failures
    try:
        parts, columns = _translate_together(flow, named, index)
    except Exception:  # noqa: BLE001 - blamed on its part below
        parts, columns, failed = _translate_each(flow, [part for part, _ in named], index)
        failures += failed
        if not parts:
            return None, failures
    out = KflowChunk(flow.bucket, sum(p.flow_count for p in parts), columns, parts,
                     replay=bool(flow.replay), source=flow.source)
    return out, failures


def _translate_together(flow: FlowChunk, named: list, index) -> tuple[list[KflowPart], dict]:
    """The KflowParts and the kflow columns of `named` ((FlowPart, ObjectKeyInfo) in row order) in one pass."""
    rows = [(part.start, part.start + part.flow_count) for part, _ in named]
    if rows[0][0] == 0 and rows[-1][1] == flow.flow_count and all(a[1] == b[0] for a, b in zip(rows, rows[1:])):
        columns = flow.columns
    else:  # a part could not be named: the others' rows only
        columns = {name: concat([column[a:b] for a, b in rows]) for name, column in flow.columns.items()}
    if not any(part.flow_count for part, _ in named):
        translated, counts = {}, [0] * len(named)
    else:
        translated, counts, _ = translate_segments([Segment(info, part.header, part.flow_count)
                                                    for part, info in named], columns, index)
    parts, start = [], 0
    for (part, info), count in zip(named, counts):
        parts.append(_kflow_part(flow, part, info, index, start, int(count)))
        start += int(count)
    return parts, {name: translated[name] for name in KFLOW_COLUMNS} if translated else {}


def _kflow_part(flow: FlowChunk, part: FlowPart, key_info, index, start: int, count: int) -> KflowPart:
    subnet = index.subnet_info(key_info.subnet_id) if index is not None else None
    return KflowPart(part.key, part.etag, part.size, part.last_modified, device_name_for_subnet(key_info.subnet_id),
                     key_info.subnet_id, key_info.region,
                     subnet.zone if subnet is not None and subnet.zone else key_info.subnet_zone,
                     part.chunk, part.chunks, part.flow_count, start, count,
                     replay=bool(flow.replay), source=flow.source)


def _translate_each(flow: FlowChunk, pieces: list[FlowPart], index) -> tuple[list[KflowPart], dict, list]:
    """`translate_parts` one part at a time: (KflowParts, their columns concatenated, (part, exception) of
    the parts that fail)."""
    parts, blocks, failures = [], [], []
    for part in pieces:
        try:
            kpart, columns = kflow_part(flow, part, index)
        except Exception as exc:  # noqa: BLE001 - the reason is the value
            failures.append((part, exc))
            continue
        kpart.start = sum(p.flow_count for p in parts)
        parts.append(kpart)
        blocks.append(columns)
    return parts, concat_kflow(blocks), failures


def concat_kflow(blocks: list[dict]) -> dict:
    """Translated kflow columns of several objects, one after the other; the custom strings are merged into
    one dictionary and each block's indexes renumbered into it."""
    blocks = [b for b in blocks if b.get("flow_count")]
    if len(blocks) <= 1:
        return {name: blocks[0][name] for name in KFLOW_COLUMNS} if blocks else {}
    out = {name: np.concatenate([b[name] for b in blocks]) for name in KFLOW_INT_COLUMNS}
    strings: dict[str, int] = {}
    custom = []
    for block in blocks:
        renumber = np.array([strings.setdefault(text, len(strings)) for text in block["strings"]], dtype=np.int32)
        custom.append(renumber[np.asarray(block["custom_idx"], dtype=np.int64)])
    out["strings"], out["custom_idx"] = list(strings), np.concatenate(custom)
    return out


class RegionWatch:
    """Objects whose key names a region the deployment loads no VPC metadata for (--regions): counted per
    region, and reported once per source and region with the fix. `loaded(source)` -> that source's regions
    (empty: metadata is off for it, nothing to report)."""

    def __init__(self, loaded):
        self.loaded = loaded
        self.reported: set[tuple[str, str]] = set()

    def check(self, source: str, regions: dict[str, int]) -> list[str]:
        """Count `regions` ({region: objects}) of `source`; the report lines due now (each once)."""
        loaded = set(self.loaded(source))
        lines = []
        for region, objects in sorted(regions.items()):
            if not loaded or not region or region in loaded:
                continue
            metrics.OBJECTS_REGION_WITHOUT_METADATA.labels(region=region).inc(objects)
            if (source, region) not in self.reported:
                self.reported.add((source, region))
                lines.append(f"objects of region {region}{f' (source {source})' if source else ''} arrive, but VPC "
                             f"metadata is loaded only for {','.join(sorted(loaded))}: their flows carry ids, not "
                             f"names; add {region} to --regions (BLUEFLOW_REGIONS)")
        return lines


def object_regions(chunk) -> dict[str, int]:
    """{region named by the object key: objects starting in this message}."""
    out: dict[str, int] = {}
    for part in chunk.parts:
        if part.chunk == 0:
            out[part.region] = out.get(part.region, 0) + 1
    return out


@dataclass(frozen=True)
class Enriched:
    """What one flows message became: the kflow message, and the objects that could not be translated with
    why (errors are values)."""

    flow: FlowChunk | None
    message: bytes = b""
    count: int = 0
    failed: tuple = ()  # (ObjectRef of the part's object or None, stage, reason)
    regions: dict = None  # {region of the object keys: objects starting here}


def process(raw: bytes, index_for) -> Enriched:
    """Blocking, one hand-off per message: decode the FlowChunk, translate with its source's IP index
    (`index_for(source)`; a message is of one source), encode the KflowChunk."""
    try:
        flow = FlowChunk.decode(raw)
    except AvroDecodeError as exc:
        return Enriched(None, failed=((None, "decode", f"flows message could not be decoded: {exc}"),))
    chunk, failures = translate_parts(flow, index_for(flow.source))
    failed = tuple((part_object(flow, part), exc.stage, exc.reason) if isinstance(exc, FlowLogError) else
                   (part_object(flow, part), "enrich", f"translation failed on chunk {part.chunk}: {exc!r}")
                   for part, exc in failures)
    if chunk is None:
        return Enriched(flow, failed=failed)
    try:
        return Enriched(flow, chunk.encode(), chunk.flow_count, failed, object_regions(chunk))
    except Exception:  # noqa: BLE001 - a message of several objects: find the object that caused it
        return _encoded_alone(flow, index_for(flow.source), failed)


def _encoded_alone(flow: FlowChunk, index, failed: tuple) -> Enriched:
    """The kflow message of `flow` when it could not be encoded as a whole: each object's part is translated
    and encoded alone, the ones that fail are set apart with the reason, the others go on in one message."""
    good = []
    for part in flow.parts:
        if any(f[0] is not None and (f[0].key, f[0].etag) == (part.key, part.etag) for f in failed):
            continue
        one, _ = translate_parts(replace(flow, parts=[part]), index)
        try:
            one.encode()
            good.append(part)
        except Exception as exc:  # noqa: BLE001 - the reason is the value
            failed += ((part_object(flow, part), "enrich", f"its kflow message could not be encoded: {exc!r}"),)
    if not good:
        return Enriched(flow, failed=failed)
    chunk, _ = translate_parts(replace(flow, parts=good), index)
    return Enriched(flow, chunk.encode(), chunk.flow_count, failed, object_regions(chunk))


async def handle(ctx, raw: bytes, event_key: bytes | None) -> None:
    started = time.perf_counter()
    await _first_wait_for_metadata(ctx)
    result = await ctx.rt.run_sync(process, raw, ctx.metadata.index_for)
    for part, stage, reason in result.failed:  # an object that cannot be translated is quarantined alone
        await ctx.quarantine(part or ctx.unknown(event_key), stage, reason)
    if not result.message:
        return
    key = event_key.decode(errors="replace") if event_key else result.flow.key  # the group's: same partition
    await ctx.send(ctx.topics.kflow, key, result.message)
    metrics.CHF_TRANSLATED.inc(result.count)
    for line in ctx.regions.check(result.flow.source, result.regions or {}):
        log.warning("enrich: %s", line)
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
