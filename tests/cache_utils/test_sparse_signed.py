"""A signed file over a sparse hole is refused within a bound that does not grow with the hole
(issue 18, item 8): its length, the index at its end and its members' sizes disagree, and that is
seen before the file is hashed and copied, with nothing left in TMPDIR."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any

import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest
from freezegun import freeze_time

from cache_utils import (
    CorruptCacheError,
    GzipPickleSerializer,
    NullAlerter,
    load_cache,
    read_cache,
    save_cache,
)
from cache_utils.format.layout import END_LEN, end_member

KEY = "sparse-test-key"
HOLE = 8 << 30  # apparent size of the file: sparse, no disk used
REAL = 2 << 20  # the first 2 MiB of a real signed file
NAME = "s_20240115.pkl.gz"


class Counting:
    """A file that counts the bytes read through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.read_bytes = 0

    def read(self, size: int = -1) -> bytes:
        data = self._f.read(size)
        self.read_bytes += len(data)
        return data

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._f.seek(pos, whence)

    def tell(self) -> int:
        return self._f.tell()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _real_signed(tmp_path: Path) -> bytes:
    """A signed file of several members (random bytes do not compress: 2 MiB members stay 2 MiB)."""
    src = tmp_path / "src"
    src.mkdir()
    save_cache(os.urandom(6 << 20), "s", "2024-01-15", str(src), signing_key=KEY)
    return (src / NAME).read_bytes()


def _sparse(path: Path, head: bytes, tail: bytes = b"") -> None:
    with path.open("wb") as f:
        f.write(head)
        f.truncate(HOLE - len(tail))
        f.seek(0, os.SEEK_END)
        f.write(tail)


def _refused(path: Path) -> tuple[str, int]:
    with path.open("rb") as raw:
        f = Counting(raw)
        with pytest.raises(CorruptCacheError) as e:
            GzipPickleSerializer(signing_key=KEY).load(f, str(path))  # type: ignore[arg-type]
    return e.value.reason, f.read_bytes


def test_a_sparse_tail_is_refused_before_hashing(tmp_path: Path) -> None:
    path = tmp_path / NAME
    _sparse(path, _real_signed(tmp_path)[:REAL])
    assert path.stat().st_size == HOLE
    reason, read = _refused(path)
    assert "does not end with an end member" in reason
    assert read <= 128 << 10, f"read {read:,} bytes of a file that is {REAL:,} real bytes and a hole"


def test_a_hole_before_a_forged_index_is_refused_after_at_most_one_member(tmp_path: Path) -> None:
    """The index at the end claims exactly the file's length: walking the member headers finds the
    hole where the next header should be, after at most one member (64 MiB), not after 8 GiB."""
    path = tmp_path / NAME
    _sparse(path, _real_signed(tmp_path)[:REAL], end_member(3, 6 << 20, 0, HOLE - END_LEN))
    reason, read = _refused(path)
    assert "not the header this format writes" in reason or "impossible size" in reason, reason
    assert read <= 66 << 20, f"read {read:,} bytes"


def test_load_cache_skips_it_quickly_and_leaves_nothing_in_tmpdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = tmp_path / "data"
    d.mkdir()
    save_cache({"good": 1}, "s", "2024-01-14", str(d), signing_key=KEY)
    _sparse(d / NAME, _real_signed(tmp_path)[:REAL])
    spool = tmp_path / "tmpdir"
    spool.mkdir()
    monkeypatch.setenv("TMPDIR", str(spool))
    monkeypatch.setattr(tempfile, "tempdir", str(spool))  # gettempdir() caches TMPDIR at first use

    def rchar() -> int:  # bytes this process has read through read(2) and friends
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))

    before = rchar()
    with freeze_time("2024-01-15 12:00:00"):
        data, _ = load_cache("s", "08:00", str(d), tz="UTC", signing_key=KEY, alerter=NullAlerter())
    read = rchar() - before
    assert data == {"good": 1}  # today's file skipped as corrupt, yesterday's loaded
    assert list(spool.iterdir()) == []
    assert read < 64 << 20, f"read {read:,} bytes to refuse a {REAL:,}-byte file with an 8 GiB hole"


# --- the first red-team finding: a sparse signed file was streamed whole before anything was checked


def _rchar() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


@pytest.mark.timeout(60)
@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs /proc/self/io")
def test_signed_read_of_a_sparse_file_stops_at_the_first_bad_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed mode exists for an attacker who can write to the cache directory. A sparse file costs
    them nothing: a valid signed gzip header followed by a hole of zeros (`truncate -s 16T`). The
    unsigned reader rejects it at the first deflate block; the signed reader hashes and copies all of
    it into a temp file first (a 16 TiB hole: hours, and a full /tmp). 256 MiB here: every byte is
    read (and 192 MiB spooled to disk) before CorruptCacheError."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the spool stays inside tmp_path
    cache = tmp_path / "cache"
    save_cache("x", "p", "2024-01-15", str(cache), signing_key="k")
    path = cache / "p_20240115.pkl.gz"
    header = path.read_bytes()[:49]  # the signed header: 10 + 2 + 4 + 1 + 32 bytes
    path.write_bytes(header)
    os.truncate(path, 256 << 20)

    before = _rchar()
    with pytest.raises(CorruptCacheError):
        read_cache("p", "2024-01-15", str(cache), signing_key="k")
    read = _rchar() - before
    assert read < 32 << 20, (
        f"a signed read of a 256 MiB sparse file that is garbage after its 49-byte header read "
        f"{read / 2**20:.0f} MiB (and spooled it to disk) before rejecting it: inflate while hashing "
        f"and stop at the first gzip error (the unsigned path does), or cap the size of a signed file"
    )
