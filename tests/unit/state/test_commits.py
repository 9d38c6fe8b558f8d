"""A worker never commits past a message it started and has not acked (streams/state/commits.py): Faust took a
head one past the committed offset for no gap, and looked at no head at all when the committed offset was
unknown, so a message whose ack a delete batch held could be committed past and, once its batch was dropped
in a rebalance, never read again."""
from collections import defaultdict
from types import SimpleNamespace

import pytest
from intervaltree import IntervalTree

from streams.state.commits import Unfinished, commit_point, install


@pytest.mark.parametrize("acked, committed, unfinished, expected", [
    ([18, 19, 20], 18, None, 21),  # a run from the committed offset
    ([19, 20], 18, None, None),  # 18 not acked: Faust committed 21 here
    ([18, 19, 21, 22], 18, None, 20),  # up to the first missing offset
    ([18, 19, 20, 21], 18, 20, 20),  # never past an unfinished one (20 acked by an old message)
    ([1, 2, 3], None, 0, None),  # never committed, its first message held: nothing (Faust committed 4)
    ([5, 6, 7], None, None, 8),  # never committed, nothing held: the run
    ([5, 7], None, 6, 6),
    ([], 3, None, None),
])
def test_the_commit_point_never_passes_a_message_not_acked(acked, committed, unfinished, expected):
    assert commit_point(acked, committed, unfinished) == expected


def test_unfinished_offsets_per_partition_until_acked_or_revoked():
    u = Unfinished()
    u.start("p0", 18)
    u.start("p0", 19)
    u.start("p1", 4)
    u.done("p0", 18)
    assert u.lowest("p0") == 19 and u.lowest("p1") == 4 and u.lowest("p2") is None
    u.forget(["p0"])
    assert u.lowest("p0") is None and u.lowest("p1") == 4


def test_faust_consumer_commits_by_the_commit_point():
    """The installed `_new_offset` on Faust's own bookkeeping (acked list and index, gaps, committed)."""
    from faust.transport.consumer import Consumer

    unfinished = Unfinished()
    original = Consumer._new_offset
    try:
        install(unfinished)
        state = SimpleNamespace(_acked=defaultdict(list), _acked_index=defaultdict(set), _gap=defaultdict(IntervalTree),
                                _committed_offset=defaultdict(lambda: None))
        tp = "kflow-0"
        state._committed_offset[tp] = 18
        unfinished.start(tp, 18)  # held by a delete batch
        state._acked[tp].extend([19, 20])
        state._acked_index[tp].update([19, 20])
        assert Consumer._new_offset(state, tp) is None  # Faust's own rule: 21
        unfinished.done(tp, 18)
        state._acked[tp].append(18)
        state._acked_index[tp].add(18)
        state._gap[tp].addi(21, 23)  # offsets Kafka never delivers
        state._acked[tp].append(23)
        assert Consumer._new_offset(state, tp) == 24
        assert state._acked[tp] == [] and state._acked_index[tp] == set()
    finally:
        Consumer._new_offset = original
