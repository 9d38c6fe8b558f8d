"""Text that is safe to print on a terminal or in a log line.

Object keys, dead-letter reasons and error messages come from outside (whoever can write to the bucket,
a peer's error body). Printed raw, a key can clear the screen (`ESC[2J`), set the window title
(`ESC]0;...BEL`), ring the bell, reverse the text direction (U+202E) or start a forged log line (`\\n`).
`escape` turns every such character into a visible escape sequence, so what is printed is one line of
harmless characters that still shows exactly what the text contained.
"""
from __future__ import annotations

import re

# C0 controls (NUL..US, including TAB, LF, CR, ESC), DEL, C1 controls (0x80..0x9f, e.g. CSI 0x9b and NEL),
# bidirectional overrides/isolates/marks, and the Unicode line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match) -> str:
    ch = match.group(0)
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text) -> str:
    """`text` (anything; `str()` is applied) with every control, bidi and line-breaking character escaped."""
    text = "" if text is None else str(text)
    return _UNSAFE.sub(_escape_char, text)


def escape_lines(text: str) -> list[str]:
    """The lines of a legitimately multi-line text (a traceback), each one escaped."""
    return [escape(line) for line in str(text).split("\n")]


def is_safe(text: str) -> bool:
    """True when printing `text` can neither control a terminal nor break a line."""
    return _UNSAFE.search(text) is None
