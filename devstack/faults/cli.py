"""`blueflow-dev faults [--quick] [--scenarios a,b] [--objects N]`: run the fault suite on the local stack.

Every scenario (runner.py) gets its own run; each entry is written to `faults-report.json` in the working
directory as soon as it is known (scenario, owed, accepted, pending, lost, duplicates, early_deletes,
recovery_s, peak_rss_mb and details) and printed; the table of every scenario ends the output (verdict.py).
Exit code 0 when every scenario has lost == 0 and early_deletes == 0 and its own checks passed.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import requests

from devstack import stack
from devstack.faults.runner import SCENARIOS, run_scenario
from devstack.faults.verdict import met_summary, table

DESCRIPTION = 'The fault suite: "nothing lost, nothing deleted early, bad input quarantined", proved on the local stack.'

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="blueflow-dev faults", description=DESCRIPTION)
    ap.add_argument("--quick", action="store_true", help="a few hundred objects, fewer faults")
    ap.add_argument("--scenarios", default="", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    ap.add_argument("--objects", type=int, default=0, help="objects per scenario (default 300 quick, 2000 full)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--report", default="faults-report.json")
    ap.add_argument("--shuffle-listings", action="store_true",
                    help="the COS stand-in lists each page in random order (IBM: \"non-lexographical order\")")
    args = ap.parse_args(argv)
    names = [s for s in args.scenarios.split(",") if s] or list(SCENARIOS)
    unknown = [s for s in names if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenarios {unknown}; choose from {','.join(SCENARIOS)}")
    objects = args.objects or (300 if args.quick else 2000)
    env = stack.ensure_up()
    if args.shuffle_listings:  # otherwise as the stack was started (BLUEFLOW_DEVSTACK_SHUFFLE_LISTINGS)
        requests.post(env["BLUEFLOW_COS_IAM_ENDPOINT"] + "/_emulator/listing_order", json={"shuffle": True},
                      timeout=10).raise_for_status()
    report: list[dict] = []
    for i, name in enumerate(names):
        print(f"[faults] {name}: {objects} objects ...", flush=True)
        entry = run_scenario(name, env, objects, args.quick, args.seed + i)
        report.append(entry)
        Path(args.report).write_text(json.dumps(report, indent=2) + "\n")
        print(f"[faults] {name}: owed={entry['owed']} accepted={entry['accepted']} pending={entry.get('pending')} "
              f"lost={entry['lost']} "
              f"duplicates={entry['duplicates']} early_deletes={entry['early_deletes']} "
              f"recovery_s={entry['recovery_s']} peak_rss_mb={entry.get('peak_rss_mb')} "
              f"fault_met=[{met_summary(entry) or '-'}] "
              f"{'ok' if entry['ok'] else 'FAILED ' + str(entry['problems'])}", flush=True)
        for line in entry["details"].get("table", ()):
            print(f"[faults] {name}:   {line}", flush=True)
    print(table(report), flush=True)
    return 0 if all(e["ok"] for e in report) else 1


if __name__ == "__main__":
    sys.exit(main())
