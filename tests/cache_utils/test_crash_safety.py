"""SIGKILL during `save_cache` never leaves a partial file under the final name."""

from __future__ import annotations

import os

import pytest

from cache_utils import get_latest_cache_filename, list_caches, prune, read_cache, save_cache
from cache_utils.stores import get_store
from tests.support.scenarios import DAY, age_temp_files, make_blob, make_value, run_kill_points, value_ok

pytestmark = pytest.mark.integration  # child processes SIGKILLed mid-write


def _temps(directory: str, prefix: str) -> list[str]:
    return [e.name for e in get_store(directory).temp_entries(prefix)]


def test_kill_points_short(tmp_path):
    """20 kills at random points of ~50-200 ms writes: the previous file (or the one just finished)."""
    d = str(tmp_path)
    result = run_kill_points(d, kills=20, size=12 << 20, seed=1)
    assert result["violations"] == []
    assert result["loads_checked"] == 20
    assert result["mid_write_kills"] >= 5, result  # the kills really landed inside writes

    # Orphaned temp files are never listed, and the next save sweeps them once they are old.
    temps = _temps(d, "crash")
    assert len(temps) == result["temp_files_left"] >= 5
    assert [c.path for c in list_caches(d)] == [os.path.join(d, "crash_20240115.pkl.gz")]
    assert get_latest_cache_filename("crash", d) == os.path.join(d, "crash_20240115.pkl.gz")
    save_cache({"fresh": 1}, "crash", "2024-01-16", d)
    assert _temps(d, "crash") == temps  # young temps may belong to a live writer: kept
    assert age_temp_files(d, "crash") == len(temps)
    save_cache({"fresh": 2}, "crash", "2024-01-16", d)
    assert _temps(d, "crash") == []


def test_kill_without_previous_file_leaves_nothing_or_a_complete_file(tmp_path):
    d = str(tmp_path)
    result = run_kill_points(d, kills=4, size=12 << 20, seed=2, initial=False)
    assert result["violations"] == []


def test_prune_removes_orphans_of_killed_writers(tmp_path):
    d = str(tmp_path)
    result = run_kill_points(d, kills=4, size=12 << 20, seed=3, prefix="orphans")
    assert result["violations"] == []
    temps = _temps(d, "orphans")
    assert temps, "no kill landed mid-write"
    save_cache(make_value(0, 99, make_blob(64, 1)), "other", DAY, d)
    assert prune("orphans", keep=5, directory=d) == []  # young temps are left alone
    age_temp_files(d)
    removed = prune("orphans", keep=5, directory=d)
    assert sorted(os.path.basename(p) for p in removed) == sorted(temps)
    assert _temps(d, None) == []
    assert value_ok(read_cache("orphans", DAY, d))


@pytest.mark.slow
def test_kill_points_long(tmp_path):
    result = run_kill_points(str(tmp_path), kills=200, size=16 << 20, seed=11)
    assert result["violations"] == []
    assert result["mid_write_kills"] >= 50
