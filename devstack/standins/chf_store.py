"""The Kentik stand-in's flow store: accepted packed CHF bodies, decoded into flows only when asked for.

Memory stays bounded for the referee's big runs (issue 28: 10.8 GB RSS for 2.55 M flows): the stand-in keeps
each accepted request body once, as received (gzip), and a decoded flow shares its custom columns with the
other flows of the same values. The stand-in's /chf path checks what it must and keeps the body: ``device_sample`` (the packed message
is readable, its CHF count, the deviceId of up to ``SAMPLE`` CHF spread over it), or with ``chf_check``
"deferred", which the benchmark sets, none of that. ``decoded_flows`` decodes the bodies accepted since the
last call (several us per flow in pycapnp), so a benchmark does not pay for it while it runs, and checks every
CHF's deviceId against its sender's: a flow of another device is dropped there and counted
(``flows_wrong_device``), an unreadable body too (``bodies_unreadable``), so the referee sees their flows as
lost. (Reading every deviceId in the request path cost ~5 us per flow, a quarter of a W2 worker's CPU.)
"""
from __future__ import annotations

import base64
import threading
from typing import Any

from isal import igzip

# compact flow tuple layout (kept in memory); FLOW_FIELDS names the scalar part
FLOW_FIELDS = ("timestamp", "src_addr", "dst_addr", "src_port", "dst_port", "protocol", "in_bytes",
               "in_pkts", "out_bytes", "out_pkts", "sample_rate", "sample_adj", "app_protocol", "big",
               "device_id", "timestamp_nano", "is_metric")
DEVICE_ID = FLOW_FIELDS.index("device_id")


_CUSTOMS: dict[tuple, tuple] = {}  # distinct (id, value) pairs and custom tuples: flows share them
CUSTOMS_CAP = 500_000  # distinct entries kept for sharing; past it the table starts again (memory bound)


def _shared(value: tuple) -> tuple:
    """One shared object per distinct value (a decoded flow's 19 custom columns were ~3 KB of their own)."""
    return _CUSTOMS.setdefault(value, value)


def _decode_flows(body: bytes) -> list[tuple]:
    """The flows of one accepted body as compact tuples; `body` is the request body as received (gzip of the
    80 zero bytes + packed message: the stand-in holds only that, no unpacked copy) or the packed message."""
    from streams.formats.kflow.kflow_capnp import load_schema  # pycapnp import is slow: only when flows arrive

    packed = igzip.decompress(body)[80:] if body[:2] == b"\x1f\x8b" else body
    reader = load_schema().PackedCHF.from_bytes_packed(packed, traversal_limit_in_words=1 << 40)
    if len(_CUSTOMS) > CUSTOMS_CAP:
        _CUSTOMS.clear()
    out = []
    for c in reader.msgs:
        customs = tuple(_shared((cu.id, _custom_value(cu))) for cu in c.custom)
        customs = _shared(customs)
        out.append((c.timestamp, c.ipv4SrcAddr, c.ipv4DstAddr, c.l4SrcPort, c.l4DstPort, c.protocol,
                    c.inBytes, c.inPkts, c.outBytes, c.outPkts, c.sampleRate, c.sampleAdj, c.appProtocol,
                    c.big, c.deviceId, c.timestampNano, c.isMetric, customs))
    return out


SAMPLE = 32  # deviceIds read per request; every one is checked when the bodies are decoded


def device_sample(packed: bytes) -> tuple[int, list[int]]:
    """(CHF count, the deviceId of up to SAMPLE of them, first and last included) of a packed PackedCHF;
    raises if the message is not readable (unpacking it reads it all)."""
    from streams.formats.kflow.kflow_capnp import load_schema

    msgs = load_schema().PackedCHF.from_bytes_packed(packed, traversal_limit_in_words=1 << 40).msgs
    n = len(msgs)
    picks = sorted({*range(0, n, max(1, n // SAMPLE)), n - 1}) if n else []
    return n, [msgs[i].deviceId for i in picks]


def _custom_value(cu) -> Any:
    v = cu.value
    which = v.which()
    if which in ("addrVal",):
        return base64.b64encode(bytes(v.addrVal)).decode()
    return getattr(v, which)


_DECODE_LOCK = threading.Lock()


def decoded_flows(st: dict) -> list[tuple]:
    """The decoded flows of every accepted body, in acceptance order (decodes only the new bodies).

    Runs on a thread while the event loop keeps appending bodies: only the bodies present when it started
    are marked decoded (a body accepted meanwhile is decoded by the next call, never skipped), and one call
    decodes at a time. A reset while it decodes (the next run's `/_emulator/reset`) drops what it decoded:
    nothing of before the reset reaches the fresh state, and none of the fresh bodies is marked decoded."""
    with _DECODE_LOCK:
        bodies, flows = st["bodies"], st["flows"]  # one generation: a reset puts fresh lists in `st`
        start, end = st["decoded"], len(bodies)
        new, wrong = [], 0
        for seq, t, name, packed in bodies[start:end]:
            want = int((st["devices"].get(name) or {}).get("id", -1))
            try:
                decoded = _decode_flows(packed)
            except Exception:  # noqa: BLE001 - deferred check: an unreadable body's flows are not stored
                st["counts"]["bodies_unreadable"] = st["counts"].get("bodies_unreadable", 0) + 1
                continue
            if st["chf_check"] == "deferred":
                st["counts"]["flows_accepted"] += len(decoded)
            for f in decoded:
                if f[DEVICE_ID] == want:
                    new.append((seq, t, name, f))
                else:
                    wrong += 1
        if st["bodies"] is not bodies:  # reset while decoding: these flows are of before the reset, dropped
            return list(st["flows"])
        flows.extend(new)
        st["decoded"] = end
        st["counts"]["flows_wrong_device"] = st["counts"].get("flows_wrong_device", 0) + wrong
        return list(flows)



def flow_json(seq: int, t: float, name: str, f: tuple, col_names: dict[int, str]) -> dict:
    d = dict(zip(FLOW_FIELDS, f))
    d["customs"] = {col_names.get(i, str(i)): v for i, v in f[17]}
    d.update(device_name=name, request_seq=seq, received_at=t)
    return d
