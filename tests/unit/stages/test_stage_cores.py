"""Pure stage decisions, table-driven: admission, sink decisions, chunk bookkeeping, finalize plans."""
from __future__ import annotations

import pytest

from streams.outcomes import DELIVERED, QUARANTINED
from streams.records import KflowChunk, ObjectRef, Progress
from streams.stages.finalize import plan
from streams.stages.parse import admit
from streams.stages.sink import Action, ObjectProgress, decide


def ref(**kw) -> ObjectRef:
    return ObjectRef(bucket="b", key="k", etag=kw.pop("etag", "e1"), **kw)


@pytest.mark.parametrize("r, outcome, in_flight, expected", [
    (ref(), None, None, (True, "", False)),
    (ref(), DELIVERED, None, (False, "already_delivered", False)),
    (ref(), QUARANTINED, None, (False, "already_quarantined", False)),
    (ref(etag="e2"), None, ("e1", 0.0), (True, "", False)),  # a new version of an object in flight
    (ref(), None, ("e1", 0.0), (False, "in_flight", False)),
    (ref(republish=True), None, ("e1", 0.0), (True, "", True)),  # stuck: parse again
    (ref(force=True), QUARANTINED, ("e1", 0.0), (True, "", False)),  # operator retry
])
def test_admit(r, outcome, in_flight, expected):
    a = admit(r, outcome, in_flight)
    assert (a.process, a.skip_reason, a.reparse) == expected


def kchunk(chunk: int, chunks: int, etag: str = "e1", replay: bool = False, flows: int = 10) -> KflowChunk:
    return KflowChunk(bucket="b", key="k", etag=etag, size=1, last_modified=0, device_name="d", subnet_id="s",
                      region="r", zone="z", chunk=chunk, chunks=chunks, source_flows=flows, flow_count=flows + 1,
                      replay=replay)


def shared(done, chunks=3, etag="e1") -> Progress:
    return Progress(bucket="b", key="k", etag=etag, chunks=chunks, done=list(done), flows=0, chf=0)


@pytest.mark.parametrize("chunk, outcome, local, shared_rec, action, done", [
    (kchunk(0, 3, replay=True), DELIVERED, None, None, Action.REPLAY, None),
    (kchunk(0, 3), DELIVERED, None, None, Action.SKIP_OBJECT, None),
    (kchunk(0, 3), QUARANTINED, None, None, Action.DELIVER, 0),  # another chunk was refused: still deliver
    (kchunk(1, 3), None, None, None, Action.DELIVER, 0),
    (kchunk(1, 3), None, ObjectProgress("e1", 3, 0b010), None, Action.SKIP_CHUNK, 0b010),
    (kchunk(1, 3), None, ObjectProgress("e0", 3, 0b010), None, Action.DELIVER, 0),  # old version's progress
    (kchunk(1, 3), None, ObjectProgress("e1", 4, 0b010), None, Action.DELIVER, 0),  # re-chunked object
    (kchunk(1, 3), None, None, shared([1, 2]), Action.SKIP_CHUNK, 0b110),  # partition re-assigned mid-object
    (kchunk(0, 3), None, None, shared([1, 2]), Action.DELIVER, 0b110),
    (kchunk(0, 3), None, None, shared([1, 2], chunks=4), Action.DELIVER, 0),
    (kchunk(0, 3), None, None, shared([1, 2], etag="e0"), Action.DELIVER, 0),
])
def test_sink_decide(chunk, outcome, local, shared_rec, action, done):
    d = decide(chunk, outcome, local, shared_rec)
    assert d.action is action
    assert (d.progress.done if d.progress else None) == done


def test_object_is_complete_only_after_every_chunk_in_any_order():
    for order in ([0, 1, 2], [2, 0, 1], [1, 2, 0]):
        p = ObjectProgress("e1", 3)
        for i, c in enumerate(order):
            assert not p.complete
            p = p.accept(kchunk(c, 3))
            assert p.complete is (i == 2)
        assert (p.flows, p.chf, p.done_list()) == (30, 33, [0, 1, 2])


@pytest.mark.parametrize("keep, dry, delete", [(False, False, True), (True, False, False), (False, True, False),
                                               (True, True, False)])
def test_finalize_plan(keep, dry, delete):
    assert plan(keep, dry).delete is delete


@pytest.mark.parametrize("key, safe", [("a/b.gz", True), ("x/stream-id=1\x1b[2J/1.gz", False), ("a\nb", False),
                                        ("a\x07", False), ("région/é.gz", True), ("a\x9bb", False)])
def test_keys_the_delete_xml_cannot_carry_are_recognised(key, safe):
    from connectors.cos import xml_safe

    assert xml_safe(key) is safe
