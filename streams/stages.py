"""The pipeline's agents and leader loops: poll → parse → enrich → sink → delete.

Rules that keep delivery safe under Faust 0.15 (architecture.md): concurrency 1; every exception is caught
inside the loop (Faust acks an event when its agent raises); every send is awaited until the broker acked
it; values are raw bytes decoded here, so a poison message is dead-lettered, not skipped.

State: the outcome store (every worker follows `ledger` and `deadletter`) makes a second listing, a new
leader or a replay of `objects` harmless for finished objects; `parsing` (objects this worker parsed and
not yet saw finish) covers objects in flight; `progress` (sink: ETag and chunk bitmap per object) makes a
re-sent chunk harmless and deletes the object exactly when its last chunk was accepted. After a crash,
the chunks consumed but not yet committed are sent again: that is the "at most the chunks in flight" bound.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

from streams import metrics
from streams.avro import AvroDecodeError, Codec
from streams.delivery import BatchRefused, PostResult, deliver
from streams.flowlog import FlowLogError, iter_chunks, parse_object_bytes, parse_object_key
from streams.metadata import MetadataFollower, fetch_snapshots
from streams.outcomes import DELIVERED, QUARANTINED, OutcomeFollower, OutcomeStore, ProgressStore
from streams.poller import PublishLedger
from streams.translate import device_name_for_subnet, translate_batch

log = logging.getLogger("blueflow")

KFLOW_INT_COLUMNS = ("timestamp", "src_addr", "dst_addr", "src_port", "dst_port", "protocol", "in_bytes",
                     "in_pkts", "out_bytes", "out_pkts")
CUSTOMS_PER_FLOW = 19
METADATA_WAIT_S = 10.0
OUTCOMES_WAIT_S = 120.0


class TransientError(Exception):
    """A failure that goes away by itself (COS unreachable, throttled, 5xx): retry, never quarantine."""


def _now_ms() -> int:
    return int(time.time() * 1000)


AUTH_CODES = ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "401")


def _cos_problem(exc: Exception) -> tuple[bool, str]:
    """(looks like a credentials problem, words) for a failed COS call. Every COS failure is retried:
    a wrong key or a throttled endpoint must delay objects, never quarantine them."""
    code = str(getattr(exc, "code", ""))
    auth = code in AUTH_CODES or "token" in code.lower() or "credential" in code.lower()
    return auth, str(exc)


class Pipeline:
    """Codecs, clients and state shared by the agents of one worker process."""

    def __init__(self, app, topics, runtime):
        self.app = app
        self.topics = topics
        self.rt = runtime
        self.settings = runtime.settings
        self.codec_ref = Codec("object_ref")
        self.codec_flows = Codec("flow_batch")
        self.codec_kflow = Codec("kflow_batch")
        self.codec_dead = Codec("deadletter")
        self.codec_ledger = Codec("ledger")
        self.codec_meta = Codec("vpc_metadata")
        self.codec_progress = Codec("progress")
        self.metadata = MetadataFollower(self.settings, self.codec_meta)
        self.outcomes = OutcomeStore(window_s=self.settings.dedup_window)
        self.shared_progress = ProgressStore()
        self.outcome_follower = OutcomeFollower(self.settings, self.codec_ledger, self.codec_dead,
                                                self.codec_progress, self.outcomes, self.shared_progress)
        self.parsing: dict[str, tuple[str, float]] = {}  # key -> (etag, parsed at) for objects in flight
        self.progress: dict[str, dict] = {}  # sink: key -> {etag, chunks, done bitmap, chf, flows}
        self.sync_needed = {"parse": True, "sink": True}  # set on every partition assignment
        self.devices: dict[str, object] = {}
        self.device_locks: dict[str, asyncio.Lock] = {}
        self.metadata_waited = False
        self.export_started = False

    # ---------------------------------------------------------------- shared helpers
    async def send(self, topic, key: str, value: bytes) -> None:
        """Send and wait until the broker has the message (Faust's send only enqueues)."""
        future = await topic.send(key=key.encode(), value=value, force=True)
        await future

    async def deadletter(self, ref: dict, stage: str, reason: str) -> None:
        reason = self.rt.scrub(reason)
        record = {"bucket": ref.get("bucket", self.settings.bucket_name), "key": ref.get("key", ""),
                  "etag": ref.get("etag", ""), "stage": stage, "reason": reason, "at": _now_ms(),
                  "size": int(ref.get("size", 0) or 0)}
        await self.send(self.topics.deadletter, record["key"], self.codec_dead.encode(record))
        if record["key"] and record["etag"]:
            self.outcomes.record(record["key"], record["etag"], QUARANTINED)
        self.parsing.pop(record["key"], None)
        metrics.DEADLETTERED.labels(stage=stage).inc()
        log.error("quarantined object %r at stage %s: %s (the object stays in the bucket)", record["key"], stage,
                  reason)

    async def pause(self, delay_s: float) -> None:
        """Sleep between retries; if the worker is asked to stop meanwhile, leave at once WITHOUT acking.

        Faust waits for the current event before it stops, and acks it when the agent returns or raises, so
        neither is allowed here: the process exits like a crash (nothing committed past the unfinished
        message), and the worker that takes over the partition sends it again. Nothing is lost."""
        deadline = time.monotonic() + delay_s
        while True:
            if self.app.should_stop or getattr(self.app, "_blueflow_stopping", False):
                log.warning("stopping while a message is still being retried: exiting without committing it; "
                            "the next worker of this partition will process it again")
                logging.shutdown()
                os._exit(0)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(0.5, remaining))

    async def retry_forever(self, what: str, fn, *args):
        """Run a blocking call until it stops raising TransientError-like failures."""
        attempt = 0
        while True:
            try:
                result = await self.rt.run_sync(fn, *args)
                self.rt.health.ok(what)
                return result
            except TransientError as exc:
                attempt += 1
                delay = min(30.0, 0.5 * 2 ** min(attempt, 6))
                self.rt.health.failing(what, self.rt.scrub(str(exc)))  # /healthz fails if it lasts
                log.warning("%s failed (%s); retry %d in %.1fs", what, self.rt.scrub(str(exc)), attempt, delay)
                await self.pause(delay)

    def note_cos_failure(self, exc: Exception) -> None:
        auth, words = _cos_problem(exc)
        if auth:
            self.rt.health.fatal = (f"COS rejected the credentials ({self.rt.scrub(words)}); check IBM_COS_API_KEY / "
                                    "IBM_SERVICE_INSTANCE or the HMAC keys")

    async def sync_outcomes(self, stage: str) -> None:
        """After a (re)assignment, read the ledger and dead letters up to now before the first decision:
        objects another worker finished moments ago must not be sent again."""
        if not self.sync_needed[stage]:
            return
        synced = await self.rt.run_sync(self.outcome_follower.follower.sync, OUTCOMES_WAIT_S)
        if not synced:
            log.warning("%s: outcomes of other workers could not be read in %ss; continuing (duplicates possible)",
                        stage, OUTCOMES_WAIT_S)
        self.sync_needed[stage] = False

    # ---------------------------------------------------------------- leader: poll
    def list_bucket(self):
        from connectors.cos import list_objects

        try:
            listing = list(list_objects(self.rt.cos, self.settings.bucket_name, self.settings.cos_prefix))
        except Exception as exc:
            metrics.COS_OPERATIONS.labels(operation="list", result="error").inc()
            self.note_cos_failure(exc)
            raise TransientError(f"listing bucket {self.settings.bucket_name!r} failed: {exc}") from None
        if self.rt.health.fatal.startswith("COS"):
            self.rt.health.fatal = ""
        metrics.COS_OPERATIONS.labels(operation="list", result="ok").inc()
        return listing

    async def poll_loop(self) -> None:
        ledger = PublishLedger(self.settings.stuck_after)
        while True:
            try:
                leader = self.app.is_leader()
                metrics.IS_LEADER.set(1 if leader else 0)
                if not leader:
                    ledger.clear()
                    await asyncio.sleep(1.0)
                    continue
                listing = await self.rt.run_sync(self.list_bucket)
                metrics.OBJECTS_LISTED.inc(len(listing))
                self.rt.health.pending = bool(listing)
                for item in ledger.due(listing, time.time()):
                    ref = {"bucket": self.settings.bucket_name, "key": item.key, "etag": item.etag.strip('"'),
                           "size": item.size, "last_modified": item.last_modified_ms, "published_at": _now_ms(),
                           "republish": item.republish}
                    await self.send(self.topics.objects, item.key, self.codec_ref.encode(ref))
                    ledger.mark_published(item, time.time())
                    metrics.OBJECTS_PUBLISHED.labels(reason="stuck" if item.republish else "new").inc()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("poller: %s", self.rt.scrub(str(exc)))
            await asyncio.sleep(self.settings.poll_interval)

    # ---------------------------------------------------------------- leader: metadata + heartbeat
    async def metadata_loop(self) -> None:
        last_fetch = 0.0
        while True:
            try:
                if self.app.is_leader() and time.monotonic() - last_fetch >= self.settings.metadata_interval:
                    last_fetch = time.monotonic()
                    snapshots, problems = await self.rt.run_sync(fetch_snapshots, self.settings)
                    for problem in problems:
                        log.warning("metadata: %s; enrichment falls back to ids from the object keys",
                                    self.rt.scrub(problem))
                    for snapshot in snapshots:
                        import orjson

                        record = {"region": snapshot["region"], "fetched_at": float(snapshot.get("fetched_at", 0)),
                                  "json": orjson.dumps(snapshot).decode()}
                        await self.send(self.topics.vpc_metadata, snapshot["region"], self.codec_meta.encode(record))
                elif not self.app.is_leader():
                    last_fetch = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("metadata: refresh failed: %s", self.rt.scrub(str(exc)))
            await asyncio.sleep(1.0)

    async def heartbeat_loop(self) -> None:
        last = float("-inf")
        while True:
            await asyncio.sleep(1.0)
            if self.settings.dry_run or not self.settings.export_id or not self.app.is_leader():
                continue
            if time.monotonic() - last < self.settings.heartbeat_interval:
                continue  # START at once, then one status per interval (also while Kentik refuses it)
            last = time.monotonic()
            health = self.rt.health
            if not self.export_started:
                status, message = "START", "blueflow worker started"
            elif health.fatal:
                status, message = "ERROR", health.fatal
            else:
                status = "OK"
                message = (f"delivered {int(metrics.counter_value(metrics.CHF_DELIVERED))} flows, deleted "
                           f"{int(metrics.counter_value(metrics.OBJECTS_DELETED))} objects, quarantined "
                           f"{int(metrics.counter_value(metrics.DEADLETTERED))}")
            try:
                await self.rt.run_sync(self.rt.kentik.heartbeat, self.settings.export_id, status, message)
                self.export_started = True
            except Exception as exc:
                log.warning("heartbeat: export status %s not sent: %s", status, self.rt.scrub(str(exc)))

    async def progress_log_loop(self, every_s: float = 30.0) -> None:
        """One INFO line per interval with what this worker did since the last one (per-object lines are DEBUG)."""
        from streams.web import progress_counts

        last = progress_counts()
        while True:
            await asyncio.sleep(every_s)
            now = progress_counts()
            delta = {k: now[k] - last.get(k, 0) for k in now}
            if any(delta.values()):
                log.info("progress (last %.0fs): %d objects parsed, %d flows, %d kflow records accepted by Kentik, "
                         "%d objects completed, %d deleted, %d quarantined, %d skipped as already done",
                         every_s, delta["objects_parsed"], delta["flows_parsed"], delta["chf_delivered"],
                         delta["objects_completed"], delta["objects_deleted"], delta["deadlettered"],
                         delta["objects_skipped"])
            last = now

    # ---------------------------------------------------------------- parse
    def download_and_parse(self, ref: dict):
        """Blocking: stream the object through the parser. Returns the FlowDocument or None if it vanished."""
        from connectors.cos import open_object

        key = ref["key"]
        parse_object_key(key)  # unknown layouts are quarantined before any download
        try:
            chunks = open_object(self.rt.cos, ref["bucket"], key)
        except Exception as exc:
            metrics.COS_OPERATIONS.labels(operation="get", result="error").inc()
            self.note_cos_failure(exc)
            raise TransientError(f"download of {key!r} failed: {exc}") from None
        if chunks is None:
            metrics.COS_OPERATIONS.labels(operation="get", result="vanished").inc()
            return None
        failure: list[Exception] = []

        def guarded():
            try:
                yield from chunks
            except Exception as exc:  # a broken download is transient, never a bad object
                failure.append(exc)
                raise

        try:
            doc = parse_object_bytes(guarded())
        except FlowLogError:
            if failure:
                metrics.COS_OPERATIONS.labels(operation="get", result="error").inc()
                raise TransientError(f"download of {key!r} broke off: {failure[0]}") from None
            raise
        except Exception as exc:
            if failure:
                metrics.COS_OPERATIONS.labels(operation="get", result="error").inc()
                raise TransientError(f"download of {key!r} broke off: {failure[0]}") from None
            raise FlowLogError("parse", f"unexpected parser failure: {exc}") from None
        metrics.COS_OPERATIONS.labels(operation="get", result="ok").inc()
        return doc

    def encode_flow_chunks(self, ref: dict, doc) -> list[bytes]:
        header = doc.header
        chunks = list(iter_chunks(doc, self.settings.chunk_flows)) or [None]
        total = len(chunks)
        out = []
        for number, columns in enumerate(chunks):
            count = len(columns["direction"]) if columns else 0
            record = {"bucket": ref["bucket"], "key": ref["key"], "etag": ref["etag"], "size": ref["size"],
                      "last_modified": ref["last_modified"], "header": header, "chunk": number, "chunks": total,
                      "flow_count": count, "columns": columns or {}}
            out.append(self.codec_flows.encode(record))
        return out

    async def handle_object(self, raw: bytes, event_key: bytes | None) -> None:
        started = time.perf_counter()
        ref = await self.decode_or_quarantine(self.codec_ref, raw, event_key, "objects")
        if ref is None:
            return
        key, etag = ref["key"], ref["etag"]
        await self.sync_outcomes("parse")
        outcome = None if ref.get("force") else self.outcomes.outcome(key, etag)
        if outcome is not None:
            metrics.OBJECTS_SKIPPED.labels(reason=f"already_{outcome}").inc()
            return
        in_flight = self.parsing.get(key)
        if in_flight and in_flight[0] == etag and not ref.get("force"):
            if not ref.get("republish"):
                metrics.OBJECTS_SKIPPED.labels(reason="in_flight").inc()
                return
            log.info("parse: object %r still in the bucket long after it was parsed; parsing it again "
                     "(chunks already accepted are not sent again)", key)
        try:
            doc = await self.retry_forever(f"download of {key!r}", self.download_and_parse, ref)
        except FlowLogError as exc:
            await self.deadletter(ref, exc.stage, exc.reason)
            return
        if doc is None:
            metrics.OBJECTS_SKIPPED.labels(reason="vanished").inc()
            log.info("parse: object %r vanished between listing and download (finished elsewhere)", key)
            return
        metrics.OBJECTS_PARSED.inc()
        metrics.FLOWS_PARSED.inc(doc.flow_count)
        if self.settings.dry_run:
            self.parsing[key] = (etag, time.time())
            log.info("parse: dry run: %r parsed, %d flows", key, doc.flow_count)
            return
        messages = await self.rt.run_sync(self.encode_flow_chunks, ref, doc)
        for message in messages:
            await self.send(self.topics.flows, key, message)
        self.parsing[key] = (etag, time.time())
        self.rt.health.progressed()
        metrics.STAGE_SECONDS.labels(stage="parse").observe(time.perf_counter() - started)

    # ---------------------------------------------------------------- enrich
    def translate(self, batch: dict) -> tuple[bytes, int]:
        key_info = parse_object_key(batch["key"])
        index = self.metadata.index
        kflow = translate_batch(key_info, batch["header"], batch["columns"], index) if batch["flow_count"] else None
        subnet = index.subnet_info(key_info.subnet_id) if index is not None else None
        record = {"bucket": batch["bucket"], "key": batch["key"], "etag": batch["etag"], "size": batch["size"],
                  "last_modified": batch["last_modified"], "device_name": device_name_for_subnet(key_info.subnet_id),
                  "subnet_id": key_info.subnet_id, "region": key_info.region,
                  "zone": (subnet.zone if subnet is not None and subnet.zone else key_info.subnet_zone),
                  "chunk": batch["chunk"], "chunks": batch["chunks"], "source_flows": batch["flow_count"],
                  "replay": bool(batch.get("replay")),
                  "flow_count": 0, "strings": [], "custom_idx": []}
        for column in KFLOW_INT_COLUMNS:
            record[column] = []
        if kflow is not None:
            record.update(kflow)
        return self.codec_kflow.encode(record), record["flow_count"]

    async def decode_or_quarantine(self, codec, raw: bytes, event_key: bytes | None, topic: str) -> dict | None:
        """The decoded record, or None after dead-lettering a message no reader can decode."""
        try:
            return await self.rt.run_sync(codec.decode, raw)  # decoding a batch is CPU work: off the loop
        except AvroDecodeError as exc:
            key = (event_key or b"").decode(errors="replace")
            await self.deadletter({"key": key}, "decode", f"{topic} message could not be decoded: {exc}")
            return None

    async def handle_flows(self, raw: bytes, event_key: bytes | None) -> None:
        started = time.perf_counter()
        batch = await self.decode_or_quarantine(self.codec_flows, raw, event_key, "flows")
        if batch is None:
            return
        if not self.metadata_waited:  # once per process: a missing VPC API must not slow every batch
            self.metadata_waited = True
            if not await self.rt.run_sync(self.metadata.wait_ready, METADATA_WAIT_S):
                log.warning("enrich: no VPC metadata after %ss; labelling flows with ids from the object keys "
                            "until it arrives", METADATA_WAIT_S)
        try:
            message, chf = await self.rt.run_sync(self.translate, batch)
        except FlowLogError as exc:
            await self.deadletter(batch, exc.stage, exc.reason)
            return
        except Exception as exc:
            await self.deadletter(batch, "enrich", f"translation failed on chunk {batch['chunk']}: {exc!r}")
            return
        await self.send(self.topics.kflow, batch["key"], message)
        metrics.CHF_TRANSLATED.inc(chf)
        metrics.STAGE_SECONDS.labels(stage="enrich").observe(time.perf_counter() - started)

    # ---------------------------------------------------------------- sink
    async def device_for(self, batch: dict):
        name = batch["device_name"]
        device = self.devices.get(name)
        if device is not None:
            return device
        lock = self.device_locks.setdefault(name, asyncio.Lock())
        async with lock:
            if name in self.devices:
                return self.devices[name]
            attempt = 0
            while True:
                try:
                    device = await self.rt.run_sync(
                        self.rt.kentik.resolve_device, name, plan_id=self.settings.plan_id,
                        export_id=self.settings.export_id, region=batch["region"], zone=batch["zone"],
                        description=f"IBM VPC subnet {batch['subnet_id']} (blueflow)")
                    self.devices[name] = device
                    self.rt.health.ok(f"device {name}")
                    return device
                except Exception as exc:
                    attempt += 1
                    status = getattr(exc, "status", 0)
                    if status in (401, 403):
                        self.rt.health.fatal = (f"Kentik rejected the credentials (HTTP {status}) while resolving "
                                                f"device {name}; fix KENTIK_API_TOKEN / --api_email and restart")
                    delay = min(30.0, 0.5 * 2 ** min(attempt, 6))
                    self.rt.health.failing(f"device {name}", f"not resolved: {self.rt.scrub(str(exc))}")
                    log.warning("sink: device %s not resolved (%s); retry in %.1fs", name,
                                self.rt.scrub(str(exc)), delay)
                    await self.pause(delay)

    def encode_body(self, batch: dict, device, start: int, stop: int) -> bytes:
        from connectors.kflow import encode_packed_chf, frame_body

        if start == 0 and stop == batch["flow_count"]:
            part = batch
        else:
            part = {c: batch[c][start:stop] for c in KFLOW_INT_COLUMNS}
            part["strings"] = batch["strings"]
            part["custom_idx"] = batch["custom_idx"][start * CUSTOMS_PER_FLOW:stop * CUSTOMS_PER_FLOW]
            part["flow_count"] = stop - start
        ids = [device.custom_ids.get(f"STR{i:02d}", 0) for i in range(CUSTOMS_PER_FLOW)]
        return frame_body(encode_packed_chf(part, int(device.id), ids))

    def post_sync(self, device, body: bytes) -> PostResult:
        from connectors.kentik import KentikTransportError

        try:
            return self.rt.kentik.post_flows_result(device, body)
        except KentikTransportError as exc:
            return PostResult(0, None, self.rt.scrub(str(exc)))

    async def handle_kflow(self, raw: bytes, event_key: bytes | None) -> None:
        started = time.perf_counter()
        batch = await self.decode_or_quarantine(self.codec_kflow, raw, event_key, "kflow")
        if batch is None:
            return
        key, etag, chunk, chunks = batch["key"], batch["etag"], batch["chunk"], batch["chunks"]
        if batch.get("replay"):  # `blueflow replay`: send again on purpose; no dedup, no delete, no ledger
            try:
                await self.deliver_batch(batch)
            except BatchRefused as exc:
                await self.deadletter(batch, "sink", f"replayed {exc}")
            metrics.STAGE_SECONDS.labels(stage="sink").observe(time.perf_counter() - started)
            return
        await self.sync_outcomes("sink")
        if self.outcomes.outcome(key, etag) == DELIVERED:
            metrics.CHF_SKIPPED_DUPLICATE.inc(batch["flow_count"])
            return
        state = self.progress.get(key)
        if not state or state.get("etag") != etag or state.get("chunks") != chunks:
            shared = self.shared_progress.get(key, etag)  # another worker may have started this object
            if shared is not None and shared["chunks"] == chunks:
                state = {"etag": etag, "chunks": chunks, "done": sum(1 << c for c in set(shared["done"])),
                         "chf": shared["chf"], "flows": shared["flows"]}
            else:
                state = {"etag": etag, "chunks": chunks, "done": 0, "chf": 0, "flows": 0}
        bit = 1 << chunk
        if state["done"] & bit:
            metrics.CHF_SKIPPED_DUPLICATE.inc(batch["flow_count"])
        else:
            if batch["flow_count"] and not self.settings.dry_run:
                try:
                    await self.deliver_batch(batch)
                except BatchRefused as exc:
                    await self.deadletter(batch, "sink", str(exc))
                    self.progress.pop(key, None)
                    return
            state = dict(state, done=state["done"] | bit, chf=state["chf"] + batch["flow_count"],
                         flows=state["flows"] + batch["source_flows"])
            self.progress[key] = state
            if chunks > 1 and state["done"] != (1 << chunks) - 1:
                await self.record_progress(batch, state)
        if state["done"] == (1 << chunks) - 1:
            await self.complete(batch, state)
        metrics.STAGE_SECONDS.labels(stage="sink").observe(time.perf_counter() - started)

    async def record_progress(self, batch: dict, state: dict) -> None:
        """Tell every worker which chunks of this object Kentik accepted (compacted `progress` topic)."""
        record = {"bucket": batch["bucket"], "key": batch["key"], "etag": batch["etag"], "chunks": state["chunks"],
                  "done": [c for c in range(state["chunks"]) if state["done"] >> c & 1], "flows": state["flows"],
                  "chf": state["chf"], "at": _now_ms()}
        await self.send(self.topics.progress, batch["key"], self.codec_progress.encode(record))

    async def deliver_batch(self, batch: dict) -> None:
        """Get every record of one kflow batch accepted by Kentik (raises BatchRefused for permanent refusals)."""
        device = await self.device_for(batch)
        what = (f"chunk {batch['chunk'] + 1}/{batch['chunks']} of {batch['key']!r} ({batch['flow_count']} flows, "
                f"device {device.name})")

        async def encode(start, stop):
            return await self.rt.run_sync(self.encode_body, batch, device, start, stop)

        async def post(body):
            return await self.rt.run_sync(self.post_sync, device, body)

        try:
            await deliver(encode, post, batch["flow_count"], what=what, health=self.rt.health, sleep=self.pause)
        except BatchRefused as exc:
            raise BatchRefused(exc.status, f"{what}: {exc.detail}") from None
        metrics.CHF_DELIVERED.inc(batch["flow_count"])

    def delete_sync(self, key: str) -> None:
        from connectors.cos import delete_objects

        try:
            errors = delete_objects(self.rt.cos, self.settings.bucket_name, [key])
        except Exception as exc:
            metrics.COS_OPERATIONS.labels(operation="delete", result="error").inc()
            self.note_cos_failure(exc)
            raise TransientError(f"delete of {key!r} failed: {exc}") from None
        problem = errors.get(key) if isinstance(errors, dict) else None
        if problem:
            metrics.COS_OPERATIONS.labels(operation="delete", result="error").inc()
            raise TransientError(f"delete of {key!r} failed: {problem}")
        metrics.COS_OPERATIONS.labels(operation="delete", result="ok").inc()

    async def complete(self, batch: dict, state: dict) -> None:
        """Every chunk was accepted: delete the object (unless kept), then write the ledger record."""
        key = batch["key"]
        deleted = False
        if not (self.settings.keep_objects or self.settings.dry_run):
            await self.retry_forever(f"delete of {key!r}", self.delete_sync, key)
            deleted = True
            metrics.OBJECTS_DELETED.inc()
        record = {"bucket": batch["bucket"], "key": key, "etag": batch["etag"], "flows": state["flows"],
                  "chf": state["chf"], "device_name": batch["device_name"], "delivered_at": _now_ms(),
                  "deleted": deleted}
        await self.send(self.topics.ledger, key, self.codec_ledger.encode(record))
        self.outcomes.record(key, batch["etag"], DELIVERED)
        if state["chunks"] > 1:  # tombstone: the object's progress is no longer needed
            future = await self.topics.progress.send(key=key.encode(), value=None, force=True)
            await future
        self.progress.pop(key, None)
        self.parsing.pop(key, None)
        metrics.OBJECTS_COMPLETED.inc()
        if batch.get("last_modified"):
            metrics.OBJECT_AGE_SECONDS.observe(max(0.0, time.time() - batch["last_modified"] / 1000))
        self.rt.health.progressed()
        log.debug("sink: %r delivered (%d flows, %d kflow records)%s", key, state["flows"], state["chf"],
                 " and deleted" if deleted else "; object kept")


def register(app, topics, runtime) -> Pipeline:
    """Declare the tables, agents, leader loops and HTTP pages of the pipeline on `app`."""
    from streams import web

    pipeline = Pipeline(app, topics, runtime)
    async def guarded(stage: str, event, handler) -> None:
        try:
            await handler()
        except asyncio.CancelledError:
            # Faust cancels agents when it stops and then acks the current event in a `finally`: leaving now
            # would commit a message whose work is unfinished. Exit like a crash instead (nothing committed
            # past it); the worker that takes over processes it again.
            log.warning("%s: stopped in the middle of a message; exiting without acknowledging it", stage)
            logging.shutdown()
            os._exit(0)
        except Exception as exc:  # never let Faust ack-and-skip silently: quarantine with context
            key = (event.key or b"").decode(errors="replace") if isinstance(event.key, bytes) else str(event.key)
            log.exception("%s: unexpected failure on %r", stage, key)
            try:
                await pipeline.deadletter({"key": key}, stage, f"unexpected failure: {exc!r}")
            except Exception:
                log.exception("%s: could not even dead-letter %r", stage, key)
                raise

    @app.agent(topics.objects, concurrency=1, name="parse")
    async def parse_agent(stream):
        async for event in stream.events():
            await guarded("parse", event, lambda: pipeline.handle_object(event.value, event.key))

    @app.agent(topics.flows, concurrency=1, name="enrich")
    async def enrich_agent(stream):
        async for event in stream.events():
            await guarded("enrich", event, lambda: pipeline.handle_flows(event.value, event.key))

    @app.agent(topics.kflow, concurrency=1, name="sink")
    async def sink_agent(stream):
        async for event in stream.events():
            await guarded("sink", event, lambda: pipeline.handle_kflow(event.value, event.key))

    @app.on_partitions_assigned.connect
    async def on_assigned(app, assigned, **kwargs):
        pipeline.sync_needed.update(parse=True, sink=True)

    @app.task
    async def start_followers():
        pipeline.metadata.start()
        pipeline.outcome_follower.start()

    @app.task
    async def poller():
        await pipeline.poll_loop()

    @app.task
    async def metadata_refresher():
        await pipeline.metadata_loop()

    @app.task
    async def heartbeat():
        await pipeline.heartbeat_loop()

    @app.task
    async def progress_log():
        await pipeline.progress_log_loop()

    web.register(app, pipeline)
    return pipeline
