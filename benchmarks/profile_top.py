"""Top frames of a py-spy raw (collapsed-stack) profile: `python -m benchmarks.profile_top FILE [--match TEXT]`.

py-spy's `--format raw` writes one line per distinct stack: 'frame;frame;... count'. With --subprocesses the
first frames name the process; `--match` keeps only stacks whose process line contains TEXT (default: the
worker, 'streams.ops.cli worker'). Prints the top frames by self samples and by inclusive samples (a frame counted
once per stack), as shares of all kept samples; `--stages`: the samples split by pipeline stage instead.
"""
from __future__ import annotations

import argparse
import re
from collections import Counter

_LOC = re.compile(r"\s*\((.*?)(?::\d+)?\)$")


def parse_collapsed(text: str) -> list[tuple[list[str], int]]:
    """(frames, samples) per line of a collapsed-stack file."""
    out = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        out.append((stack.split(";"), int(count)))
    return out


def frame_name(frame: str) -> str:
    """'func (path/file.py:123)' -> 'func (path/file.py)': lines merged so one function is one row."""
    return _LOC.sub(lambda m: f" ({m.group(1)})", frame)


def top_frames(stacks: list[tuple[list[str], int]], match: str = "streams.ops.cli worker", n: int = 25):
    """(total samples, self top-n, inclusive top-n) over the stacks of processes matching `match`."""
    self_c: Counter = Counter()
    incl_c: Counter = Counter()
    total = 0
    for frames, count in stacks:
        if match and not any(match in f for f in frames[:2]):
            continue
        frames = [f for f in frames if not f.startswith("process ")]
        if not frames:
            continue
        total += count
        names = [frame_name(f) for f in frames]
        self_c[names[-1]] += count
        for name in set(names):
            incl_c[name] += count
    return total, self_c.most_common(n), incl_c.most_common(n)


# where a sample's CPU goes: the innermost pipeline frame of its stack names the stage that caused it
STAGE_FRAMES = (("streams/stages/finalize/finalize.py", "finalize (delete + ledger)"),
                ("streams/stages/poll.py", "poll (listing, objects sends)"),
                ("streams/stages/parse.py", "parse (GET, gunzip, decode, flows sends)"),
                ("streams/stages/enrich.py", "enrich (translate, kflow sends)"),
                ("streams/stages/sink/sink.py", "sink (CHF, Kentik POST, progress)"),
                ("streams/state/metadata.py", "leader: VPC metadata"), ("streams/stages/leader.py", "leader: heartbeat, log"),
                ("streams/state/follower.py", "followers (ledger, progress, metadata)"),
                ("streams/state/outcomes.py", "followers (ledger, progress, metadata)"),
                ("streams/stages/bucket.py", "COS listings + deletes (pool threads)"))
OTHER_FRAMES = (("importlib", "start-up: imports"), ("aiokafka/producer", "Kafka producer (background)"),
                ("aiokafka/consumer", "Kafka consumer (fetch, commit)"),
                ("faust/transport", "Kafka consumer (fetch, commit)"), ("aiohttp", "web, /metrics"),
                ("prometheus_client", "web, /metrics"), ("faust/web", "web, /metrics"),
                ("streams/formats/avro.py", "Avro (a pool thread whose stage frame py-spy lost)"))


def stage_of(frames: list[str]) -> str:
    """The stage a stack's CPU belongs to (innermost pipeline frame), else what else it is."""
    for frame in reversed(frames):
        for path, stage in STAGE_FRAMES:
            if path in frame:
                return stage
    for path, what in OTHER_FRAMES:
        if any(path in f for f in frames):
            return what
    if not frames:  # py-spy saw the process but no Python frame (native code or the interpreter starting)
        return "no Python frame"
    return "event loop (asyncio, Faust) and other" if "asyncio" in frames[-1] else "other"


def stage_split(stacks: list[tuple[list[str], int]], match: str = "streams.ops.cli worker") -> tuple[int, list]:
    """(samples, [(stage, samples)] largest first) over the stacks of processes matching `match`."""
    out: Counter = Counter()
    for frames, count in stacks:
        if match and not any(match in f for f in frames[:2]):
            continue
        out[stage_of([f for f in frames if not f.startswith("process ")])] += count
    return sum(out.values()), out.most_common()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.profile_top")
    p.add_argument("file")
    p.add_argument("--match", default="streams.ops.cli worker")
    p.add_argument("-n", type=int, default=25)
    p.add_argument("--stages", action="store_true", help="only the split by pipeline stage (STAGE_FRAMES)")
    args = p.parse_args(argv)
    with open(args.file) as f:
        stacks = parse_collapsed(f.read())
    if args.stages:
        total, split = stage_split(stacks, args.match)
        print(f"{total} samples\n\n    %   stage")
        for stage, c in split:
            print(f"{100 * c / total:5.1f}   {stage}")
        return 0
    total, self_top, incl_top = top_frames(stacks, args.match, args.n)
    print(f"{total} samples")
    print("\nself %   frame")
    for name, c in self_top:
        print(f"{100 * c / total:6.1f}   {name}")
    print("\ninclusive %   frame")
    for name, c in incl_top:
        print(f"{100 * c / total:6.1f}   {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
