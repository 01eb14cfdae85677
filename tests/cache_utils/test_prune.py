"""`prune` keeps what `load_cache` would load: future files, the zone's today, corrupt kept files
and broken pickles in valid gzip never cost the data a load would have returned. Each test failed
before its fix (two red-team rounds on the reliability fixes)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest
from freezegun import freeze_time

from cache_utils import (
    NullAlerter,
    load_cache,
    load_latest_cache,
    prune,
    save_cache,
)
from cache_utils.errors import CacheNotFoundError

# --- prune never takes from load_cache what it would have loaded (two red-team rounds) ---------


def test_prune_keeps_a_broken_pickle_in_valid_gzip_and_deletes_the_only_loadable_file(tmp_path: Path) -> None:
    """README's own corrupt-file list includes "a broken pickle in valid gzip": its CRC verifies, so
    prune(keep=1) keeps it as the newest file that verifies and deletes yesterday's good file;
    load_cache, which returned yesterday's data before the prune, then has nothing. Prune
    must never leave load_cache without the data it would have loaded before the prune."""
    d = str(tmp_path)
    with freeze_time("2024-01-15 12:00:00"):
        save_cache({"rows": 3}, "p", "2024-01-14", d)
        (tmp_path / "p_20240115.pkl.gz").write_bytes(gzip.compress(b"this is not a pickle"))
        before, _ = load_cache("p", "08:00", d, tz="UTC", alerter=NullAlerter())
        assert before == {"rows": 3}
        deleted = prune("p", 1, d, tz="UTC")
        try:
            after, _ = load_cache("p", "08:00", d, tz="UTC", alerter=NullAlerter())
        except CacheNotFoundError as e:
            after = e
    assert after == before, (
        f"prune(keep=1) deleted {deleted} although today's file is a broken pickle (its gzip CRC "
        f"verifies, but it does not load): load_cache returned {before!r} before the prune and "
        f"{after!r} after it. Verification must include what load_cache checks (unpickling, or at least "
        f"a pickle opcode scan), or prune must keep the newest file that actually loads."
    )


def test_prune_neither_counts_nor_deletes_future_files(tmp_path: Path) -> None:
    d = str(tmp_path)
    for day in ("2024-01-14", "2024-01-15", "2024-01-16"):
        save_cache(day, "p", day, d)
    with freeze_time("2024-01-15 12:00:00"):
        assert prune("p", 1, d, tz="UTC") == [str(tmp_path / "p_20240114.pkl.gz")]
        data, _next = load_cache("p", "09:00", d, tz="UTC")
    assert data == "2024-01-15"
    assert sorted(os.listdir(tmp_path)) == ["p_20240115.pkl.gz", "p_20240116.pkl.gz"]


def test_prune_today_follows_the_zone(tmp_path: Path) -> None:
    d = str(tmp_path)
    for day in ("2024-01-14", "2024-01-15"):
        save_cache(day, "p", day, d)
    with freeze_time("2024-01-15 03:00:00"):  # still the 14th in New York: the 15th is its future
        assert prune("p", 1, d, tz="America/New_York", dry_run=True) == []
        assert prune("p", 1, d, tz="UTC", dry_run=True) == [str(tmp_path / "p_20240114.pkl.gz")]


@pytest.mark.parametrize("signed", [False, True])
def test_prune_keeps_the_newest_good_file_when_kept_ones_are_corrupt(tmp_path: Path, signed: bool) -> None:
    d, key = str(tmp_path), ("k" if signed else None)
    for day in ("2024-01-12", "2024-01-13", "2024-01-14"):
        save_cache(day, "p", day, d, signing_key=key)
    whole = (tmp_path / "p_20240114.pkl.gz").read_bytes()
    (tmp_path / "p_20240114.pkl.gz").write_bytes(whole[:-12])  # truncated: CRC never checks out
    with freeze_time("2024-01-15 12:00:00"):
        hit_before, _ = load_latest_cache("p", None, d, signing_key=key)
        removed = prune("p", 1, d, tz="UTC", signing_key=key)
        hit_after, _ = load_latest_cache("p", None, d, signing_key=key)
    assert removed == [str(tmp_path / "p_20240112.pkl.gz")]
    assert hit_before.data == hit_after.data == "2024-01-13"


def test_prune_keep_must_leave_at_least_one(tmp_path: Path) -> None:
    save_cache("x", "p", "2024-01-01", str(tmp_path))
    with pytest.raises(ValueError, match=r"keep must be a whole number >= 1, got 0"):
        prune("p", 0, str(tmp_path))
    assert os.listdir(tmp_path) == ["p_20240101.pkl.gz"]
