"""Peak RSS of the parse stage's core on one object: decode, check and encode its `flows` messages exactly
as the stage does (streams/stages/parse.py), the object streamed from a file in 64 KiB chunks.

    python benchmarks/stage_rss.py write CASE PATH   CASE: big200 | big100 | w2 (a W2 object: 20,000 flows)
    python benchmarks/stage_rss.py run PATH          one JSON line: peak RSS (MB), flows, messages, bytes

Run as a file so that PYTHONPATH chooses the tree measured: the same script measures the stage before this
change (a tree without streams/formats/flowlog/flowencode.py: whole-document parse, then pack and encode) and after it.
Peak = VmHWM of this process after resetting it to the current RSS (/proc/self/clear_refs).
"""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

sys.path[:1] = []  # run as a file: the benchmarks/ folder itself is not a package root
CHUNK = 64 * 1024
CHUNK_FLOWS = 2000


def write(case: str, path: str) -> dict:
    from devstack.synth.worldgen import build_world

    if case == "w2":
        from benchmarks.workloads import _exact_objects, workloads
        obj = _exact_objects(build_world(seed=1), workloads(True)["W2"])[0]
        Path(path).write_bytes(obj.body)
        return {"case": case, "flows": obj.flow_count, "gzip_bytes": len(obj.body)}
    from devstack.synth import badinputs
    bi = badinputs.make("huge_object", build_world(seed=1), random.Random(1), size_mb=int(case[3:]))
    Path(path).write_bytes(bi.body)
    return {"case": case, "flows": bi.flow_count, "gzip_bytes": len(bi.body)}


def _stage_messages(chunks):
    """The flows messages the parse stage of the tree on PYTHONPATH makes of one object: a list before, one
    at a time after (the stage sends a big object's messages a window at a time)."""
    from streams.formats.records import ObjectRef
    ref = ObjectRef("bucket", "key", "etag", 1, 1)
    try:
        from streams.formats.flowlog.flowencode import object_messages, pack, read_object
        from streams.formats.flowlog.flowlog import Limits
    except ImportError:  # before: the whole document, then its chunks packed and encoded
        from streams.flowlog import parse_object_bytes  # the old tree's whole-document reader
        from streams.stages.parse import pack as old_pack
        return [c.encode() for c in old_pack([(ref, parse_object_bytes(chunks))], CHUNK_FLOWS)]
    obj = read_object(ref, chunks, CHUNK_FLOWS, Limits())
    return object_messages(obj) if obj.encoded else [c.encode() for c in pack([obj], CHUNK_FLOWS)]


def run(path: str) -> dict:
    base = _reset_peak()

    def chunks():
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                yield block
    t0 = time.process_time()
    count = size = 0
    for message in _stage_messages(chunks()):
        count, size = count + 1, size + len(message)
    peak = _status_mb("VmHWM")
    return {"rss_before_mb": round(base), "peak_rss_mb": round(peak), "cpu_s": round(time.process_time() - t0, 2),
            "messages": count, "message_mb": round(size / 2**20, 1)}


def _status_mb(name: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {name} in /proc/self/status")


def _reset_peak() -> float:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_mb("VmRSS")


if __name__ == "__main__":
    if sys.argv[1:2] == ["write"]:
        print(json.dumps(write(sys.argv[2], sys.argv[3])))
    elif sys.argv[1:2] == ["run"]:
        print(json.dumps(run(sys.argv[2])))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
