"""The benchmark scripts keep working: each runs with --quick and prints its result table.

This checks that the scripts run, not how fast anything is (speed is judged by the full runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
HEADER = "| measurement | value | baseline | baseline value | ratio | target | result |"


@pytest.mark.parametrize("script", ["bench_io.py", "bench_memory_cache.py"])
def test_benchmark_runs_quick_and_prints_a_table(script: str, tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSGENIE_", "CACHE_UTILS_"))}
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert HEADER in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and line != HEADER]
    assert len(rows) >= 4
    assert any(line.rstrip().endswith(("| PASS |", "| MISS |")) for line in rows)
    assert "--quick" in done.stdout  # a smoke run says it is not the real measurement
    assert HEADER in out.read_text()
