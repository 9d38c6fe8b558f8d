"""Incremental scanner of one flow-log JSON document, fed decompressed pieces as they are downloaded.

It never holds more than about one piece plus one JSON value: the top-level object's members other than
`flow_logs` come out as their raw bytes, and the `flow_logs` array comes out in batches of records.

Fast path: the records up to the last '}' in the buffer are handed to `decode_batch` as one JSON array
(msgspec, in C). If that decodes, the cut was a record boundary: a cut inside a string or a nested value
cannot leave a valid array. If it does not (a bad record, or a '}' inside a string), the same bytes are
split record by record by an exact scanner (strings and nesting tracked with regular expressions) and each
record comes out on its own, so the caller can name the bad one.

Events: ("member", name, raw_value) · ("flows_start",) · ("flows", decoded, payload) · ("flow", raw_record)
· ("document", raw_or_None, first_char) when the document is not a JSON object (None: larger than the cap).
Problems raise JsonSyntaxError (not JSON) or ValueTooLarge (one value over `max_value_bytes`).
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Iterator

import msgspec

__all__ = ["DocumentScanner", "JsonSyntaxError", "ValueTooLarge"]

_WS = re.compile(rb"[ \t\n\r]*")
_STR = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.S)  # possessive: no backtracking
_SIG = re.compile(rb'["\[\]{}]')
_SCALAR = re.compile(rb'[^ \t\n\r,\]}\[{":]*')
_QUOTE, _LBRACE, _RBRACE, _LBRACKET, _RBRACKET, _COMMA, _COLON = b'"{}[],:'
_DECODE_ERRORS = (msgspec.DecodeError, RecursionError)


class JsonSyntaxError(Exception):
    """The decompressed text is not JSON; `reason` says where, in words."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ValueTooLarge(Exception):
    """One JSON value (`what`) is larger than the cap: refused before it is held in memory."""

    def __init__(self, what: str, cap: int):
        super().__init__(f"{what} is larger than {cap} bytes")
        self.what = what
        self.cap = cap


def decode_value(raw: bytes | bytearray, what: str) -> Any:
    """msgspec's untyped decode of one JSON value; not JSON (or nested too deep) -> JsonSyntaxError."""
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise JsonSyntaxError(f"{what}: {exc}") from None
    except RecursionError:
        raise JsonSyntaxError(f"{what} is nested too deeply") from None


class DocumentScanner:
    """Scan one JSON document from an iterable of byte pieces; see the module docstring."""

    def __init__(self, pieces: Iterable[bytes], *, max_value_bytes: int,
                 decode_batch: Callable[[bytes | bytearray], list]):
        self._pieces = iter(pieces)
        self.buf = bytearray()
        self.pos = 0
        self.eof = False
        self.cap = max_value_bytes
        self.decode_batch = decode_batch  # may be swapped by the caller between events
        self.blank = True  # nothing but whitespace seen so far
        self.count = 0  # flow records scanned
        self._exact_until = 0  # records before this offset go through the exact path

    # ------------------------------------------------------------------------------------ buffer
    def _fill(self) -> bool:
        """Append the next piece (dropping what was consumed); False at the end of the document."""
        if self.pos:
            del self.buf[:self.pos]
            self._exact_until = max(0, self._exact_until - self.pos)
            self.pos = 0
        for piece in self._pieces:
            if piece:
                self.buf += piece
                return True
        self.eof = True
        return False

    def _skip_ws(self) -> bool:
        """Move to the next non-whitespace byte; False at the end of the document."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf):
                return True
            if not self._fill():
                return False

    def _expect_more(self, where: str) -> int:
        if not self._skip_ws():
            raise JsonSyntaxError(f"the document ends {where}")
        return self.buf[self.pos]

    def _value_end(self, p: int) -> int | None:
        """End offset of the JSON value starting at p, None if the buffer ends before it does."""
        buf = self.buf
        c = buf[p]
        if c == _QUOTE:
            m = _STR.match(buf, p)
            return m.end() if m else None
        if c == _LBRACE or c == _LBRACKET:
            depth, i = 0, p
            search, string = _SIG.search, _STR.match
            while True:
                m = search(buf, i)
                if m is None:
                    return None
                j = m.start()
                c = buf[j]
                if c == _QUOTE:
                    s = string(buf, j)
                    if s is None:
                        return None
                    i = s.end()
                    continue
                depth += 1 if c == _LBRACE or c == _LBRACKET else -1
                i = j + 1
                if depth == 0:
                    return i
        end = _SCALAR.match(buf, p).end()
        if end == p:
            raise JsonSyntaxError(f"unexpected character {chr(c)!r} where a value should start")
        return None if end == len(buf) and not self.eof else end

    def _value(self, what: str) -> tuple[int, int]:
        """(start, end) of the complete JSON value at pos, reading more as needed, within the cap."""
        while True:
            end = self._value_end(self.pos)
            if end is not None:
                if end - self.pos > self.cap:
                    raise ValueTooLarge(what, self.cap)
                return self.pos, end
            if len(self.buf) - self.pos > self.cap:
                raise ValueTooLarge(what, self.cap)
            if not self._fill():
                raise JsonSyntaxError(f"the document ends inside {what}")

    # ------------------------------------------------------------------------------------ grammar
    def events(self) -> Iterator[tuple]:
        if not self._skip_ws():
            return
        self.blank = False
        if self.buf[self.pos] != _LBRACE:
            yield ("document",) + self._whole_document()
            return
        self.pos += 1
        c = self._expect_more("inside the top-level object")
        if c == _RBRACE:
            self.pos += 1
        else:
            yield from self._members()
        if self._skip_ws():
            raise JsonSyntaxError("unexpected data after the end of the JSON document")

    def _members(self) -> Iterator[tuple]:
        while True:
            if self.buf[self.pos] != _QUOTE:
                raise JsonSyntaxError("expected a member name in the top-level object")
            start, end = self._value("a member name")
            name = decode_value(self.buf[start:end], "a member name")
            self.pos = end
            if self._expect_more(f"after the member name {name!r}") != _COLON:
                raise JsonSyntaxError(f"expected ':' after the member name {name!r}")
            self.pos += 1
            c = self._expect_more(f"before the value of {name!r}")
            if name == "flow_logs" and c == _LBRACKET:
                self.pos += 1
                yield ("flows_start",)
                yield from self._array()
            else:
                start, end = self._value(f"header field {name!r}")
                self.pos = end
                yield ("member", name, bytes(self.buf[start:end]))
            c = self._expect_more("inside the top-level object")
            self.pos += 1
            if c == _RBRACE:
                return
            if c != _COMMA:
                raise JsonSyntaxError(f"expected ',' or '}}' after the value of {name!r}, found {chr(c)!r}")
            self._expect_more("inside the top-level object")

    def _array(self) -> Iterator[tuple]:
        where = "inside flow_logs"
        if self._expect_more(where) == _RBRACKET:
            self.pos += 1
            return
        while True:
            yield from self._records()
            c = self._expect_more(where)
            self.pos += 1
            if c == _RBRACKET:
                return
            if c != _COMMA:
                raise JsonSyntaxError(f"expected ',' or ']' after flow record {self.count - 1}, found {chr(c)!r}")
            self._expect_more(where)

    def _records(self) -> Iterator[tuple]:
        """One or more records from pos (at a record's first byte); pos ends right after the last one."""
        while self.buf[self.pos] == _LBRACE and self.pos >= self._exact_until:
            cut = self.buf.rfind(b"}", self.pos)
            if cut < 0:
                if len(self.buf) - self.pos > self.cap:
                    raise ValueTooLarge(f"flow record {self.count}", self.cap)
                if not self._fill():
                    raise JsonSyntaxError(f"the document ends inside flow record {self.count}")
                continue
            cut = self._before_array_end(cut)
            payload = bytearray(b"[")
            with memoryview(self.buf) as view:
                payload += view[self.pos:cut + 1]
            payload += b"]"
            try:
                decoded = self.decode_batch(payload)
            except _DECODE_ERRORS:
                self._exact_until = cut + 1  # split these bytes record by record
                break
            self.pos = cut + 1
            self.count += len(decoded)
            yield ("flows", decoded, payload)
            return
        start, end = self._value(f"flow record {self.count}")
        self.pos = end
        self.count += 1
        yield ("flow", bytes(self.buf[start:end]))

    def _before_array_end(self, cut: int) -> int:
        """At the end of flow_logs the last '}' closes the document ("...}]}"): cut at the one before."""
        buf, j = self.buf, cut - 1
        while j > self.pos and buf[j] in b" \t\n\r":
            j -= 1
        if buf[j] == _RBRACKET:
            before = buf.rfind(b"}", self.pos, j)
            if before >= 0:
                return before
        return cut

    def _whole_document(self) -> tuple[bytes | None, str]:
        """A document that is not an object is read whole (up to the cap) so it can be described."""
        first = chr(self.buf[self.pos])
        while self._fill():
            if len(self.buf) - self.pos > self.cap:
                return None, first
        return bytes(self.buf[self.pos:]), first
