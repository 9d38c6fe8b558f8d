"""The outcome store behind "never twice": exact key + ETag, bounded by a time window."""
from streams.state.outcomes import DELIVERED, QUARANTINED, OutcomeStore, ProgressStore
from streams.formats.records import Progress


def test_outcome_is_per_key_and_etag():
    store = OutcomeStore(window_s=3600)
    store.record("a.gz", "e1", DELIVERED, at_s=1000)
    assert store.outcome("a.gz", "e1") == DELIVERED
    assert store.outcome("a.gz", "e2") is None  # new content under the same key is new work
    assert store.outcome("b.gz", "e1") is None


def test_a_late_quarantine_does_not_hide_a_delivery_of_the_same_content():
    store = OutcomeStore(window_s=3600)
    store.record("a.gz", "e1", DELIVERED, at_s=1000)
    store.record("a.gz", "e1", QUARANTINED, at_s=1001)
    assert store.outcome("a.gz", "e1") == DELIVERED
    store.record("a.gz", "e2", QUARANTINED, at_s=1002)
    assert store.outcome("a.gz", "e2") == QUARANTINED


def test_entries_older_than_the_window_are_forgotten():
    store = OutcomeStore(window_s=100)
    store.record("old.gz", "e", DELIVERED, at_s=0)
    store.record("new.gz", "e", DELIVERED, at_s=10_000)  # far later: triggers a prune
    assert store.outcome("old.gz", "e") is None and store.outcome("new.gz", "e") == DELIVERED
    assert len(store) == 1


def test_progress_is_found_only_for_the_same_etag_and_forgotten_when_done():
    progress = ProgressStore()
    progress.record(Progress(bucket="b", key="a.gz", etag="e1", chunks=3, done=[0, 2], flows=10, chf=18, at=0))
    assert progress.get("a.gz", "e1").done == [0, 2]
    assert progress.get("a.gz", "e2") is None
    progress.forget("a.gz")
    assert progress.get("a.gz", "e1") is None
