"""A scenario's verdict and the suite's report.

`judge` asks the referee (devstack/referee.py) what was owed and what Kentik accepted, and adds early
deletes (from the COS proxy's request log, else the ledger), dead-letter checks, whether the fault met work
(phase.py) and the scenario's own notes. pending counts owed records not accepted whose object is still in
the bucket (not delivered yet: a slow or stalled run, reported as "bucket not drained"); lost counts owed
records not accepted whose object is gone. early_deletes counts objects whose deletion began before their
last owed record was accepted, objects deleted with owed records missing, and bad objects deleted at all.
recovery_s is the time from the end of the fault until the bucket was drained; peak_rss_mb the largest peak
resident memory (VmHWM) of any worker of the scenario. `table` prints every scenario's entry.
"""
from __future__ import annotations

from collections import Counter

from devstack.faults import phase
from devstack.faults.run import FaultRun, read_topic
from devstack.referee import accepted_record, compare, owed_records

COLUMNS = ("scenario", "owed", "accepted", "pending", "lost", "duplicates", "early_deletes", "recovery_s",
           "peak_rss_mb", "fault_met", "ok")


def peak_rss_mb(run) -> int | None:
    """The largest peak RSS (VmHWM) of any worker the scenario ran, in MB (None: none could be read)."""
    peak = max((w.read_peak_rss() for w in run.all_workers()), default=0)
    return round(peak / 1024) if peak else None


def met_summary(entry: dict) -> str | None:
    """What the scenario's fault met: the fewest objects pending at any of its fault events (and how many
    events), and the stand-in faults applied; None when the scenario did not say (a crashed run)."""
    met = entry.get("details", {}).get("fault_met")
    if not met:
        return None
    events = met["events"]
    text = f"{min((e['pending'] for e in events), default=0)} objects"
    if len(events) > 1:
        text = f"≥{text} at each of {len(events)} events"
    if met.get("faults_applied") is not None:
        text += f", {met['faults_applied']} faults applied"
    return text


def table(report: list[dict]) -> str:
    """The scenarios as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for entry in report:
        cells = {**entry, "fault_met": met_summary(entry)}
        lines.append("| " + " | ".join(_cell(cells.get(name)) for name in COLUMNS) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if value is True or value is False:
        return "ok" if value else "FAILED"
    return str(value)


def deletion_times(requests_log: list[dict], bucket: str,
                   after: dict[str, float] | None = None) -> dict[str, float]:
    """Object key -> start time of its first successful delete, from the proxy's request log; for a key in
    `after` (rewritten by the scenario at that time) only deletes after the rewrite count."""
    after = after or {}
    out: dict[str, float] = {}
    prefix = f"/{bucket}/"
    for entry in requests_log:
        if entry["status"] not in (200, 204):
            continue
        keys: list[str] = []
        if entry["method"] == "POST" and "delete" in entry.get("query", ""):
            keys = entry.get("keys") or []
        elif entry["method"] == "DELETE" and entry["path"].startswith(prefix):
            keys = [entry["path"][len(prefix):]]
        for key in keys:
            if entry["at"] >= after.get(key, 0.0):
                out[key] = min(out.get(key, entry["at"]), entry["at"])
    return out


def first_complete_times(objects, flows: list[dict]) -> dict[str, float | None]:
    """Per object, when Kentik had accepted every owed record for the first time (stand-in clock): for a
    record owed n times, its n-th earliest acceptance. Later duplicates (a re-sent chunk) do not count,
    so a deletion between the first acceptance and a duplicate is not early. None if a record is missing."""
    times: dict[tuple, list[float]] = {}
    for flow in flows:
        times.setdefault(accepted_record(flow), []).append(float(flow.get("received_at", 0.0)))
    for values in times.values():
        values.sort()
    out: dict[str, float | None] = {}
    for obj in objects:
        latest = 0.0
        for record, n in Counter(owed_records(obj)).items():
            seen = times.get(record, [])
            if len(seen) < n:
                latest = None
                break
            latest = max(latest, seen[n - 1])
        out[obj.key] = latest
    return out


def judge(run: FaultRun, scenario: str, fault_end: float, drained_at: float | None) -> dict:
    """Referee verdict plus early deletes, dead-letter checks and per-scenario notes."""
    from streams.formats.avro import Codec

    flows = run.flows()
    remaining = run.bucket_keys()
    verdict = compare(run.good, flows, in_bucket=remaining)  # missing + still in the bucket = pending, not lost
    needed_by = first_complete_times(run.good, flows)
    deleted = deletion_times(run.proxy_requests(), run.env["BLUEFLOW_BUCKET"], run.rewritten_at)
    ledger_codec = Codec("ledger")
    ledger = {}
    for _, value, _ in read_topic(run.env, f"{run.run_id}.ledger", 15):
        record = ledger_codec.decode(value)
        ledger[record["key"]] = record
    gone = phase.deletions(deleted, ledger)  # the ledger's for objects deleted outside the proxy (HMAC)
    good_keys = {o.key for o in run.good}
    met = phase.fault_met(run.fault_events, {k: t for k, t in run.written_at.items() if k in good_keys},
                                gone, run.notes.get("faults_applied"))
    early: list[str] = []
    for obj in run.good:
        at = gone.get(obj.key)
        if at is None:
            continue
        needed = needed_by.get(obj.key)  # None: some owed record never arrived
        if needed is None or at < needed:
            early.append(obj.key)
    bad_deleted = sorted(k for k in run.bad_keys if k in deleted)
    letters = run.deadletters()
    unclear = sorted(k for k in run.bad_keys if not letters.get(k) or
                     not all(r["stage"] and len(r["reason"]) > 15 for r in letters[k]))
    entry = {
        "scenario": scenario, "owed": verdict.owed, "accepted": verdict.accepted, "pending": verdict.pending,
        "lost": verdict.lost,
        "duplicates": verdict.duplicates, "early_deletes": len(early) + len(bad_deleted),
        "recovery_s": round(drained_at - fault_end, 1) if drained_at is not None else None,
        "peak_rss_mb": peak_rss_mb(run),
        "details": {
            "objects": len(run.objects), "bad_objects": len(run.bad_keys), "unexpected": verdict.unexpected,
            "drained": drained_at is not None, "good_left_in_bucket": len(remaining - run.bad_keys),
            "bad_left_in_bucket": len(remaining & run.bad_keys), "bad_deleted": bad_deleted[:5],
            "lost_objects": verdict.lost_objects[:5], "pending_objects": len(verdict.pending_objects),
            "early_deleted": early[:5], "deadlettered": len(letters),
            "deadletter_unclear": unclear[:5], "deadletter_repeats": sum(len(v) - 1 for v in letters.values()),
            "ledger_records": len(ledger), "deletes_seen_at_proxy": len(deleted),
            "good_deleted_seen": len({o.key for o in run.good} & set(deleted)), "run_id": run.run_id,
            "fault_met": met, **run.notes,
        },
    }
    problems = phase.met_problems(met)
    if verdict.lost or entry["early_deletes"]:
        problems.append("lost or deleted early")
    if drained_at is None:
        problems.append("bucket not drained")
    if unclear or remaining & run.bad_keys != run.bad_keys:
        problems.append("bad input not quarantined (or deleted)")
    problems += run.notes.get("problems", [])
    entry["ok"] = not problems
    entry["problems"] = problems
    return entry
