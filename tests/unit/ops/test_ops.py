"""Pure parts of the operator commands: replay time ranges, dead-letter listing, status arithmetic."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from streams.formats.avro import Codec
from streams.formats.columns import pack_kflow_columns
from streams.ops.deadletters import (Letter, newest_per_key, numbered, object_ref_for_retry, of_source, resolve,
                                 table_lines)
from streams.formats.records import ObjectRef
from streams.ops.replay import PartitionRange, mark_replay, parse_time, partition_ranges
from streams.ops.source_status import bucket_summary
from streams.ops.status import by_label, parse_metrics, rates, stage_lag
from streams.ops.statusview import render

NOW = 1_800_000_000_000


@pytest.mark.parametrize("text, expected", [
    ("now", NOW), ("15m", NOW - 900_000), ("-2h", NOW - 7_200_000), ("1d", NOW - 86_400_000),
    ("1795766400", 1_795_766_400_000), ("1795766400123", 1_795_766_400_123),
    ("2026-11-27T08:00:00Z", 1_795_766_400_000), ("2026-11-27T08:00:00", 1_795_766_400_000),
    ("2026-11-27T09:00:00+01:00", 1_795_766_400_000),
])
def test_parse_time_accepts_iso_epoch_and_durations_ago(text, expected):
    assert parse_time(text, NOW) == expected


def test_parse_time_says_what_it_accepts():
    with pytest.raises(ValueError, match="ISO 8601"):
        parse_time("yesterday", NOW)


def test_partition_ranges_follow_offsets_for_times_and_clip_to_watermarks():
    marks = {0: (0, 10), 1: (5, 20), 2: (0, 7)}
    ranges = partition_ranges({0: 3, 1: 2, 2: -1}, {0: 8, 1: -1, 2: -1}, marks)
    assert ranges == [PartitionRange(0, 3, 8), PartitionRange(1, 5, 20), PartitionRange(2, 7, 7)]
    assert [r.size for r in ranges] == [5, 15, 0]
    assert partition_ranges({0: 4}, None, {0: (0, 9)}) == [PartitionRange(0, 4, 9)]


def _kflow_raw() -> bytes:
    part = {"key": "k", "etag": "", "size": 0, "last_modified": 0, "device_name": "d", "subnet_id": "s",
            "region": "r", "zone": "z", "chunk": 0, "chunks": 1, "source_flows": 0, "start": 0, "flow_count": 0}
    return Codec("kflow_batch").encode({"bucket": "b", "flow_count": 0, "parts": [part], **pack_kflow_columns({})})


def test_mark_replay_sets_the_flag_and_skips_earlier_replays():
    codec = Codec("kflow_batch")
    raw = _kflow_raw()
    value, decoded = mark_replay(codec, raw)
    assert codec.decode(value)["replay"] is True and decoded["parts"][0]["key"] == "k"
    assert mark_replay(codec, value) == (None, codec.decode(value))
    assert mark_replay(codec, value, include_replays=True)[0] is not None


def test_newest_dead_letter_per_key_newest_first():
    def letter(key, at, offset, reason):
        return Letter({"key": key, "at": at, "stage": "json", "reason": reason, "etag": "e"}, 0, offset)

    newest = newest_per_key([letter("a", 1, 0, "old"), letter("b", 5, 1, "b"), letter("a", 9, 2, "new")])
    assert [(x.key, x.record["reason"]) for x in newest] == [("a", "new"), ("b", "b")]
    rows = numbered([letter("a", 1, 0, "old"), letter("b", 5, 1, "b"), letter("a", 9, 2, "new")])
    assert [(n, x.key) for n, x in rows] == [(1, "b"), (2, "a")]  # oldest first: new ones get new numbers
    lines = table_lines(rows)
    assert len(lines) == 5 and lines[3].startswith("2  ") and lines[3].endswith("  a") and "new" in lines[4]


HOSTILE = "logs/" + "x" * 90 + "/\x1b[2J\x1b]0;owned\x07\r\nFAKE\u202e\x9b.json.gz"
SHOWN = "logs/" + "x" * 90 + r"/\x1b[2J\x1b]0;owned\x07\r\nFAKE\u202e\x9b.json.gz"


def test_list_shows_whole_keys_and_reasons_with_every_control_character_escaped():
    from tests.unit.formats.test_textsafe import is_safe

    rows = numbered([Letter({"key": HOSTILE, "at": 1, "stage": "json\x1b[31m", "reason": "bad\nline\x07"}, 0, 0)])
    lines = table_lines(rows)
    assert len(lines) == 3 and all(is_safe(line) for line in lines)
    assert lines[1].endswith(SHOWN) and "…" not in lines[1] and r"json\x1b[31m" in lines[1]
    assert lines[2].endswith(r"reason: bad\nline\x07")


def test_show_and_retry_accept_the_list_number_or_the_key_as_printed():
    rows = numbered([Letter({"key": HOSTILE, "at": 1}, 0, 0), Letter({"key": "plain", "at": 2}, 0, 1)])
    assert resolve(rows, [], [1, 2]) == ([("default", HOSTILE), ("default", "plain")], [])
    assert resolve(rows, [SHOWN, "plain", "never-quarantined"], []) == (
        [("default", HOSTILE), ("default", "plain"), ("default", "never-quarantined")], [])
    assert resolve(rows, [], [3])[1] == ["no dead letter #3: `blueflow deadletter list` numbers 2 objects (1-2)"]


def test_retry_without_a_target_says_what_to_give():
    from click.testing import CliRunner

    from streams.ops.cli import main

    result = CliRunner().invoke(main, ["deadletter", "retry"])
    assert result.exit_code == 2 and "nothing to retry: give object KEYS, --index N" in result.output
    result = CliRunner().invoke(main, ["deadletter", "retry", "k", "--all"])
    assert result.exit_code == 2 and "without KEYS or --index" in result.output


def test_retry_reference_uses_the_current_etag_and_forces():
    head = SimpleNamespace(etag='"abc"', size=12, last_modified=99)
    ref = object_ref_for_retry("bucket", "key", head, NOW)
    assert ref["etag"] == "abc" and ref["force"] is True and ref["republish"] is False and ref["source"] == ""
    Codec("object_ref").encode(ref)  # valid against the schema
    ref = object_ref_for_retry("bucket-b", "key", head, NOW, "acct-b")
    assert ObjectRef.decode(Codec("object_ref").encode(ref)).skey == "acct-b\x1fkey"  # its source's identity


def _letter(key, source, at, offset, reason="r"):
    record = {"key": key, "at": at, "stage": "json", "reason": reason, "etag": "e"}
    return Letter(dict(record, source=source) if source is not None else record, 0, offset)


def test_dead_letters_of_two_sources_with_the_same_key_are_two_objects_and_filter_by_source():
    letters = [_letter("k", "acct-a", 1, 0), _letter("k", "acct-b", 2, 1), _letter("v1", "", 3, 2)]
    rows = numbered(letters)
    assert [(n, x.source, x.key) for n, x in rows] == [(1, "acct-a", "k"), (2, "acct-b", "k"), (3, "default", "v1")]
    lines = table_lines(rows)
    assert "source" in lines[0] and "acct-b  k" in lines[3] and "default  v1" in lines[5]
    assert [x.key for x in of_source(letters, "acct-b")] == ["k"] and of_source(letters, None) == letters
    assert [x.source for x in of_source(letters, "default")] == ["default"]
    assert "source" not in table_lines(numbered([_letter("k", None, 1, 0)]))[0]  # one implicit source: as before


def test_retry_targets_name_their_source_and_an_ambiguous_key_asks_for_source():
    rows = numbered([_letter("k", "acct-a", 1, 0), _letter("k", "acct-b", 2, 1), _letter("only-b", "acct-b", 3, 2)])
    both = ("acct-a", "acct-b")
    assert resolve(rows, [], [2, 3], None, both) == ([("acct-b", "k"), ("acct-b", "only-b")], [])
    assert resolve(rows, ["only-b"], [], None, both) == ([("acct-b", "only-b")], [])
    targets, problems = resolve(rows, ["k", "never"], [], None, both)
    assert targets == [] and "k: quarantined in sources acct-a, acct-b: say which with --source" in problems[0]
    assert "never: no dead letter; configured sources acct-a, acct-b" in problems[1]
    assert resolve(rows, ["k", "never"], [], "acct-a", both) == ([("acct-a", "k"), ("acct-a", "never")], [])


def test_replay_of_one_source_skips_the_others_records():
    from streams.ops.replay import of_source as replay_of_source

    codec = Codec("kflow_batch")
    assert replay_of_source({"source": ""}, "default") and replay_of_source({"source": "acct-a"}, None)
    assert not replay_of_source({"source": "acct-a"}, "acct-b") and not replay_of_source({"source": ""}, "acct-a")
    raw = codec.encode(dict(codec.decode(_kflow_raw()), source="acct-a"))
    assert mark_replay(codec, raw, source="acct-b")[0] is None
    value, record = mark_replay(codec, raw, source="acct-a")
    assert codec.decode(value)["replay"] is True and record["source"] == "acct-a"


def test_stage_lag_counts_uncommitted_partitions_from_zero():
    assert stage_lag({0: 10, 1: 4}, {0: 7}) == {"lag": 7, "end": 14, "committed": 7,
                                                "partitions": {"0": 3, "1": 4}}
    assert stage_lag({0: 5}, {0: -1001})["lag"] == 5  # OFFSET_INVALID: nothing committed


def test_bucket_summary_ignores_quarantined_objects_for_age():
    obj = SimpleNamespace
    listing = [obj(key="a", etag="1", size=10, last_modified=NOW - 60_000),
               obj(key="b", etag="2", size=5, last_modified=NOW - 5_000)]
    assert bucket_summary(listing, {("a", "1")}, NOW) == {"objects": 2, "bytes": 15, "pending": 1,
                                                          "quarantined": 1, "oldest_pending_age_s": 5.0}


def test_rates_and_metric_parsing():
    assert rates({"flows_parsed": 10}, {"flows_parsed": 30}, 2.0)["flows_parsed_per_s"] == 10.0
    text = ('blueflow_kentik_requests_total{result="200"} 4.0\nblueflow_kentik_requests_total{result="429"} 1.0\n'
            'blueflow_cos_operations_total{operation="get",result="error"} 2.0\n')
    samples = parse_metrics(text)
    assert by_label(samples, "blueflow_kentik_requests_total", "result") == {"200": 4, "429": 1}
    assert by_label(samples, "blueflow_cos_operations_total", "operation", result="error") == {"get": 2}


def test_render_draws_a_status_document():
    from rich.console import Console

    doc = {"app_id": "blueflow", "at": "2026-11-27T08:00:00Z", "healthy": False,
           "workers": [{"url": "http://w1", "ok": True, "leader": True, "healthy": True, "problems": [],
                        "uptime_s": 5, "lag": 0, "error": None},
                       {"url": "http://w2", "ok": False, "error": "refused"}],
           "lag": {"sink": {"topic": "blueflow.kflow", "lag": 3, "end": 9}}, "in_flight": 2,
           "bucket": {"oldest_pending_age_s": 12.0}, "rates": {"flows_parsed_per_s": 1.5},
           "counts": {}, "kentik": {"200": 4}, "cos_errors": {}, "deadletters": {"objects": 1, "by_stage": {"json": 1}},
           "errors": ["worker http://w2: refused"]}
    console = Console(record=True, width=120)
    console.print(render(doc))
    text = console.export_text()
    assert "UNHEALTHY" in text and "blueflow.kflow" in text and "200: 4" in text and "down" in text


def test_an_ipfix_worker_shows_what_it_exported_not_kflow_delivered():
    from rich.console import Console

    doc = {"app_id": "blueflow", "at": "2026-11-27T08:00:00Z", "healthy": True,
           "workers": [{"url": "http://w1", "ok": True, "leader": True, "healthy": True, "problems": [],
                        "uptime_s": 5, "lag": 0, "error": None, "counts": {"ipfix_exported": 700},
                        "rates": {"ipfix_exported_per_s": 350.0, "chf_delivered_per_s": 0.0}}],
           "lag": {}, "in_flight": 0, "bucket": {}, "rates": {}, "counts": {"ipfix_exported": 700},
           "kentik": {}, "cos_errors": {}, "deadletters": {"objects": 0, "by_stage": {}}, "errors": []}
    console = Console(record=True, width=120)
    console.print(render(doc))
    text = console.export_text()
    assert "700 IPFIX exported" in text and "350" in text


def test_render_shows_errors_whole_and_escapes_every_outside_string():
    from rich.console import Console

    from tests.unit.formats.test_textsafe import is_safe

    cause = "Max retries exceeded with url: /service/info (Caused by NewConnectionError: [Errno 111] " \
            "Connection refused) " + "x" * 150 + " THE-CAUSE-AT-THE-END"
    doc = {"app_id": "run\x1b]0;title\x07", "at": "2026-11-27T08:00:00Z", "healthy": False,
           "workers": [{"url": "http://w2", "ok": False, "error": "ConnectionError: " + cause},
                       {"url": "http://w1", "ok": True, "leader": False, "healthy": False, "uptime_s": 5, "lag": 7,
                        "problems": ["delete of k\x1b[2J failed"], "counts": {"objects_completed": 3},
                        "rates": {"flows_parsed_per_s": 12.5, "chf_delivered_per_s": 10.0}, "error": None}],
           "lag": None, "in_flight": None, "bucket": None, "rates": None, "counts": {}, "kentik": {},
           "cos_errors": {}, "errors": ["worker http://w2: ConnectionError: " + cause],
           "deadletters": {"objects": 1, "by_stage": {"json": 1},
                           "newest": [{"at_iso": "2026-11-27T07:59:00Z", "stage": "json", "key": HOSTILE,
                                       "reason": "not gzip\n[CRITICAL] forged"}]}}
    console = Console(record=True, width=240, force_terminal=True)
    console.print(render(doc))
    text = console.export_text()
    assert all(is_safe(line) for line in text.splitlines())
    assert text.count("THE-CAUSE-AT-THE-END") == 1  # whole in the errors; the worker's note is one line
    assert "12.5" in text and "10" in text and r"k\x1b[2J failed" in text and r"\n[CRITICAL] forged" in text
    assert "".join(text.split()).count("".join(SHOWN.split())[:60]) == 1  # the hostile key, folded, whole


def test_status_fits_80_columns_with_a_worker_down():
    from rich.console import Console

    cause = ("ConnectionError: HTTPConnectionPool(host='10.1.2.3', port=8083): Max retries exceeded with url: "
             "/service/info (Caused by NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f>: "
             "Failed to establish a new connection: [Errno 111] Connection refused')) THE-END")
    up = {"ok": True, "leader": False, "healthy": True, "problems": [], "uptime_s": 5000, "lag": 12, "error": None,
          "counts": {"objects_completed": 123456}, "rates": {"flows_parsed_per_s": 1234.5, "chf_delivered_per_s": 99}}
    doc = {"app_id": "blueflow", "at": "2026-11-27T08:00:00Z", "healthy": False,
           "workers": [dict(up, url="http://10.1.2.1:8083", leader=True), {"url": "http://10.1.2.3:8083",
                                                                            "ok": False, "error": cause},
                       dict(up, url="http://10.1.2.4:8083", healthy=False, problems=["Kentik refused the token"])],
           "lag": {"sink": {"topic": "blueflow.kflow", "lag": 3, "end": 9}}, "in_flight": 2,
           "bucket": {"oldest_pending_age_s": 12.0}, "rates": {}, "counts": {}, "kentik": {"200": 4},
           "cos_errors": {}, "deadletters": {"objects": 0, "by_stage": {}},
           "errors": ["worker http://10.1.2.3:8083: " + cause]}
    console = Console(record=True, width=80)
    console.print(render(doc))
    lines = console.export_text().splitlines()
    assert len(lines) <= 30 and max(len(line) for line in lines) <= 80
    assert lines[0].startswith("blueflow status · app blueflow ·") and "blueflow blueflow" not in lines[0]
    rows = [line for line in lines if line.lstrip().startswith("10.1.2.")]
    assert len(rows) == 3 and "down" in rows[1] and "123456" in rows[0] and "1234.5" in rows[0]
    note = next(line for line in lines if line.startswith("http://10.1.2.3:8083: ConnectionError"))
    assert note.endswith("…")  # one line, cut; the whole error is in the errors above (and in --json)
    assert "THE-END" in " ".join(lines) and "http://10.1.2.4:8083: Kentik refused the token" in lines


def test_status_view_shows_each_sources_backlog_oldest_object_and_problems():
    from rich.console import Console

    from streams.ops.source_status import waiting_totals, with_worker_problems

    backlogs = {"acct-a": {"bucket": "bucket-a", "pending": 12, "oldest_pending_age_s": 95.0},
                "acct-b": {"bucket": "bucket-b", "error": "EndpointConnectionError: b down"}}
    workers = [{"sources": [{"source": "acct-b", "problem": "COS of bucket-b failing\x1b[2J"},
                            {"source": "acct-a", "problem": ""}]},
               {"sources": [{"source": "acct-b", "problem": "COS of bucket-b failing\x1b[2J"}]}]
    sources = with_worker_problems(backlogs, workers)
    assert sources["acct-a"]["problems"] == [] and sources["acct-b"]["problems"] == ["COS of bucket-b failing\x1b[2J"]
    assert waiting_totals(sources) == {"pending": 12, "oldest_pending_age_s": 95.0}
    assert waiting_totals({"acct-b": sources["acct-b"]}) is None and with_worker_problems({}, workers) == {}
    doc = {"app_id": "blueflow", "at": "2026-11-27T08:00:00Z", "healthy": True, "workers": [], "lag": None,
           "in_flight": 12, "bucket": {"oldest_pending_age_s": 95.0}, "rates": None, "counts": {}, "kentik": {},
           "cos_errors": {}, "deadletters": None, "errors": [], "sources": sources}
    console = Console(record=True, width=160)
    console.print(render(doc))
    text = console.export_text()
    row_a = next(line for line in text.splitlines() if "acct-a" in line)
    row_b = next(line for line in text.splitlines() if "acct-b" in line)
    assert "bucket-a" in row_a and "12" in row_a and "95s" in row_a and "ok" in row_a
    assert "?" in row_b and "b down" in row_b and r"failing\x1b[2J" in text
    assert "sources" in text and "objects waiting" in text and "12" in text


def test_status_adds_up_the_sources_backlogs_and_names_a_failing_listing_as_its_source_wants():
    """One rendering for N sources: the document's `bucket` is every source's summary added up (with one source,
    that source's summary), and a listing that fails is an error worded for where the source came from."""
    from dataclasses import replace

    from streams.config.settings import Settings
    from streams.ops.source_status import listing_errors, waiting_totals

    one = {"objects": 3, "bytes": 30, "pending": 2, "quarantined": 1, "oldest_pending_age_s": 7.0}
    assert waiting_totals({"default": dict(one, bucket="b")}) == one
    two = {"acct-a": dict(one, bucket="a"), "acct-b": dict(one, oldest_pending_age_s=None, bucket="b"),
           "acct-c": {"bucket": "c", "error": "EndpointConnectionError: down"}}
    assert waiting_totals(two) == {"objects": 6, "bytes": 60, "pending": 4, "quarantined": 2,
                                   "oldest_pending_age_s": 7.0}
    flags = Settings.from_env({"BLUEFLOW_BUCKET": "b"})
    assert listing_errors(flags, {"default": {"bucket": "b", "error": "E: x"}}) == ["bucket listing: E: x"]
    listed = replace(flags, sources=(replace(flags.sources[0], name="acct-c", from_flags=False),))
    assert listing_errors(listed, two) == ["source acct-c: bucket listing: EndpointConnectionError: down"]


def test_worker_dns_gives_one_url_per_address_of_a_headless_service():
    from streams.ops.status import pod_urls

    answers = [(2, 1, 6, "", ("10.0.0.7", 8083)), (2, 1, 6, "", ("10.0.0.5", 8083)),
               (2, 1, 6, "", ("10.0.0.7", 8083)), (10, 1, 6, "", ("fd00::9", 8083, 0, 0))]
    assert pod_urls("blueflow-pods:8083", resolve=lambda *a, **k: answers) == [
        "http://10.0.0.5:8083", "http://10.0.0.7:8083", "http://[fd00::9]:8083"]
    assert pod_urls("127.0.0.1:9") == ["http://127.0.0.1:9"]
    with pytest.raises(ValueError, match="not host:port"):
        pod_urls("blueflow-pods")
    with pytest.raises(ValueError, match="does not resolve"):
        pod_urls("no-such-host.invalid:8083")


def test_status_reads_kafka_with_librdkafka_logging_off(monkeypatch):
    """An unreachable Kafka is reported in the status document, not as librdkafka's log lines on stderr."""
    from streams.ops import replay, status
    from streams.config.settings import Settings

    seen = {}

    def consumer(conf, name):
        seen.update(conf)
        raise RuntimeError("no broker")

    monkeypatch.setattr(replay, "throwaway_consumer", consumer)
    with pytest.raises(RuntimeError):
        status.kafka_lag(Settings.resolve(environ={}))
    assert seen["log_level"] == 0


def test_a_status_sample_is_interruptible_while_it_blocks():
    """Ctrl-C (KeyboardInterrupt in the main thread) ends the wait at once, whatever the sample blocks in."""
    import _thread
    import threading
    import time as _time

    from streams.ops.statusview import interruptible

    assert interruptible(lambda: 42) == 42
    with pytest.raises(ValueError, match="boom"):
        interruptible(lambda: (_ for _ in ()).throw(ValueError("boom")))
    threading.Timer(0.3, _thread.interrupt_main).start()
    started = _time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        interruptible(lambda: _time.sleep(10))
    assert _time.monotonic() - started < 1.5
