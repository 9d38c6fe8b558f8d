"""A broker-free test driver for the stages (think Kafka Streams' TopologyTestDriver).

The stages are wired from the topology's own table (streams/stages/topology.py `agents`, from
streams/formats/stage_topics.py): `pipe(topic, value, key)` hands a message to the stage that reads that topic,
so a change of the topology changes (or breaks) what the driver runs. The real stage shells (parse, enrich,
sink and finalize) run against in-memory topics (one per topic of the table), an in-memory S3 client that speaks the boto calls connectors.cos makes (including If-Match on GET
and DELETE), and a Kentik client whose answers a test scripts. Every effect is appended to `effects` in
order, so tests can assert what was posted, deleted, ledgered and dead-lettered — and in which order.
"""
from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from types import SimpleNamespace

from ibm_botocore.exceptions import ClientError

from connectors.kentik import Device, PostResult
from streams.state.metadata import MetadataFollower
from streams.state.outcomes import OutcomeStore, ProgressStore
from streams.formats.batches import FlowChunk, KflowChunk
from streams.formats.records import DeadLetter, LedgerEntry, ObjectRef, Progress
from streams.stages.runtime import Health
from streams.config.settings import Settings
from streams.stages.context import Sources
from streams.formats.stage_topics import TOPIC_NAMES
from streams.stages import topology
from streams.stages.failures import Failures
from streams.stages.context import StageContext
from streams.stages.sink.devices import Devices


class _Sent:
    def __await__(self):
        if False:
            yield
        return None


@dataclass
class FakeTopic:
    name: str
    effects: list
    messages: list = field(default_factory=list)

    async def send(self, key: bytes, value: bytes | None, force: bool = False):
        self.messages.append((key, value))
        self.effects.append((self.name, key.decode()))
        return _Sent()


def _client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "op")


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def iter_chunks(self, size: int):
        for i in range(0, len(self.data), size):
            yield self.data[i:i + size]

    def close(self):
        pass


class FakeS3:
    """The S3 calls connectors.cos makes, on a dict key -> (etag, body). `down` makes every call fail (503)."""

    def __init__(self, effects: list):
        self.objects: dict[str, tuple[str, bytes]] = {}
        self.effects = effects
        self.fail_deletes = 0
        self.refuse_keys: dict[str, int] = {}  # key -> how many DeleteObjects calls report it failed
        self.calls: list[str] = []  # every S3 request by kind, to count requests per object
        self.down = False
        self.requests = 0  # S3 calls attempted (also while `down`)

    def __getattribute__(self, name):
        if name in ("head_object", "get_object", "delete_object", "delete_objects", "list_objects_v2",
                    "get_paginator"):
            object.__setattr__(self, "requests", object.__getattribute__(self, "requests") + 1)
            if object.__getattribute__(self, "down"):
                raise _client_error("ServiceUnavailable", 503)
        return object.__getattribute__(self, name)

    def put(self, key: str, body: bytes) -> str:
        etag = hashlib.md5(body).hexdigest()
        self.objects[key] = (etag, body)
        return etag

    def head_object(self, Bucket, Key):
        self.calls.append("head")
        if Key not in self.objects:
            raise _client_error("404", 404)
        etag, body = self.objects[Key]
        return {"ETag": f'"{etag}"', "ContentLength": len(body), "Metadata": {}}

    def get_object(self, Bucket, Key, IfMatch=None):
        self.calls.append("get")
        if Key not in self.objects:
            raise _client_error("NoSuchKey", 404)
        etag, body = self.objects[Key]
        if IfMatch and IfMatch.strip('"') != etag:
            raise _client_error("PreconditionFailed", 412)
        return {"ETag": f'"{etag}"', "ContentLength": len(body), "Metadata": {}, "Body": _Body(body)}

    def list_objects_v2(self, Bucket, Prefix="", MaxKeys=1000, StartAfter="", ContinuationToken=""):
        self.calls.append("list")
        after = ContinuationToken or StartAfter or ""
        keys = sorted(k for k in self.objects if k.startswith(Prefix) and k > after)
        page = keys[:MaxKeys]
        contents = [{"Key": k, "ETag": f'"{self.objects[k][0]}"', "Size": len(self.objects[k][1])} for k in page]
        more = len(keys) > MaxKeys
        return {"Contents": contents, "IsTruncated": more, "NextContinuationToken": page[-1] if more else None}

    def delete_object(self, Bucket, Key, BlueflowIfMatch=None):
        self.calls.append("delete")
        if self.fail_deletes:
            self.fail_deletes -= 1
            raise _client_error("ServiceUnavailable", 503)
        if Key in self.objects and BlueflowIfMatch and BlueflowIfMatch.strip('"') != self.objects[Key][0]:
            raise _client_error("PreconditionFailed", 412)
        self.objects.pop(Key, None)
        self.effects.append(("delete", Key))

    def delete_objects(self, Bucket, Delete):
        """DeleteObjects: `fail_deletes` fails the whole call; keys in `refuse_keys` fail alone."""
        self.calls.append("delete_objects")
        if self.fail_deletes:
            self.fail_deletes -= 1
            raise _client_error("ServiceUnavailable", 503)
        errors = []
        for item in Delete["Objects"]:
            key = item["Key"]
            if self.refuse_keys.get(key, 0) > 0:
                self.refuse_keys[key] -= 1
                errors.append({"Key": key, "Code": "InternalError", "Message": "try again"})
                continue
            if self.objects.pop(key, None) is not None:
                self.effects.append(("delete", key))
        return {"Errors": errors}


class FakeKentik:
    """Kentik's device API and /chf: `answers` is a list of statuses to give, then 200 for ever."""

    def __init__(self, effects: list):
        self.effects = effects
        self.answers: list[int] = []
        self.posts: list[tuple[str, int]] = []
        self.resolved: list[tuple[str, int, int]] = []
        self.beats: list[tuple[int, str]] = []

    def resolve_device(self, name, plan_id, export_id, region, zone, description="", **kind):
        self.resolved.append((name, plan_id, export_id))
        return Device(id=100, name=name, company_id="1", custom_ids={f"STR{i:02d}": 2000 + i for i in range(19)})

    def post_flows_result(self, device, body: bytes) -> PostResult:
        status = self.answers.pop(0) if self.answers else 200
        self.posts.append((device.name, len(body)))
        self.effects.append(("post", status))
        return PostResult(status, None, "scripted")

    def heartbeat(self, export_id, status, message=""):
        self.beats.append((export_id, status))
        return 200


class FakeApp:
    should_stop = False

    def is_leader(self) -> bool:
        return True


class FakeRuntime:
    def __init__(self, settings: Settings, effects: list, cos: FakeS3, kentik: FakeKentik):
        self.settings, self.effects, self.cos, self.kentik = settings, effects, cos, kentik
        self.coses: dict[str, FakeS3] = {}  # several sources: a fake COS and Kentik each, by source name
        self.kentiks: dict[str, FakeKentik] = {}
        self.health = Health()
        self.fetch_pool = ThreadPoolExecutor(settings.fetch_concurrency, thread_name_prefix="driver-fetch")

    async def run_sync(self, fn, *args, **kwargs):
        return fn(*args, **kwargs)

    def cos_client(self, source):
        return self.coses.get(source.name, self.cos)

    def kentik_client(self, source):
        return self.kentiks.get(source.name, self.kentik)

    def scrub(self, text: str) -> str:
        return text


class Driver:
    """One worker's stages on in-memory topics; `other()` makes a second worker on the same bucket/Kentik."""

    def __init__(self, *, cos: FakeS3 | None = None, kentik: FakeKentik | None = None, effects: list | None = None,
                 sources: tuple = (), **settings):
        self.effects = effects if effects is not None else []
        env = {"BLUEFLOW_BUCKET": "flowlogs", "BLUEFLOW_CHUNK_FLOWS": "50", "BLUEFLOW_REGIONS": "us-south"}
        env.update({k: str(v) for k, v in settings.items()})
        self.settings = Settings.from_env(env)
        self.cos = cos or FakeS3(self.effects)
        self.kentik = kentik or FakeKentik(self.effects)
        self.topics = _Topics(self.effects)
        rt = FakeRuntime(self.settings, self.effects, self.cos, self.kentik)
        self.ctx = StageContext(FakeApp(), self.topics, rt, OutcomeStore(3600), ProgressStore(), None,
                                MetadataFollower.__new__(MetadataFollower), devices=Devices(),
                                sync_needed={"parse": False, "sink": False}, metadata_waited=True, pause=_no_pause)
        self.ctx.metadata.indexes, self.ctx.metadata.labels = {}, {}
        self.agents = topology.agents(self.settings.sink)  # the stages as a worker wires them
        if sources:  # several sources: a fake COS and Kentik each (self.coses / self.kentiks by source name)
            self.settings = replace(self.settings, sources=tuple(sources))
            rt.settings = self.settings
            self.coses = rt.coses = {s.name: FakeS3(self.effects) for s in sources}
            self.kentiks = rt.kentiks = {s.name: FakeKentik(self.effects) for s in sources}
            self.ctx.sources = Sources(self.settings)
            self.ctx.failures = Failures(self.ctx.sources, rt.health, rt.scrub)

    def other(self, **settings) -> "Driver":
        return Driver(cos=self.cos, kentik=self.kentik, effects=self.effects, **settings)

    def run(self, coro):
        return asyncio.run(coro)

    # ---------------------------------------------------------------- feeding the stages
    def ref(self, key: str, **extra) -> ObjectRef:
        etag = self.cos.objects[key][0]
        return ObjectRef(bucket="flowlogs", key=key, etag=etag, size=len(self.cos.objects[key][1]), **extra)

    def pipe(self, topic: str, value: bytes, key: bytes | None, guarded: bool = False, held=None) -> None:
        """Hand one message of `topic` to the stage the topology wires to it; `guarded`: through the agent's
        guard, as the worker runs it (an escaped failure is dead-lettered); `held`: the message's HeldAck, for
        a stage that holds its ack (the sink)."""
        readers = [agent for agent in self.agents if agent.source == topic]
        if len(readers) != 1:
            raise LookupError(f"the topology has {len(readers)} stages reading {topic!r}, expected one")
        agent = readers[0]
        extra = (held,) if agent.holds_ack else ()
        if guarded:
            event = SimpleNamespace(key=key, value=value)
            self.run(topology._guarded(self.ctx, agent.name, event, agent.handle, *extra))
        else:
            self.run(agent.handle(self.ctx, value, key, *extra))

    def parse(self, ref: ObjectRef) -> None:
        self.pipe("objects", ref.encode(), ref.key.encode())

    def group(self, keys: list[str]) -> ObjectRef:
        """One `objects` message for the objects `keys` (as the poller publishes a group)."""
        return ObjectRef.of_group([self.ref(key) for key in keys])

    def enrich_all(self) -> None:
        for key, value in self.topics.flows.drain():
            self.pipe("flows", value, key)

    def sink(self, raw: bytes, held=None) -> None:
        self.pipe("kflow", raw, b"k", held=held)

    def kflow_messages(self) -> list[bytes]:
        return [value for _, value in self.topics.kflow.drain()]

    def share_progress_with(self, other: "Driver") -> None:
        """What the outcome follower does: this worker's progress records (and tombstones) and ledger records
        reach the other worker."""
        from streams.state.outcomes import DELIVERED

        for key, value in self.topics.progress.messages:
            if value is not None:
                other.ctx.shared_progress.record(Progress.decode(value))
            else:
                other.ctx.shared_progress.forget(key.decode())
        for entry in self.ledger():
            other.ctx.outcomes.record(entry.key, entry.etag, DELIVERED)

    # ---------------------------------------------------------------- reading the effects
    def ledger(self) -> list[LedgerEntry]:
        return [LedgerEntry.decode(v) for _, v in self.topics.ledger.messages]

    def deadletters(self) -> list[DeadLetter]:
        return [DeadLetter.decode(v) for _, v in self.topics.deadletter.messages]

    def flow_chunks(self) -> list[FlowChunk]:
        return [FlowChunk.decode(v) for _, v in self.topics.flows.messages]

    def kflow_chunks(self, raws: list[bytes]) -> list[KflowChunk]:
        return [KflowChunk.decode(v) for v in raws]


async def _no_pause(delay_s: float) -> None:
    return None


class _Queue(FakeTopic):
    def drain(self) -> list:
        out, self.messages = self.messages, []
        return out


class _Topics:
    def __init__(self, effects: list):
        for name in TOPIC_NAMES:  # as the worker's topics: `vpc-metadata` is `topics.vpc_metadata`
            name = name.replace("-", "_")
            setattr(self, name, _Queue(name, effects))
