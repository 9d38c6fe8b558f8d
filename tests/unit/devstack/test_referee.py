"""The referee tells pending (object still in the bucket, not delivered yet) from lost (object gone, flows
missing): a run that timed out under load must not report its waiting objects as lost."""
from __future__ import annotations

import pytest

from devstack.synth import generator
from devstack.referee import compare, owed_records
from devstack.synth.worldgen import build_world

FIELDS = ("device_name", "src_addr", "dst_addr", "src_port", "dst_port", "protocol", "in_bytes", "in_pkts",
          "out_bytes", "out_pkts", "timestamp")


@pytest.fixture(scope="module")
def objects():
    world = build_world(seed=1)
    objs = [o for o in generator.generate_objects(world, objects=12, seed=3, mean_flows=8, empty_share=0)
            if o.kind == "good"]
    assert len(objs) >= 6
    return objs


def accepted(objs, *, times: int = 1) -> list[dict]:
    """What the Kentik stand-in would list after accepting every record of `objs` `times` times."""
    return [dict(zip(FIELDS, record), received_at=1.0) for obj in objs for record in owed_records(obj)] * times


def test_missing_records_of_objects_still_in_the_bucket_are_pending_not_lost(objects):
    done, waiting = objects[:4], objects[4:]
    verdict = compare(objects, accepted(done), in_bucket={o.key for o in waiting})
    waiting_owed = sum(len(owed_records(o)) for o in waiting)
    assert (verdict.lost, verdict.pending) == (0, waiting_owed)
    assert verdict.pending_objects == sorted(o.key for o in waiting) and verdict.lost_objects == []
    assert verdict.owed == verdict.accepted + waiting_owed


def test_missing_records_of_objects_gone_from_the_bucket_are_lost(objects):
    gone_unsent, waiting = objects[0], objects[1]
    delivered = [o for o in objects if o not in (gone_unsent, waiting)]
    verdict = compare(objects, accepted(delivered), in_bucket={waiting.key})
    assert verdict.lost == len(owed_records(gone_unsent)) and verdict.lost_objects == [gone_unsent.key]
    assert verdict.pending == len(owed_records(waiting)) and verdict.pending_objects == [waiting.key]


def test_partly_delivered_object_that_is_gone_counts_only_its_missing_records(objects):
    obj = max(objects, key=lambda o: len(owed_records(o)))
    flows = accepted(objects)
    first = next(i for i, f in enumerate(flows) if tuple(f[k] for k in FIELDS) == owed_records(obj)[0])
    del flows[first]
    verdict = compare(objects, flows, in_bucket=set())
    assert (verdict.lost, verdict.pending, verdict.lost_objects) == (1, 0, [obj.key])


def test_without_a_listing_every_missing_record_is_lost_and_duplicates_are_counted(objects):
    verdict = compare(objects, accepted(objects[:2], times=2) + accepted(objects[2:]))
    assert (verdict.lost, verdict.pending, verdict.duplicates) == (0, 0, sum(len(owed_records(o))
                                                                              for o in objects[:2]))
    verdict = compare(objects, accepted(objects[1:]))
    assert verdict.lost == len(owed_records(objects[0])) and verdict.pending == 0
