"""The fault suite's report: the peak RSS of a scenario's workers and the table of every scenario."""
from __future__ import annotations

COLUMNS = ("scenario", "owed", "accepted", "pending", "lost", "duplicates", "early_deletes", "recovery_s",
           "peak_rss_mb", "ok")


def peak_rss_mb(run) -> int | None:
    """The largest peak RSS (VmHWM) of any worker the scenario ran, in MB (None: none could be read)."""
    peak = max((w.read_peak_rss() for w in run.all_workers()), default=0)
    return round(peak / 1024) if peak else None


def table(report: list[dict]) -> str:
    """The scenarios as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for entry in report:
        lines.append("| " + " | ".join(_cell(entry.get(name)) for name in COLUMNS) + " |")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None:
        return "-"
    if value is True or value is False:
        return "ok" if value else "FAILED"
    return str(value)
