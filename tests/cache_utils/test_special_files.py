"""Only regular files are read: a FIFO, a device or a symlink loop named like a cache file is skipped
or refused, never waited on. Each test failed before its fix (reliability round 2)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest
from freezegun import freeze_time

from cache_utils import (
    CorruptCacheError,
    get_latest_cache_filename,
    list_caches,
    load_cache,
    load_latest_cache,
    prune,
    read_cache,
    save_cache,
)

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "cache_utils"]


# --- only regular files are read: a FIFO or a device named like today's file never hangs ---------------


@pytest.fixture
def fifo_today(tmp_path: Path) -> Path:
    save_cache("yesterday", "sales", "2024-01-14", str(tmp_path))
    os.mkfifo(tmp_path / "sales_20240115.pkl.gz")
    return tmp_path


@pytest.mark.timeout(30)
def test_a_fifo_named_like_todays_file_is_skipped_not_waited_on(fifo_today: Path) -> None:
    with freeze_time("2024-01-15 12:00:00"):
        data, _next = load_cache("sales", "09:00", str(fifo_today), tz="UTC")
    assert data == "yesterday"
    hit, skipped = load_latest_cache("sales", "2024-01-15", str(fifo_today))
    assert hit is not None and hit.data == "yesterday"
    assert [s.reason for s in skipped] == ["is not a regular file"]
    with pytest.raises(CorruptCacheError, match="sales_20240115.pkl.gz: is not a regular file"):
        read_cache("sales", "2024-01-15", str(fifo_today))


@pytest.mark.timeout(60)
def test_cli_show_of_a_fifo_returns(fifo_today: Path) -> None:
    proc = subprocess.run([*CLI, "show", "sales", "--dir", str(fifo_today), "--date", "2024-01-15"],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert proc.returncode != 0 and "not a regular file" in proc.stderr


@pytest.mark.timeout(30)
def test_a_symlink_to_a_device_is_refused(tmp_path: Path) -> None:
    save_cache("yesterday", "sales", "2024-01-14", str(tmp_path))
    (tmp_path / "sales_20240115.pkl.gz").symlink_to("/dev/zero")
    for key in (None, "k3y"):
        hit, skipped = load_latest_cache("sales", "2024-01-15", str(tmp_path), signing_key=key)
        assert skipped and skipped[0].reason == "is not a regular file"
        assert hit is None if key else hit.data == "yesterday"  # unsigned yesterday is refused when keyed


# --- entries whose is_file() raises (a symlink loop) are skipped like other unusable entries -----------


@pytest.fixture
def loop_today(tmp_path: Path) -> Path:
    save_cache("yesterday", "sales", "2024-01-14", str(tmp_path))
    (tmp_path / "sales_20240115.pkl.gz").symlink_to(tmp_path / "sales_20240115.pkl.gz")
    (tmp_path / ".sales_20240115.pkl.gz.abc.tmp").symlink_to(tmp_path / ".sales_20240115.pkl.gz.abc.tmp")
    return tmp_path


def test_a_symlink_loop_named_like_a_cache_file_is_skipped(loop_today: Path) -> None:
    d = str(loop_today)
    with freeze_time("2024-01-15 12:00:00"):
        data, _next = load_cache("sales", "09:00", d, tz="UTC")
    assert data == "yesterday"
    assert get_latest_cache_filename("sales", d) == str(loop_today / "sales_20240114.pkl.gz")
    assert [c.date for c in list_caches(d)] == [dt.date(2024, 1, 14)]
    assert [c.date for c in list_caches(d, "sales")] == [dt.date(2024, 1, 14)]
    assert prune("sales", 1, d) == []
    hit, skipped = load_latest_cache("sales", "2024-01-15", d)
    assert hit.data == "yesterday" and [s.reason for s in skipped] == ["is a symlink loop"]
