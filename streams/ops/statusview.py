"""`blueflow status` on a terminal: one screen redrawn in place every interval (like `vector top`).

The view runs on the terminal's alternate screen (rich `Live(screen=True)`): each refresh replaces the
previous frame, however tall, and Ctrl-C gives the terminal back as it was. Piped into a file, one frame is
printed per refresh instead. Every string that comes from outside (URLs, worker problems, errors, object
keys, dead-letter reasons) is escaped (streams/formats/textsafe.py) and never read as rich markup.
"""
from __future__ import annotations

import time

from streams.formats.textsafe import escape

STAGE_RATES = {"parse": "flows_parsed_per_s", "enrich": "chf_translated_per_s", "sink": "chf_delivered_per_s"}


def _text(value, style: str = ""):
    from rich.text import Text

    return Text(escape("" if value is None else value), style=style, overflow="fold")


def _rate(rates: dict | None, name: str) -> str:
    value = (rates or {}).get(name)
    return "" if value is None else f"{value:g}"


def _sent_rate(rates: dict | None) -> str:
    """Records sent per second by whichever sink the worker runs: kflow to Kentik, or IPFIX to collectors."""
    if (rates or {}).get("ipfix_exported_per_s"):
        return _rate(rates, "ipfix_exported_per_s")
    return _rate(rates, "chf_delivered_per_s")


def _one_line(value, style: str = ""):
    """Text cut to its cell's width with an ellipsis (the whole text is in the errors above and in --json)."""
    text = _text(value, style)
    text.overflow, text.no_wrap = "ellipsis", True
    return text


def _short(url: str) -> str:
    """A worker's URL without `http://` (the notes below the table name it whole)."""
    return url[len("http://"):] if url.startswith("http://") else url


def _table(title: str):
    """A table that fits 80 columns: no vertical rules, one space between columns."""
    from rich import box
    from rich.table import Table

    return Table(title=title, expand=True, title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1),
                 pad_edge=False)


def worker_table(doc: dict):
    """One row per worker (numbers only, so it fits 80 columns), then each worker's problems on lines of their
    own: a down worker's error cut to one line (whole in the errors above and in --json), problems wrapped."""
    from rich.console import Group

    table = _table("workers")
    for col, kw in (("worker", {"overflow": "fold", "ratio": 1}), ("role", {}), ("health", {}),
                    ("up", {"justify": "right"}), ("lag", {"justify": "right"}), ("objects", {"justify": "right"}),
                    ("flows/s", {"justify": "right"}), ("kflow/s", {"justify": "right"})):
        table.add_column(col, **kw)
    notes = []
    for w in doc["workers"]:
        if not w["ok"]:
            table.add_row(_text(_short(w["url"])), "", _text("down", "bold red"), "", "", "", "", "")
            notes.append(_one_line(f"{w['url']}: {w.get('error')}", "red"))
            continue
        counts, rates = w.get("counts") or {}, w.get("rates")
        table.add_row(_text(_short(w["url"])), "leader" if w["leader"] else "", _text("ok", "green") if w["healthy"] else
                      _text("unhealthy", "bold red"), f"{w['uptime_s'] or 0:.0f}s",
                      "" if w["lag"] is None else str(w["lag"]), str(counts.get("objects_completed", 0)),
                      _rate(rates, "flows_parsed_per_s"), _sent_rate(rates))
        notes += [_text(f"{w['url']}: {problem}", "red") for problem in w["problems"] or []]
    return Group(table, *notes) if notes else table


def pipeline_table(doc: dict):
    table = _table("pipeline")
    for col in ("stage", "topic", "lag", "end offset", "records/s"):
        table.add_column(col, justify="left" if col in ("stage", "topic") else "right")
    for stage, info in (doc["lag"] or {}).items():
        table.add_row(stage, _text(info["topic"]), str(info["lag"]), str(info["end"]),
                      _rate(doc.get("rates"), STAGE_RATES.get(stage, "")))
    return table


def facts_grid(doc: dict):
    from rich.table import Table

    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    bucket = doc.get("bucket") or {}
    age = bucket.get("oldest_pending_age_s")
    counts = doc.get("counts") or {}
    dead = doc.get("deadletters") or {}
    facts.add_row("objects waiting", "?" if doc.get("in_flight") is None else str(doc["in_flight"]))
    facts.add_row("oldest waiting object", "none" if age is None else f"{age:.0f}s")
    facts.add_row("totals", f"{counts.get('objects_completed', 0)} objects, {counts.get('flows_parsed', 0)} flows, "
                            f"{counts.get('chf_delivered', 0)} kflow delivered"
                            + (f", {counts['ipfix_exported']} IPFIX exported" if counts.get("ipfix_exported") else ""))
    facts.add_row("Kentik HTTP", _text(", ".join(f"{k}: {v}" for k, v in doc["kentik"].items()) or "none yet"))
    facts.add_row("COS errors", _text(", ".join(f"{k}: {v}" for k, v in doc["cos_errors"].items()) or "none"))
    facts.add_row("dead letters", _text(f"{dead.get('objects', '?')} objects " + ", ".join(
        f"{k}: {v}" for k, v in (dead.get("by_stage") or {}).items())))
    return facts


def sources_table(doc: dict):
    """Per source (the flags' one, or a configuration file's `sources:`): bucket, objects waiting, the oldest one's
    age, and its problems (a failing listing, or what the workers report); None without a bucket listing."""
    sources = doc.get("sources")
    if not sources:
        return None
    table = _table("sources")
    for col, kw in (("source", {}), ("bucket", {}), ("waiting", {"justify": "right"}),
                    ("oldest waiting", {"justify": "right"}), ("problems", {"ratio": 1, "overflow": "fold"})):
        table.add_column(col, **kw)
    for name, s in sources.items():
        age = s.get("oldest_pending_age_s")
        problems = ([s["error"]] if s.get("error") else []) + list(s.get("problems") or [])
        table.add_row(_text(name), _text(s.get("bucket")), "?" if "pending" not in s else str(s["pending"]),
                      "" if age is None else f"{age:.0f}s",
                      _text("; ".join(problems), "red") if problems else _text("ok", "green"))
    return table


def deadletter_table(doc: dict):
    newest = (doc.get("deadletters") or {}).get("newest") or []
    if not newest:
        return None
    table = _table("newest dead letters")
    table.add_column("at")
    table.add_column("stage")
    table.add_column("key", ratio=2, overflow="fold")
    table.add_column("reason", ratio=1, overflow="fold")
    for r in newest:
        table.add_row(r.get("at_iso", ""), _text(r.get("stage")), _text(r.get("key")), _text(r.get("reason")))
    return table


def render(doc: dict, footer: str = ""):
    """A rich renderable of one status document: header, errors (whole), workers, pipeline, facts."""
    from rich.console import Group
    from rich.text import Text

    title = Text.assemble(("blueflow status", "bold"), escape(f" · app {doc['app_id']} · {doc['at']} · "),
                          ("healthy", "green") if doc["healthy"] else ("UNHEALTHY", "bold red"),
                          (f"   {footer}" if footer else "", "dim"))
    parts = [title]
    parts += [_text(error, "red") for error in doc["errors"]]
    parts += [worker_table(doc), pipeline_table(doc), facts_grid(doc)]
    parts += [table for table in (sources_table(doc), deadletter_table(doc)) if table is not None]
    return Group(*parts)


def interruptible(fn, poll_s: float = 0.2):
    """`fn()` run on a daemon thread while this one waits in short steps: Ctrl-C is acted on at once even
    while a Kafka client waits inside librdkafka (which holds Python's signal handling for up to 10 s)."""
    import threading

    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="blueflow-status-sample", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(poll_s)
    if "error" in box:
        raise box["error"]
    return box["value"]


def live(settings, worker_urls: list[str], interval: float, with_bucket: bool, console=None) -> None:
    """Redraw the view every `interval` seconds until Ctrl-C (one frame per refresh when not a terminal)."""
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from streams.ops.status import collect

    console = console or Console()
    footer = f"every {interval:g}s · Ctrl-C quits"

    def sample(previous=None) -> dict:
        doc = interruptible(lambda: collect(settings, worker_urls, interval=0, with_bucket=with_bucket,
                                            previous=previous))
        doc["_mono"] = time.monotonic()
        return doc

    try:
        if not console.is_terminal:
            doc = None
            while True:
                doc = sample(doc)
                console.print(render(doc, footer))
                time.sleep(interval)
        with Live(Text("blueflow status: collecting…"), console=console, screen=True, auto_refresh=False) as view:
            doc = None
            while True:
                doc = sample(doc)
                view.update(render(doc, footer), refresh=True)
                time.sleep(interval)
    except KeyboardInterrupt:
        pass
