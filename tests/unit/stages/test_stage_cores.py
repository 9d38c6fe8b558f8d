"""Pure stage decisions, table-driven: admission, sink decisions, chunk bookkeeping, finalize plans."""
from __future__ import annotations

import pytest

from streams.state.outcomes import DELIVERED, QUARANTINED
from streams.formats.batches import KflowPart
from streams.formats.records import ObjectRef, Progress
from streams.stages.finalize.finalize import plan
from streams.stages.parse import admit
from streams.stages.sink.sink import Action, ObjectProgress, decide


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


def kchunk(chunk: int, chunks: int, etag: str = "e1", replay: bool = False, flows: int = 10) -> KflowPart:
    return KflowPart(key="k", etag=etag, size=1, last_modified=0, device_name="d", subnet_id="s", region="r",
                     zone="z", chunk=chunk, chunks=chunks, source_flows=flows, start=0, flow_count=flows + 1,
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
    from connectors.cos_delete import xml_safe

    assert xml_safe(key) is safe


# ------------------------------------------------------------------ groups
from connectors.cos import CosError  # noqa: E402
from connectors.cos_delete import current_etags, xml_safe  # noqa: E402
from streams.stages.enrich import concat_kflow  # noqa: E402
from streams.stages.poll import GROUP_FILL, GZIP_BYTES_PER_FLOW, Due, fair_groups, groups  # noqa: E402


def due(key: str, size: int = 1000) -> Due:
    return Due(key, "e", size, 0, False)


@pytest.mark.parametrize("sizes, max_objects, expected", [
    ([1000] * 5, 50, [5]),
    ([1000] * 5, 2, [2, 2, 1]),
    ([50_000, 50_000, 10_000], 50, [2, 1]),  # 2000 flows × 60 bytes × 0.9 = 108 kB per group
    ([500_000, 1000, 1000], 50, [1, 2]),  # a big object is a group of its own
    ([1000, 500_000, 1000], 50, [1, 1, 1]),
    ([], 50, []),
    ([1000] * 3, 0, [1, 1, 1]),
])
def test_poll_groups(sizes, max_objects, expected):
    items = [due(f"k{i:02d}", size) for i, size in enumerate(sizes)]
    out = groups(list(reversed(items)), max_objects, 2000)
    assert [len(g) for g in out] == expected
    assert [d.key for g in out for d in g] == [d.key for d in items]  # key order: a subnet's objects together
    assert GZIP_BYTES_PER_FLOW * 2000 * GROUP_FILL == 108_000


def test_fair_groups_never_mix_sources_and_interleave_them():
    order = [("a", due("a1")), ("b", due("b1")), ("a", due("a2")), ("b", due("b2")), ("a", due("a3"))]
    out = fair_groups(order, 2, 2000)
    assert [(name, [d.key for d in g]) for name, g in out] == [("a", ["a1", "a2"]), ("b", ["b1", "b2"]),
                                                               ("a", ["a3"])]
    assert fair_groups([], 2, 2000) == []


def block(strings: list[str], idx: list[int], n: int) -> dict:
    from streams.formats.batches import KFLOW_INT_COLUMNS

    return {**{c: list(range(n)) for c in KFLOW_INT_COLUMNS}, "strings": strings, "custom_idx": idx,
            "flow_count": n}


def test_concat_kflow_merges_the_string_dictionaries():
    a = block(["x", "y"], [0, 1] * 1, 1)
    b = block(["y", "z"], [1, 0], 1)
    out = concat_kflow([a, {}, b])
    assert out["strings"] == ["x", "y", "z"]
    assert [out["strings"][i] for i in out["custom_idx"]] == ["x", "y", "z", "y"]
    assert out["timestamp"].tolist() == [0, 0] and out["src_addr"].tolist() == [0, 0]
    assert list(concat_kflow([a])["custom_idx"]) == [0, 1] and concat_kflow([]) == {}


@pytest.mark.parametrize("key, safe", [
    ("a/b/c.gz", True), ("ünïcode/€", True), ("a\x1b[2J/x", False), ("bell\x07", False), ("new\nline", False),
    ("tab\t", False), ("del\x7f", False),
])
def test_xml_safe(key, safe):
    assert xml_safe(key) is safe


class _Lister:
    """A COS stand-in whose listings come in any order it likes (IBM: "non-lexographical order"): `order` maps
    the keys of a listing to the order they are answered in (default: shuffled, a new order per listing)."""

    def __init__(self, keys: list[str], order=None, seed: int = 0):
        import random

        self.keys, self.order, self.rng = list(keys), order, random.Random(seed)
        self.pages, self.heads, self._listings = 0, [], {}

    def list_objects_v2(self, Bucket, Prefix="", MaxKeys=1000, StartAfter="", ContinuationToken=""):
        assert not StartAfter, "the version check must not rely on key order (StartAfter)"
        self.pages += 1
        if not ContinuationToken:
            keys = [k for k in self.keys if k.startswith(Prefix)]
            self.order(keys) if self.order else self.rng.shuffle(keys)
            ContinuationToken = str(len(self._listings))
            self._listings[ContinuationToken] = keys
        keys = self._listings[ContinuationToken]
        page, rest = keys[:MaxKeys], keys[MaxKeys:]
        self._listings[ContinuationToken] = rest
        return {"Contents": [{"Key": k, "ETag": f'"{k}-etag"'} for k in page], "IsTruncated": bool(rest),
                "NextContinuationToken": ContinuationToken if rest else None}

    def head_object(self, Bucket, Key):
        from devstack.harness.driver import _client_error

        self.heads.append(Key)
        if Key not in self.keys:
            raise _client_error("404", 404)
        return {"ETag": f'"{Key}-etag"', "ContentLength": 1, "Metadata": {}}


_FOLDER = [f"p/{i:03d}" for i in range(100)]


@pytest.mark.parametrize("bucket, asked, page, found, pages, heads", [
    (["p/a1", "p/a2", "p/a3", "q/z"], ["p/a1", "p/a3"], 10, ["p/a1", "p/a3"], 1, []),
    # p/a2 was not listed: unknown until a HEAD says it does not exist
    (["p/a1", "p/a3"], ["p/a1", "p/a2", "p/a3"], 10, ["p/a1", "p/a3"], 1, ["p/a2"]),
    (["p/a", "p/a0", "p/b"], ["p/a"], 10, ["p/a"], 0, ["p/a"]),  # one key: one HEAD, no listing
    # keys in different folders: the listing of what they share (the whole bucket here) finds both
    (["p/a", "p/a0", "p/b", "q/x"], ["p/a0", "q/x"], 10, ["p/a0", "q/x"], 1, []),
    # keys of one folder share pages: 4 keys, 5 entries, pages of 2: at most 3 pages (4 // 2 + 1)
    (_FOLDER[:5], _FOLDER[:4], 2, _FOLDER[:4], 3, None),
    # a big folder: the listing stops after the pages its keys could fill; the rest are HEADed
    (_FOLDER, ["p/001", "p/090", "p/091"], 2, ["p/001", "p/090", "p/091"], 2, None),
    (_FOLDER, ["p/010", "p/050", "p/099x"], 2, ["p/010", "p/050"], 2, None),
    # sub-folders: keys a listing of the shared folder did not show are looked for in their own folder
    ([f"r/{d}/{i:02d}" for d in "abc" for i in range(40)], ["r/a/01", "r/a/02", "r/c/05", "r/c/06"], 10,
     ["r/a/01", "r/a/02", "r/c/05", "r/c/06"], 4, None),
])
def test_current_etags_never_reads_meaning_into_key_order(bucket, asked, page, found, pages, heads):
    for seed in range(20):
        lister = _Lister(bucket, seed=seed)
        etags = current_etags(lister, "b", asked, page)
        assert sorted(k for k, v in etags.items() if v is not None) == found
        assert all(etags[k] == f"{k}-etag" for k in found)
        assert sorted(k for k, v in etags.items() if v is None) == sorted(set(asked) - set(bucket))
        assert set(asked) - set(bucket) <= set(lister.heads)  # absent only on a HEAD's word
        assert pages is None or lister.pages <= pages
        assert heads is None or lister.heads == heads
        assert lister.pages + len(lister.heads) <= 2 * len(set(asked))  # never more than a HEAD each, twice


@pytest.mark.parametrize("order", [lambda keys: keys.sort(), lambda keys: keys.sort(reverse=True)])
def test_current_etags_in_reverse_order_loses_nothing(order):
    """What the old StartAfter check got wrong: listed in reverse, keys above the first one seen were GONE."""
    lister = _Lister(_FOLDER, order=order)
    etags = current_etags(lister, "b", ["p/010", "p/011", "p/012"], 1000)
    assert etags == {k: f"{k}-etag" for k in ("p/010", "p/011", "p/012")} and lister.heads == []


def test_current_etags_a_failed_head_is_unknown_never_gone():
    from devstack.harness.driver import _client_error

    class Failing(_Lister):
        def head_object(self, Bucket, Key):
            raise _client_error("ServiceUnavailable", 503)

    etags = current_etags(Failing(["p/a"]), "b", ["p/a", "p/b"], 10)
    assert etags["p/a"] == "p/a-etag" and isinstance(etags["p/b"], CosError) and etags["p/b"].transient
