"""The IPFIX form of the sink (`--sink ipfix`, or `sink: ipfix` of a source): kflow → IPFIX collectors.

streams/stages/sink/sink.py calls `deliver_chunk` for the chunks of a source whose sink is `ipfix`, with the same
bookkeeping as for Kentik: which chunks of an object are done, progress shared between workers, and `finalize`
(delete, ledger) exactly when every chunk of the object version was handed over — to every collector of the
source. Handed over means (docs/ipfix.md): UDP: every datagram accepted by the socket, at the collector's pace
(`--ipfix_rate`; the sink waits for it, so a backlog stays in Kafka); TCP: every Message written in full to the
connection. Until then a failing collector is retried with the one backoff (a TCP session is reopened on each
retry, and only the Messages not yet handed over are sent) and the chunk waits; nothing is deleted. Collectors
are sent to concurrently, each at its own pace; the encoding is done once, on the thread pool.

Pure core: `observation_domain`, `encode_chunk`. Shell: `deliver_chunk`.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import time
import zlib

from streams.formats.kflow.ipfix import IpfixEncodeError, Messages, encode_records, frame_messages
from connectors.ipfix_export import Collector, Cursor, Exporter, IpfixSendError, Meter, parse_collectors
from streams.observe import metrics
from streams.formats.batches import KflowChunk
from streams.stages.sink.delivery import BatchRefused
from streams.formats.flowlog.flowlog import FlowLogError, parse_object_key
from streams.stages.retry import IPFIX, Transient, retry_transient
from streams.config.settings import kentik_observation_point

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


@functools.lru_cache(maxsize=4096)  # every chunk of an object asks again
def local_vnic(key: str) -> str:
    """The vNIC that wrote the object (the Observation Point); "" when the key has no such part."""
    try:
        return parse_object_key(key).vnic_id
    except FlowLogError:
        return ""


def encode_chunk(chunk: KflowChunk, exporter: Exporter, domain: int, export_time: int,
                 observation_point: int | None = None) -> Messages:
    """The Messages of one chunk (framed once, for every collector), sequence numbers reserved in order — only
    once the records are encoded, so a chunk IPFIX cannot carry leaves no gap in them."""
    records = encode_records(chunk.columns, chunk.flow_count, local_vnic(chunk.key), observation_point)
    first = exporter.reserve(domain, records.count)
    if first == 0:
        log.info("ipfix: subnet %s is exported as observation domain %d", chunk.subnet_id, domain)
    return frame_messages(records, domain, first, export_time, exporter.max_bytes)


class PrometheusMeter(Meter):
    """The exporter's reports as the per-collector metrics (streams/observe/metrics.py)."""

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _counters(collector: Collector) -> tuple:
        label = str(collector)
        return (metrics.IPFIX_RECORDS.labels(collector=label), metrics.IPFIX_DATAGRAMS.labels(collector=label),
                metrics.IPFIX_BYTES.labels(collector=label))

    def sent(self, collector: Collector, records: int, datagrams: int, nbytes: int) -> None:
        for counter, amount in zip(self._counters(collector), (records, datagrams, nbytes)):
            counter.inc(amount)

    def failed(self, collector: Collector) -> None:
        metrics.IPFIX_SEND_ERRORS.labels(collector=str(collector)).inc()

    def waited(self, collector: Collector, seconds: float) -> None:
        metrics.IPFIX_PACE_WAIT.labels(collector=str(collector)).inc(seconds)

    def paced(self, collector: Collector, rate: float) -> None:
        metrics.IPFIX_PACE.labels(collector=str(collector)).set(rate)


def exporter_of(ctx, collectors: str) -> Exporter:
    """The exporter to `collectors` (one per set of collectors: sources may export to different ones); the
    session to each collector — its socket and its pace — is shared by every set that names it."""
    if collectors not in ctx.ipfix:
        s = ctx.settings
        ctx.ipfix[collectors] = Exporter(parse_collectors(collectors), s.ipfix_transport, rate=s.ipfix_rate,
                                         with_point=kentik_observation_point(s) is not None,
                                         sessions=ctx.ipfix_sessions, meter=PrometheusMeter())
    return ctx.ipfix[collectors]


async def deliver_chunk(ctx, chunk: KflowChunk) -> None:
    """Hand every record of one chunk to every collector of its source (raises IpfixRefused if IPFIX cannot
    carry it)."""
    exporter = exporter_of(ctx, ctx.sources.get(chunk.source).ipfix_collectors)
    domain = observation_domain(ctx.settings.ipfix_domain, chunk.subnet_id)
    what = f"chunk {chunk.chunk + 1}/{chunk.chunks} of {chunk.key!r} ({chunk.flow_count} flows, domain {domain})"
    try:
        messages = await ctx.rt.run_sync(encode_chunk, chunk, exporter, domain, int(time.time()),
                                         kentik_observation_point(ctx.settings))
    except IpfixEncodeError as exc:
        raise IpfixRefused(f"{what}: IPFIX cannot carry it: {exc}") from None
    if len(exporter.sessions) == 1:
        await _export(ctx, exporter, 0, domain, messages, what)
    else:  # each collector at its own pace; one that is down does not hold the others' Messages back
        await asyncio.gather(*(_export(ctx, exporter, index, domain, messages, what)
                               for index in range(len(exporter.sessions))))
    metrics.IPFIX_EXPORTED.inc(chunk.flow_count)
    ctx.health.progressed()


async def _export(ctx, exporter: Exporter, index: int, domain: int, messages: Messages, what: str) -> None:
    """Every Message to collector `index`, retried (from the first one not handed over) until it is done."""
    cursor = Cursor()

    async def attempt() -> None:
        try:
            await exporter.send(index, domain, messages, cursor)
        except IpfixSendError as exc:
            raise Transient(str(exc)) from None

    await retry_transient(f"IPFIX export of {what} to {exporter.collectors[index]}", attempt, pause=ctx.pause,
                          health=ctx.health, step="sink: ipfix", scrub=ctx.rt.scrub, backoff=IPFIX.backoff,
                          dependency=IPFIX.dependency)
