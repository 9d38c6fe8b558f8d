"""The Kentik stand-in's flow store: a reset while bodies are being decoded (a slow /_emulator/flows of one
fault scenario, the next scenario's reset) leaves the fresh state clean — before the fix the old run's flows
landed in it and the fresh bodies were marked decoded unread, so the referee saw every flow as lost."""
from __future__ import annotations

from devstack.standins import chf_store, kentik


def flow(*marks) -> tuple:
    """A decoded flow tuple of device 7 (the decode keeps only flows of their sender's device), marked."""
    return marks + (0,) * (chf_store.DEVICE_ID - len(marks)) + (7,)


def state() -> dict:
    st = kentik._new_state("1001")
    st["devices"].update({"dev": {"id": "7"}, "a": {"id": "7"}, "b": {"id": "7"}})
    return st


def test_reset_during_a_decode_keeps_the_fresh_state_clean(monkeypatch):
    st = state()
    st["bodies"].extend((seq, 0.0, "dev", b"old") for seq in range(1, 4))

    def decode(packed: bytes) -> list[tuple]:
        if packed == b"old" and st["bodies"] and st["bodies"][0][3] == b"old":
            st.clear()
            st.update(state())  # what _reset_state does, from the event loop (and the device made again)
            st["bodies"].append((1, 1.0, "dev", b"new"))
        return [flow(packed)]

    monkeypatch.setattr(chf_store, "_decode_flows", decode)
    assert chf_store.decoded_flows(st) == [] and st["decoded"] == 0  # the old run's flows are dropped
    assert chf_store.decoded_flows(st) == [(1, 1.0, "dev", flow(b"new"))] and st["decoded"] == 1


def test_bodies_are_decoded_once_in_order(monkeypatch):
    st = state()
    monkeypatch.setattr(chf_store, "_decode_flows", lambda packed: [flow(packed, 1), flow(packed, 2)])
    st["bodies"].append((1, 0.5, "a", b"x"))
    assert chf_store.decoded_flows(st) == [(1, 0.5, "a", flow(b"x", 1)), (1, 0.5, "a", flow(b"x", 2))]
    st["bodies"].append((2, 0.7, "b", b"y"))
    assert [f[3] for f in chf_store.decoded_flows(st)] == [flow(b"x", 1), flow(b"x", 2), flow(b"y", 1),
                                                              flow(b"y", 2)]


def test_a_flow_of_another_device_is_dropped_and_counted(monkeypatch):
    st = state()
    monkeypatch.setattr(chf_store, "_decode_flows", lambda packed: [flow(1), flow(2)[:-1] + (8,), flow(3)])
    st["bodies"].append((1, 0.5, "a", b"x"))
    assert [f[3][0] for f in chf_store.decoded_flows(st)] == [1, 3] and st["counts"]["flows_wrong_device"] == 1
