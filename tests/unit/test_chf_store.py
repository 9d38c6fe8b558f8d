"""The Kentik stand-in's flow store: a reset while bodies are being decoded (a slow /_emulator/flows of one
fault scenario, the next scenario's reset) leaves the fresh state clean — before the fix the old run's flows
landed in it and the fresh bodies were marked decoded unread, so the referee saw every flow as lost."""
from __future__ import annotations

from devstack.standins import chf_store, kentik


def test_reset_during_a_decode_keeps_the_fresh_state_clean(monkeypatch):
    st = kentik._new_state("1001")
    st["bodies"].extend((seq, 0.0, "dev", b"old") for seq in range(1, 4))

    def decode(packed: bytes) -> list[tuple]:
        if packed == b"old" and st["bodies"] and st["bodies"][0][3] == b"old":
            st.clear()
            st.update(kentik._new_state("1001"))  # what _reset_state does, from the event loop
            st["bodies"].append((1, 1.0, "dev", b"new"))
        return [(packed,)]

    monkeypatch.setattr(chf_store, "_decode_flows", decode)
    assert chf_store.decoded_flows(st) == [] and st["decoded"] == 0  # the old run's flows are dropped
    assert chf_store.decoded_flows(st) == [(1, 1.0, "dev", (b"new",))] and st["decoded"] == 1


def test_bodies_are_decoded_once_in_order(monkeypatch):
    st = kentik._new_state("1001")
    monkeypatch.setattr(chf_store, "_decode_flows", lambda packed: [(packed, 1), (packed, 2)])
    st["bodies"].append((1, 0.5, "a", b"x"))
    assert chf_store.decoded_flows(st) == [(1, 0.5, "a", (b"x", 1)), (1, 0.5, "a", (b"x", 2))]
    st["bodies"].append((2, 0.7, "b", b"y"))
    assert [f[3] for f in chf_store.decoded_flows(st)] == [(b"x", 1), (b"x", 2), (b"y", 1), (b"y", 2)]
