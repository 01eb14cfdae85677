"""Concurrent writers of one prefix and date never show a reader a partial value."""

from __future__ import annotations

import pytest

from tests.support.scenarios import run_concurrency

pytestmark = pytest.mark.integration  # 12 writer and reader processes for seconds


def _check(result: dict, writers: int) -> None:
    assert result["write_errors"] == 0, result["error_samples"]
    assert result["load_errors"] == 0, result["error_samples"]
    assert result["bad_values"] == 0
    assert result["saves"] >= writers and result["loads"] >= 20, result
    # Readers saw the values of several different writers, so writes really interleaved.
    assert len(result["writers_seen"]) >= 3, result


def test_eight_writers_four_readers_short(tmp_path):
    result = run_concurrency(str(tmp_path), writers=8, readers=4, seconds=3.0)
    _check(result, 8)


@pytest.mark.slow
def test_eight_writers_four_readers_long(tmp_path):
    result = run_concurrency(str(tmp_path), writers=8, readers=4, seconds=30.0, size=1 << 20)
    _check(result, 8)
