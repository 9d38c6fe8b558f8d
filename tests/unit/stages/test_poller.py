"""The leader publishes new and changed objects once, and stuck ones again after `stuck_after`."""
from collections import namedtuple
from datetime import datetime, timezone

from streams.stages.poll import PublishLedger

Obj = namedtuple("Obj", "key etag size last_modified")
T0 = int(datetime(2024, 5, 14, 9, 10, tzinfo=timezone.utc).timestamp() * 1000)  # listings give epoch ms


def test_new_objects_are_due_once():
    ledger = PublishLedger(stuck_after_s=600)
    listing = [Obj("a.gz", "e1", 10, T0), Obj("b.gz", "e2", 20, T0)]
    due = ledger.due(listing, now=1000)
    assert [(d.key, d.republish) for d in due] == [("a.gz", False), ("b.gz", False)]
    assert due[0].last_modified_ms == T0 == 1715677800000
    for d in due:
        ledger.mark_published(d, 1000)
    assert ledger.due(listing, now=1001) == []


def test_changed_etag_is_due_again_as_new():
    ledger = PublishLedger(stuck_after_s=600)
    (d,) = ledger.due([Obj("a.gz", "e1", 10, T0)], now=0)
    ledger.mark_published(d, 0)
    (again,) = ledger.due([Obj("a.gz", "e2", 10, T0)], now=1)
    assert (again.etag, again.republish) == ("e2", False)


def test_stuck_object_is_republished_after_the_timeout_only():
    ledger = PublishLedger(stuck_after_s=600)
    (d,) = ledger.due([Obj("a.gz", "e1", 10, T0)], now=0)
    ledger.mark_published(d, 0)
    assert ledger.due([Obj("a.gz", "e1", 10, T0)], now=599) == []
    (stuck,) = ledger.due([Obj("a.gz", "e1", 10, T0)], now=600)
    assert stuck.republish is True


def test_objects_gone_from_the_bucket_are_forgotten():
    ledger = PublishLedger(stuck_after_s=600)
    for d in ledger.due([Obj("a.gz", "e1", 1, T0), Obj("b.gz", "e1", 1, T0)], now=0):
        ledger.mark_published(d, 0)
    ledger.due([Obj("b.gz", "e1", 1, T0)], now=1)
    assert len(ledger) == 1
