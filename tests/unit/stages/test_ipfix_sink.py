"""The ipfix sink stage end to end without a broker (devstack/harness/driver.py) against loopback collectors:
every record of every chunk reaches every collector before the one delete; a collector that is down holds the
object (nothing deleted) until it comes back; a chunk IPFIX cannot carry is quarantined, the object kept."""
from __future__ import annotations

import random
import socket
import zlib

import pytest

from devstack.synth import generator
from devstack.synth.worldgen import build_world
from streams.formats.kflow import ipfix_template
from streams.observe import metrics
from streams.stages import topology
from streams.formats.records import ObjectRef
from streams.config.settings import Settings, missing_for_worker
from streams.config.values import SettingError
from streams.stages.sink import ipfix_sink, sink
from tests.unit.formats.ipfix_decoder import decode, decode_stream
from devstack.harness.driver import Driver
from tests.unit.connectors.test_ipfix_export import TcpCollector, wait_for


@pytest.fixture(scope="module")
def big_object():
    objs = generator.generate_objects(build_world(seed=1), objects=40, seed=3, mean_flows=140, empty_share=0.0)
    return max(objs, key=lambda o: o.flow_count)


def parsed(d: Driver, obj) -> list[bytes]:
    d.cos.put(obj.key, obj.body)
    d.parse(d.ref(obj.key))
    d.enrich_all()
    return d.kflow_messages()


def export(d: Driver, raw: bytes) -> None:
    d.sink(raw)


def udp_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.settimeout(0.5)
    return sock


def drain(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(65535))
        except socket.timeout:
            return out


def counted(collector: str) -> tuple:
    """This process's IPFIX metrics of one collector, and its totals (records handed over; Kentik's count)."""
    v = metrics.counter_value
    return (v(metrics.IPFIX_RECORDS, collector=collector), v(metrics.IPFIX_DATAGRAMS, collector=collector),
            v(metrics.IPFIX_BYTES, collector=collector), v(metrics.IPFIX_SEND_ERRORS, collector=collector),
            metrics.IPFIX_PACE.labels(collector=collector)._value.get())


def test_every_record_reaches_every_udp_collector_before_the_one_delete(big_object):
    a, b = udp_socket(), udp_socket()
    names = [f"127.0.0.1:{s.getsockname()[1]}" for s in (a, b)]
    d = Driver(BLUEFLOW_SINK="ipfix", BLUEFLOW_IPFIX_COLLECTORS=",".join(names), BLUEFLOW_IPFIX_RATE="5000")
    exported, kentik = metrics.counter_value(metrics.IPFIX_EXPORTED), metrics.counter_value(metrics.CHF_DELIVERED)
    raws = parsed(d, big_object)
    chunks = d.kflow_chunks(raws)
    assert len(raws) >= 4
    shuffled = raws + raws[:2]
    random.Random(5).shuffle(shuffled)
    complete_at = max(shuffled.index(raw) for raw in raws)  # the first moment every chunk was seen
    for raw in shuffled[:complete_at]:
        export(d, raw)
    assert big_object.key in d.cos.objects and not d.ledger()
    for raw in shuffled[complete_at:]:
        export(d, raw)
    assert big_object.key not in d.cos.objects and [e[0] for e in d.effects if e[0] in ("delete", "ledger")] == [
        "delete", "ledger"]
    [entry] = d.ledger()
    assert (entry.flows, entry.chf, entry.deleted) == (big_object.flow_count, big_object.chf_count, True)
    domain = zlib.crc32(chunks[0].subnet_id.encode())
    # handed over once per record (not per collector); nothing counted as "accepted by Kentik"
    assert metrics.counter_value(metrics.IPFIX_EXPORTED) - exported == big_object.chf_count
    assert metrics.counter_value(metrics.CHF_DELIVERED) == kentik
    for sock, name in zip((a, b), names):
        templates: dict = {}
        datagrams = drain(sock)
        messages = [decode(m, templates) for m in datagrams]
        assert counted(name) == (big_object.chf_count, len(datagrams), sum(map(len, datagrams)), 0, 5000)
        data = [m for m in messages if m.records]
        assert messages[0].templates and all(m.domain == domain for m in messages)
        assert sum(len(m.records) for m in data) == big_object.chf_count  # each chunk once, duplicates skipped
        # RFC 7011 §3.1: each Message's sequence number counts the domain's data records sent before it
        assert [m.sequence for m in data] == [sum(len(p.records) for p in data[:i]) for i in range(len(data))]
        pairs = {(r[(0, 8)], r[(0, 12)], r[(0, 7)], r[(0, 11)], r[(0, 1)]) for m in data for r in m.records}
        assert len(pairs) > big_object.chf_count // 2
        sock.close()
    assert not d.kentik.posts


def test_a_collector_that_is_down_holds_the_object_until_it_is_back(big_object):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # bound, not yet listening: connections are refused
    d = Driver(BLUEFLOW_SINK="ipfix", BLUEFLOW_IPFIX_TRANSPORT="tcp",
               BLUEFLOW_IPFIX_COLLECTORS=f"127.0.0.1:{listener.getsockname()[1]}")
    raws = parsed(d, big_object)
    refusals, collector = [], []

    async def pause(delay: float) -> None:
        refusals.append(delay)
        assert big_object.key in d.cos.objects and not d.ledger()  # nothing deleted while it is down
        assert any(step.startswith("sink: ipfix") for step in d.ctx.health.failures)
        if len(refusals) == 3:
            collector.append(TcpCollector(listener))

    d.ctx.pause = pause
    for raw in raws:
        export(d, raw)
    assert len(refusals) == 3 and not any(s.startswith("sink: ipfix") for s in d.ctx.health.failures)
    assert big_object.key not in d.cos.objects and d.ledger()[0].deleted
    stream = collector[0].streams
    wait_for(lambda: stream and sum(len(m.records) for m in decode_stream(bytes(stream[0]))) == big_object.chf_count)
    collector[0].close()


def test_a_chunk_ipfix_cannot_carry_is_quarantined_and_the_object_kept(big_object):
    sock = udp_socket()
    d = Driver(BLUEFLOW_SINK="ipfix", BLUEFLOW_IPFIX_COLLECTORS=f"127.0.0.1:{sock.getsockname()[1]}")
    raws = parsed(d, big_object)
    bad = d.kflow_chunks(raws[:1])[0]
    bad.columns["timestamp"] = bad.columns["timestamp"].copy()  # decoded columns are read-only views
    bad.columns["timestamp"][0] = 2 ** 40  # after 2106: no 4-byte flowStartSeconds holds it
    export(d, bad.encode())
    [letter] = d.deadletters()
    assert letter.key == big_object.key and letter.stage == "sink"
    assert "IPFIX cannot carry" in letter.reason and "flowStartSeconds" in letter.reason
    assert big_object.key in d.cos.objects and not d.ledger()
    sock.close()


def test_domain_setting_and_sink_choice():
    assert ipfix_sink.observation_domain("subnet", "0717-abc") == zlib.crc32(b"0717-abc")
    assert ipfix_sink.observation_domain("42", "0717-abc") == 42
    assert topology.agents("ipfix")[-1].handle is sink.handle is topology.agents()[-1].handle  # one sink stage
    assert "Kentik POST" in topology.agents()[-1].effects
    assert "IPFIX export" in topology.describe(sink_name="ipfix")
    base = {"BLUEFLOW_BUCKET": "b", "BLUEFLOW_COS_ENDPOINT": "e", "BLUEFLOW_COS_HMAC_ACCESS_KEY": "a",
            "BLUEFLOW_COS_HMAC_SECRET_KEY": "s", "BLUEFLOW_REGIONS": "none"}
    ok = Settings.from_env({**base, "BLUEFLOW_SINK": "ipfix", "BLUEFLOW_IPFIX_COLLECTORS": "10.0.0.5:4739"})
    assert missing_for_worker(ok) == []  # no Kentik credentials needed for the ipfix sink
    bad = Settings.from_env({**base, "BLUEFLOW_SINK": "ipfix", "BLUEFLOW_IPFIX_DOMAIN": "per-vpc"})
    assert [p.split(":")[0] for p in missing_for_worker(bad)] == [
        "no IPFIX collector given", "--ipfix_domain must be subnet or a number, not 'per-vpc'"]
    # the sink and the transport are choices of the option table: a bad one stops the settings themselves
    for env, value in (("BLUEFLOW_IPFIX_TRANSPORT", "sctp"), ("BLUEFLOW_SINK", "s3")):
        with pytest.raises(SettingError, match=f"invalid value '{value}' for {env}: expected one of"):
            Settings.from_env({**base, "BLUEFLOW_SINK": "ipfix", env: value})


def test_a_group_of_objects_is_exported_per_object_and_deleted_in_one_batch():
    """Object groups: one kflow message spans several objects; each object's rows are handed over on their own
    (its own observation point), then the objects are deleted together; no Kentik request is made."""
    objs = generator.generate_objects(build_world(seed=1), objects=6, seed=4, mean_flows=20, empty_share=0.0)
    sock = udp_socket()
    d = Driver(BLUEFLOW_SINK="ipfix", BLUEFLOW_IPFIX_COLLECTORS=f"127.0.0.1:{sock.getsockname()[1]}",
               BLUEFLOW_CHUNK_FLOWS="2000")
    for obj in objs:
        d.cos.put(obj.key, obj.body)
    d.parse(d.group([o.key for o in objs]))
    d.enrich_all()
    raws = d.kflow_messages()
    assert len(raws) == 1 and len(d.kflow_chunks(raws)[0].parts) == len(objs)
    export(d, raws[0])
    assert not d.cos.objects and {e.key for e in d.ledger()} == {o.key for o in objs}
    assert all(e.deleted for e in d.ledger()) and d.cos.calls.count("delete_objects") == 1
    templates: dict = {}
    data = [m for m in (decode(m, templates) for m in drain(sock)) if m.records]
    assert sum(len(m.records) for m in data) == sum(o.chf_count for o in objs)
    sock.close()
    assert not d.kentik.posts


def test_each_source_goes_to_its_own_sink_kentik_or_its_ipfix_collectors():
    from streams.config.sources import Source

    objs = generator.generate_objects(build_world(seed=1), objects=6, seed=8, mean_flows=60, empty_share=0.0)
    to_kentik, to_ipfix = objs[0], objs[1]
    sock = udp_socket()
    k = Source("to-kentik", "bucket-k", endpoint="k.example", hmac_access_key="ak", hmac_secret_key="as",
               kentik_email="k@x", kentik_token="tk", plan_id=11, sink="kentik")
    i = Source("to-ipfix", "bucket-i", endpoint="i.example", hmac_access_key="ik", hmac_secret_key="is",
               sink="ipfix", ipfix_collectors=f"127.0.0.1:{sock.getsockname()[1]}")
    d = Driver(sources=(k, i))
    for source, obj in ((k, to_kentik), (i, to_ipfix)):
        d.coses[source.name].put(obj.key, obj.body)
        etag, body = d.coses[source.name].objects[obj.key]
        d.parse(ObjectRef(bucket=source.bucket, key=obj.key, etag=etag, size=len(body), source=source.name))
    d.enrich_all()
    for raw in d.kflow_messages():
        d.sink(raw)

    assert not d.coses["to-kentik"].objects and not d.coses["to-ipfix"].objects  # both delivered, both deleted
    assert sum(n for _, n in d.kentiks["to-kentik"].posts) > 0 and not d.kentiks["to-ipfix"].posts
    templates: dict = {}
    records = [r for m in drain(sock) for r in decode(m, templates).records]
    assert len(records) == to_ipfix.chf_count  # every record of the IPFIX source's object, none of the other's
    assert {(e.source, e.key, e.chf) for e in d.ledger()} == {("to-kentik", to_kentik.key, to_kentik.chf_count),
                                                              ("to-ipfix", to_ipfix.key, to_ipfix.chf_count)}
    sock.close()


def test_only_sources_exporting_to_kentik_send_their_exports_status():
    import asyncio

    from streams.config.sources import Source
    from streams.stages import leader

    k = Source("to-kentik", "bucket-k", endpoint="k.example", kentik_token="tk", export_id=101, sink="kentik")
    i = Source("to-ipfix", "bucket-i", endpoint="i.example", export_id=202, sink="ipfix",
               ipfix_collectors="127.0.0.1:4739")  # an export id inherited from the flags: still no heartbeat
    d = Driver(sources=(k, i), BLUEFLOW_HEARTBEAT_INTERVAL="1")

    async def run():
        try:
            await asyncio.wait_for(leader.heartbeat_loop(d.ctx), 1.5)
        except asyncio.TimeoutError:
            pass

    d.run(run())
    assert d.kentiks["to-kentik"].beats == [(101, "START")] and d.kentiks["to-ipfix"].beats == []


def test_kentik_device_ids_ride_in_every_record_for_kproxy(big_object):
    """--ipfix_kentik_device: the template gains observationPointId (IE 138) and every record carries
    (company id & 0xFFFF) << 32 | device id, as ktranslate's IPFIX output packs them."""
    sock = udp_socket()
    d = Driver(BLUEFLOW_SINK="ipfix", BLUEFLOW_IPFIX_COLLECTORS=f"127.0.0.1:{sock.getsockname()[1]}",
               BLUEFLOW_IPFIX_KENTIK_DEVICE="70123:4567")
    for raw in parsed(d, big_object):
        export(d, raw)
    templates: dict = {}
    messages = [decode(m, templates) for m in drain(sock)]
    [fields] = {tuple(f) for m in messages for f in m.templates.values()}
    assert (138, 8, 0) in fields and len(fields) == len(ipfix_template.TEMPLATE_FIELDS) + 1
    points = {r[(0, 138)] for m in messages for r in m.records}
    assert points == {(70123 & 0xFFFF) << 32 | 4567} and sum(len(m.records) for m in messages) == big_object.chf_count
    sock.close()
    base = {"BLUEFLOW_BUCKET": "b", "BLUEFLOW_COS_ENDPOINT": "e", "BLUEFLOW_COS_HMAC_ACCESS_KEY": "a",
            "BLUEFLOW_COS_HMAC_SECRET_KEY": "s", "BLUEFLOW_SINK": "ipfix", "BLUEFLOW_IPFIX_COLLECTORS": "h:4739", "BLUEFLOW_REGIONS": "none"}
    for bad in ("4567", "acme:1", "1:99999999999"):
        problems = missing_for_worker(Settings.from_env({**base, "BLUEFLOW_IPFIX_KENTIK_DEVICE": bad}))
        assert len(problems) == 1 and ("ipfix_kentik_device" in problems[0] or "do not fit" in problems[0]), problems
