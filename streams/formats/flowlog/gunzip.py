"""Streaming gunzip of an object's byte chunks, with a limit on the decompressed size.

`Inflater(chunks, max_bytes)` iterates the decompressed text in pieces of at most PIECE bytes, so a gzip bomb
or a huge object never sits in memory whole. A body that does not start with the gzip magic (1f 8b) is passed
through as is (some clients hand back already-decompressed bytes). Concatenated gzip members and trailing
zero padding are valid, as for gzip(1). Problems raise FlowLogError(stage="decompress").
python-isal (ISA-L) inflates about twice as fast as zlib; zlib is the fallback when it is not installed.
"""
from __future__ import annotations

import zlib
from typing import Iterable, Iterator

from streams.formats.flowlog.flowcheck import FlowLogError

try:
    from isal import isal_zlib as _inflate_lib
    _INFLATE_ERRORS: tuple[type[Exception], ...] = (_inflate_lib.error, zlib.error)
except ImportError:  # pragma: no cover - isal is a dependency; zlib keeps working without it
    _inflate_lib = zlib
    _INFLATE_ERRORS = (zlib.error,)

__all__ = ["Inflater", "PIECE", "LIMIT_HINT"]

PIECE = 256 * 1024
LIMIT_HINT = "set by --max_object_bytes / BLUEFLOW_MAX_OBJECT_BYTES"


class Inflater:
    """Iterate an object's decompressed bytes; afterwards `gzip` says whether it was gzip, `size` how big."""

    def __init__(self, chunks: Iterable[bytes], max_bytes: int = 0):
        self._chunks = iter(chunks)
        self.max_bytes = max_bytes if max_bytes > 0 else 0  # 0: unlimited
        self.gzip = False
        self.head = b""  # the first bytes of the object, for error messages
        self.size = 0
        self._pieces = self._generate()

    def __iter__(self) -> Iterator[bytes]:
        return self._pieces

    def drain(self) -> None:
        """Read the rest of the object (output discarded) so that a decompress error later on wins."""
        for _ in self._pieces:
            pass

    def _generate(self) -> Iterator[bytes]:
        head = b""
        for chunk in self._chunks:  # gather at least two bytes to look at the magic
            if chunk:
                head += bytes(chunk)
                if len(head) >= 2:
                    break
        self.head = head[:8]
        if not head:
            raise FlowLogError("decompress", "object is empty (0 bytes), expected gzip-compressed JSON")
        if head[:2] == b"\x1f\x8b":
            self.gzip = True
            yield from self._inflate(head)
        else:
            yield from self._plain(head)

    def _count(self, n: int) -> None:
        self.size += n
        if self.max_bytes and self.size > self.max_bytes:
            if self.gzip:
                raise FlowLogError("decompress", f"decompressed size exceeds the limit of {self.max_bytes} bytes "
                                                 f"{LIMIT_HINT} (a gzip bomb, or an object far larger than normal: "
                                                 "raise the setting to accept it)")
            raise FlowLogError("decompress", f"object body is larger than the limit of {self.max_bytes} bytes "
                                             f"{LIMIT_HINT}")

    def _plain(self, head: bytes) -> Iterator[bytes]:
        self._count(len(head))
        yield head
        for chunk in self._chunks:
            if chunk:
                self._count(len(chunk))
                yield bytes(chunk)

    def _inflate(self, head: bytes) -> Iterator[bytes]:
        d = _inflate_lib.decompressobj(31)
        tail = b""  # bytes after the end of a gzip member, not yet classified
        padded = False  # saw zero padding after the last member
        for chunk in self._chunks_after(head):
            data = chunk
            while True:
                if d.eof:
                    if not data:
                        break
                    tail += data
                    data = b""
                    if padded or len(tail) < 2:
                        break
                    if tail[:2] == b"\x1f\x8b":  # another gzip member (concatenated gzip is valid gzip)
                        d = _inflate_lib.decompressobj(31)
                        data, tail = tail, b""
                        continue
                    if tail.strip(b"\x00"):
                        raise _garbage(tail)
                    padded, tail = True, b""  # zero padding is tolerated, as gzip(1) does
                    break
                try:
                    piece = d.decompress(data, PIECE)
                except _INFLATE_ERRORS as exc:
                    raise FlowLogError("decompress", f"corrupt gzip data: {exc}") from None
                if piece:
                    self._count(len(piece))
                    yield piece
                data = d.unused_data if d.eof else d.unconsumed_tail
                if not data and not d.eof and len(piece) < PIECE:
                    break  # all input used and no output held back: wait for the next chunk
            if padded:
                if tail.strip(b"\x00"):
                    raise _garbage(tail)
                tail = b""
        if tail.strip(b"\x00"):
            raise _garbage(tail)
        if not d.eof:
            raise FlowLogError("decompress", f"truncated gzip: the stream ended early after {self.size} "
                                             "decompressed bytes (incomplete upload or download?)")

    def _chunks_after(self, head: bytes) -> Iterator[bytes]:
        yield head
        for chunk in self._chunks:
            if chunk:
                yield chunk


def _garbage(rest: bytes) -> FlowLogError:
    return FlowLogError("decompress", "unexpected data after the end of the gzip stream "
                                      f"(starts with {rest[:8].hex(' ')})")
