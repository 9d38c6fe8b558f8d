"""The fault suite's report: the peak RSS of a scenario's workers and the table of every scenario."""
from __future__ import annotations

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
