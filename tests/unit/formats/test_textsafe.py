"""Text printed on a terminal or in a log line: no control, bidi or line-breaking character gets through."""
from __future__ import annotations

import pytest

from streams.formats.textsafe import _UNSAFE, escape, escape_lines


def is_safe(text: str) -> bool:
    """True when printing `text` can neither control a terminal nor break a line."""
    return _UNSAFE.search(text) is None


@pytest.mark.parametrize("raw, shown", [
    ("logs/\x1b[2Jcleared", "logs/\\x1b[2Jcleared"),                      # erase screen
    ("a\x1b]0;owned\x07b", "a\\x1b]0;owned\\x07b"),                        # OSC window title + BEL
    ("ok\rFAKE", "ok\\rFAKE"),                                             # carriage return overwrites
    ("k\n[2026-01-01] [CRITICAL] FAKE", "k\\n[2026-01-01] [CRITICAL] FAKE"),  # forged log line
    ("flow\u202egol.zg", "flow\\u202egol.zg"),                              # right-to-left override
    ("x\x9b31mred", "x\\x9b31mred"),                                       # C1 CSI
    ("a\tb\x00c\x7f", "a\\tb\\x00c\\x7f"),
    ("nel\x85sep\u2028", "nel\\x85sep\\u2028"),
    ("ibm/flow-logs/vpc/2026/é.json.gz", "ibm/flow-logs/vpc/2026/é.json.gz"),  # ordinary text untouched
])
def test_escape_makes_every_dangerous_character_visible(raw, shown):
    assert escape(raw) == shown
    assert is_safe(escape(raw))
    assert is_safe(raw) == (raw == shown)


def test_escape_accepts_anything_and_escape_lines_keeps_real_line_breaks():
    assert escape(None) == "" and escape(42) == "42"
    assert escape_lines("Traceback\n  boom \x1b[2J") == ["Traceback", "  boom \\x1b[2J"]
