"""Parse cost and memory of the flow-log reader: the old whole-document parser vs the streaming decoder.

    python -m benchmarks.parse_bench speed            CPU µs per flow on W1-like and W2-like objects
    python -m benchmarks.parse_bench rss [CASE ...]   peak RSS decoding huge objects (big200 string450 big560)

Single-threaded and in-process: `speed` times the parse functions with the process CPU clock on the benchmark
workloads' own objects (benchmarks/workloads.py, quick sizes), read in 64 KiB chunks as COS hands them out,
including the slicing into 2,000-flow chunks. `rss` writes each huge object to a temporary file once, then
decodes it in a fresh process per (case, parser), streaming the file in 64 KiB chunks, and reports that
process's peak RSS during the decode (Linux: VmHWM after resetting it through /proc/self/clear_refs; else
ru_maxrss) against its RSS before decoding. The old parser is the frozen copy kept as
the equivalence oracle (devstack/harness/legacy_flowlog.py).
"""
from __future__ import annotations

import json
import random
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

CHUNK = 64 * 1024
CHUNK_FLOWS = 2000
CASES = ("big200", "string450", "big560")


def _parsers():
    from streams.formats.flowlog import flowlog as new
    from devstack.harness import legacy_flowlog as old

    def run_old(chunks):
        doc = old.parse_object_bytes(chunks)
        return sum(len(c["direction"]) for c in old.iter_chunks(doc, CHUNK_FLOWS))

    def run_new(chunks):
        return sum(len(c["direction"]) for c in new.FlowStream(chunks, chunk_flows=CHUNK_FLOWS))

    return {"old": run_old, "new": run_new}


def _split(body: bytes) -> list[bytes]:
    return [body[i:i + CHUNK] for i in range(0, len(body), CHUNK)]


def speed(repeat: int = 5) -> dict:
    from benchmarks.workloads import build_objects, workloads
    from devstack.synth.worldgen import build_world

    world = build_world(seed=1)
    out = {}
    for name, wl in workloads(quick=True).items():
        bodies = [_split(o.body) for o in build_objects(world, wl)]
        flows = sum(_parsers()["new"](b) for b in bodies)
        fns = {**{f"{impl}_us_per_flow": fn for impl, fn in _parsers().items()},
               **{f"gunzip_{lib}_us_per_flow": fn for lib, fn in _inflaters().items()}}
        best = dict.fromkeys(fns, float("inf"))
        for _ in range(repeat):  # interleaved, best of `repeat`: fairer on a shared, busy machine
            for label, fn in fns.items():
                best[label] = min(best[label], _timed(fn, bodies))
        out[name] = {"objects": len(bodies), "flows": flows,
                     **{label: round(sec / flows * 1e6, 2) for label, sec in best.items()}}
    return out


def _timed(fn, bodies) -> float:
    t0 = time.process_time()
    for chunks in bodies:
        fn(chunks)
    return time.process_time() - t0


def _inflaters() -> dict:
    from isal import isal_zlib

    def make(lib):
        def inflate(chunks):
            d = lib.decompressobj(31)
            for c in chunks:
                d.decompress(c)
        return inflate
    return {"zlib": make(zlib), "isal": make(isal_zlib)}


# ------------------------------------------------------------------------------------------------ rss
def write_case(case: str, path: Path) -> dict:
    """Write one huge gzip object to path; returns what it holds."""
    comp = zlib.compressobj(1, zlib.DEFLATED, 31)
    with path.open("wb") as f:
        if case == "string450":
            head = b'{"version":"0.0.1","capture_start_time":"2024-05-14T09:10:02Z","state":"ok","comment":"'
            f.write(comp.compress(head))
            block = b"x" * (1 << 20)
            for _ in range(450):
                f.write(comp.compress(block))
            f.write(comp.compress(b'","flow_logs":[]}'))
            f.write(comp.flush())
            return {"decompressed_mib": 450, "flows": 0}
        from devstack.synth import badinputs
        from devstack.synth.worldgen import build_world
        bi = badinputs.make("huge_object", build_world(seed=1), random.Random(1), size_mb=int(case[3:]))
        f.write(bi.body)
        return {"decompressed_mib": int(case[3:]), "flows": bi.flow_count}


def child(impl: str, path: str) -> dict:
    """Decode one object file streamed in 64 KiB chunks; report peak RSS (this process) in MB."""
    from streams.formats.flowlog.flowlog import FlowLogError
    from devstack.harness.legacy_flowlog import FlowLogError as OldError

    fn = _parsers()[impl]
    base = _reset_peak_rss_mb()

    def chunks():
        with open(path, "rb") as f:
            while block := f.read(CHUNK):
                yield block
    t0 = time.process_time()
    try:
        outcome = f"accepted, {fn(chunks())} flows"
    except (FlowLogError, OldError) as exc:
        outcome = f"rejected: {exc}"[:160]
    peak = _peak_rss_mb()
    return {"impl": impl, "rss_before_mb": round(base), "peak_rss_mb": round(peak),
            "cpu_s": round(time.process_time() - t0, 2), "outcome": outcome}


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss_mb() -> float:
    """Current RSS in MB, after resetting the peak to it (Linux: /proc/self/clear_refs 5) where possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    now = _status_mb("VmRSS")
    return now if now is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _peak_rss_mb() -> float:
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss(cases: list[str]) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            path = Path(tmp) / f"{case}.gz"
            info = write_case(case, path)
            info["gzip_mb"] = round(path.stat().st_size / 2**20, 1)
            for impl in ("old", "new"):
                proc = subprocess.run([sys.executable, "-m", "benchmarks.parse_bench", "_child", impl, str(path)],
                                      capture_output=True, text=True, check=True)
                info[impl] = json.loads(proc.stdout)
            out[case] = info
            print(json.dumps({case: info}), file=sys.stderr)
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["_child"]:
        print(json.dumps(child(argv[1], argv[2])))
        return 0
    if argv[:1] == ["speed"]:
        print(json.dumps(speed(), indent=1))
        return 0
    if argv[:1] == ["rss"]:
        cases = argv[1:] or list(CASES)
        unknown = set(cases) - set(CASES)
        if unknown:
            print(f"unknown case(s) {sorted(unknown)}; known: {', '.join(CASES)}", file=sys.stderr)
            return 2
        print(json.dumps(rss(cases), indent=1))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
