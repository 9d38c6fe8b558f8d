"""`blueflow-dev demo` as a user runs it: it ends with one JSON line whose numbers add up (Kentik stand-in, or an
nfcapd the demo starts with `--sink ipfix`)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from devstack import nfcapd
from devstack.synth.generator import generate_objects
from devstack.nfcapd import sample_line
from devstack.referee import owed_ipfix
from devstack.synth.worldgen import build_world

pytestmark = pytest.mark.stack


def test_demo_ends_with_a_json_line_that_matches_what_was_owed(stack):
    args = ["--objects", "30", "--mean-flows", "80", "--bad", "3", "--seed", "5", "--timeout", "240"]
    done = subprocess.run([sys.executable, "-m", "devstack.cli", "demo", *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    summary = json.loads(lines[0])
    assert set(summary) == {"objects_written", "flows_written", "kflow_delivered", "objects_deleted", "deadlettered"}
    world = build_world(seed=int(stack["BLUEFLOW_WORLD_SEED"]), regions=tuple(stack["BLUEFLOW_REGIONS"].split(",")))
    generated = generate_objects(world, objects=30, seed=5, mean_flows=80, bad=3)
    good = [o for o in generated if o.kind in ("good", "empty")]
    assert summary == {"objects_written": 33, "flows_written": sum(o.flow_count for o in good),
                       "kflow_delivered": sum(o.chf_count for o in good), "objects_deleted": len(good),
                       "deadlettered": 3}
    assert "published" in done.stderr and "finished in" in done.stderr  # live progress and a summary


@pytest.mark.skipif(nfcapd.missing() is not None, reason=str(nfcapd.missing()))
def test_demo_with_the_ipfix_sink_shows_what_nfdump_read_next_to_the_objects_deleted(stack):
    args = ["--sink", "ipfix", "--objects", "20", "--mean-flows", "60", "--bad", "2", "--seed", "6",
            "--timeout", "240"]
    done = subprocess.run([sys.executable, "-m", "devstack.cli", "demo", *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    world = build_world(seed=int(stack["BLUEFLOW_WORLD_SEED"]), regions=tuple(stack["BLUEFLOW_REGIONS"].split(",")))
    good = [o for o in generate_objects(world, objects=20, seed=6, mean_flows=60, bad=2) if o.kind in ("good", "empty")]
    owed = sum(o.chf_count for o in good)
    sample = summary.pop("nfdump_sample")
    assert summary == {"objects_written": 22, "flows_written": sum(o.flow_count for o in good),
                       "kflow_delivered": owed, "objects_deleted": len(good), "deadlettered": 2,
                       "nfdump_records": owed, "nfdump_lost": 0, "nfdump_duplicates": 0}
    # the sample is one of the owed records, as nfdump printed it
    owed_lines = {sample_line(r) for o in good for r in owed_ipfix(o)}
    assert sample in owed_lines
    assert "nfdump read" in done.stderr and "handed to nfcapd's socket" in done.stderr


def test_demo_with_two_sources_counts_each_source_and_nothing_crosses(stack):
    args = ["--sources", "2", "--objects", "15", "--mean-flows", "60", "--bad", "1", "--seed", "9", "--timeout", "240"]
    done = subprocess.run([sys.executable, "-m", "devstack.cli", "demo", *args], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(summary["sources"]) == {"acct-a", "acct-b"} and summary["deadlettered"] == 2
    exports = set()
    for name, line in summary["sources"].items():
        assert line["objects_written"] == 16 and line["left_in_bucket"] == 1, (name, line)
        assert line["kflow_owed"] == line["kflow_delivered"] == line["kflow_accepted_by_kentik"] > 0, (name, line)
        assert len(line["exports"]) == 1, (name, line)
        exports |= set(line["exports"])
    assert exports == {"plan 11467 export 3302", "plan 5555 export 7777"}  # each its own export
    assert summary["kflow_delivered"] == sum(line["kflow_delivered"] for line in summary["sources"].values())
