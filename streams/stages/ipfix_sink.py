"""The IPFIX form of the sink (`--sink ipfix`, or `sink: ipfix` of a source): kflow → IPFIX collectors.

streams/stages/sink.py calls `deliver_chunk` for the chunks of a source whose sink is `ipfix`, with the same
bookkeeping as for Kentik: which chunks of an object are done, progress shared between workers, and `finalize`
(delete, ledger) exactly when every chunk of the object version was handed over — to every collector of the
source. Handed over means (docs/ipfix.md):
UDP: every datagram accepted by the socket; TCP: every Message written in full to the connection. Until
then a failing collector is retried with the one backoff (a TCP session is reopened on each retry) and the
chunk waits; nothing is deleted.

Pure core: `observation_domain`, `encode_chunk`. Shell: `deliver_chunk`.
"""
from __future__ import annotations

import logging
import time
import zlib

from connectors.ipfix import IpfixEncodeError, encode_records, frame_messages
from connectors.ipfix_export import Exporter, IpfixSendError, parse_collectors
from streams import metrics
from streams.columns import lists
from streams.delivery import BatchRefused
from streams.flowlog import FlowLogError, parse_object_key
from streams.batches import KflowChunk
from streams.retry import Transient

log = logging.getLogger("blueflow")

class IpfixRefused(BatchRefused):
    """A chunk IPFIX cannot carry: the object is quarantined with this reason (it stays in the bucket)."""

    def __init__(self, detail: str):
        Exception.__init__(self, detail)
        self.status, self.detail = 0, detail


def observation_domain(setting: str, subnet_id: str) -> int:
    """The Observation Domain ID of a subnet's records: a fixed number, or (`subnet`) a stable non-zero
    32-bit id of the subnet (CRC-32 of its id; the worker logs it when it first exports the subnet)."""
    if setting != "subnet":
        return int(setting)
    return zlib.crc32(subnet_id.encode()) or 1


def local_vnic(key: str) -> str:
    """The vNIC that wrote the object (the Observation Point); "" when the key has no such part."""
    try:
        return parse_object_key(key).vnic_id
    except FlowLogError:
        return ""


def encode_chunk(chunk: KflowChunk, exporter: Exporter, domain: int, export_time: int) -> list[tuple[bytes, int]]:
    """The Messages of one chunk (framed once, for every collector), sequence numbers reserved in order."""
    records = encode_records(lists(chunk.columns), chunk.flow_count, local_vnic(chunk.key))  # reads Python ints
    first = exporter.reserve(domain, records.count)
    if first == 0:
        log.info("ipfix: subnet %s is exported as observation domain %d", chunk.subnet_id, domain)
    return frame_messages(records, domain, first, export_time, exporter.max_bytes)


def exporter_of(ctx, collectors: str) -> Exporter:
    """The exporter to `collectors` (one per set of collectors: sources may export to different ones)."""
    if collectors not in ctx.ipfix:
        ctx.ipfix[collectors] = Exporter(parse_collectors(collectors), ctx.settings.ipfix_transport)
    return ctx.ipfix[collectors]


async def deliver_chunk(ctx, chunk: KflowChunk) -> None:
    """Hand every record of one chunk to every collector of its source (raises IpfixRefused if IPFIX cannot
    carry it)."""
    exporter = exporter_of(ctx, ctx.sources.get(chunk.source).ipfix_collectors)
    domain = observation_domain(ctx.settings.ipfix_domain, chunk.subnet_id)
    what = f"chunk {chunk.chunk + 1}/{chunk.chunks} of {chunk.key!r} ({chunk.flow_count} flows, domain {domain})"
    try:
        messages = await ctx.rt.run_sync(encode_chunk, chunk, exporter, domain, int(time.time()))
    except IpfixEncodeError as exc:
        raise IpfixRefused(f"{what}: IPFIX cannot carry it: {exc}") from None

    def send(index: int, msg: bytes) -> None:
        try:
            exporter.send(index, domain, msg)
        except IpfixSendError as exc:
            raise Transient(str(exc)) from None

    for index, collector in enumerate(exporter.collectors):
        for msg, _ in messages:
            await ctx.retry(f"IPFIX export of {what} to {collector}", "sink: ipfix", send, index, msg)
    metrics.CHF_DELIVERED.inc(chunk.flow_count)
    ctx.health.progressed()
