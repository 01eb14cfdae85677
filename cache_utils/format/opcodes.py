"""Checking that a decompressed stream is one whole pickle without unpickling it: a walk of its
opcodes with `pickletools.genops`, which parses them and runs no code (housekeeping never
executes data), in bounded memory."""

from __future__ import annotations

import pickletools
from typing import IO, Any, cast

from .reader import read_exactly

# An argument longer than _HOLD is read through and dropped; a text-protocol line longer than
# _MAX_LINE is refused.
_HOLD = 1 << 20
_MAX_LINE = 16 << 20
_BUFFER = 64 << 10


def walk_opcodes(gz: Any) -> None:
    """Walk every opcode of the pickle that `gz` (a decompressed stream) holds: ValueError (or
    what `pickletools` raises) when it is not one whole pickle, or has bytes after it. A class
    that no longer exists is not noticed: that takes unpickling."""
    # genops only calls read and readline: _OpcodeSource is the file it needs.
    source = _OpcodeSource(gz)
    for _ in pickletools.genops(cast(IO[bytes], source)):
        pass
    if not source.at_end():
        raise ValueError("data after the end of the pickle")


class _Dropped(bytes):
    """Stands for an opcode argument of `length` bytes that was read and dropped: pickletools'
    argument readers only compare its length (and decode it, giving '')."""

    length: int

    def __new__(cls, length: int) -> _Dropped:
        dropped = super().__new__(cls)
        dropped.length = length
        return dropped

    def __len__(self) -> int:
        return self.length


class _OpcodeSource:
    """The decompressed stream as `pickletools.genops` reads it, in bounded memory: it reads each
    opcode argument with one `read(n)`, and a large one (a 1 GB column) is consumed in pieces.
    Small reads (one a byte per opcode) are served from a 64 KiB buffer: a call to the gzip
    reader per opcode would cost as much as the walk."""

    def __init__(self, gz: Any) -> None:
        self._gz = gz
        self._buf = b""
        self._pos = 0

    def read(self, size: int = -1) -> bytes:
        pos = self._pos
        if 0 <= size <= len(self._buf) - pos:
            self._pos = pos + size
            return self._buf[pos : pos + size]
        if size < 0:
            raise ValueError("a pickle opcode without a length")  # pragma: no cover - genops never asks
        have = self._buf[pos:]
        self._buf, self._pos = b"", 0
        if size > _HOLD:
            left = size - len(have)
            while left and (piece := self._gz.read(min(left, _HOLD))):
                left -= len(piece)
            return _Dropped(size - left)
        self._buf = have + read_exactly(self._gz, max(size - len(have), _BUFFER))
        self._pos = min(size, len(self._buf))
        return self._buf[:size]

    def at_end(self) -> bool:
        """Whether nothing is left: neither in the buffer nor in the stream."""
        return self._pos == len(self._buf) and not self._gz.read(1)

    def readline(self) -> bytes:
        end = self._buf.find(b"\n", self._pos, self._pos + _MAX_LINE)
        if end >= 0:
            line = self._buf[self._pos : end + 1]
            self._pos = end + 1
            return line
        have = self._buf[self._pos :]
        self._buf, self._pos = b"", 0
        if len(have) >= _MAX_LINE:  # no newline in the first _MAX_LINE bytes
            return have[:_MAX_LINE]
        rest: bytes = self._gz.readline(_MAX_LINE - len(have))
        return have + rest  # without its newline when longer than _MAX_LINE: pickletools refuses it
