"""The benchmark scripts keep working: each runs with --quick and prints its result table.

This checks that the scripts run, not how fast anything is (speed is judged by the full runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # each benchmark runs in a subprocess for seconds

ROOT = Path(__file__).resolve().parents[2]  # benchmarks run as modules from here, as `make bench` does
HEADER = "| measurement | value | baseline | baseline value | ratio | target | result |"


@pytest.mark.parametrize("module", ["benchmarks.bench_io", "benchmarks.bench_memory_cache"])
def test_benchmark_runs_quick_and_prints_a_table(module: str, tmp_path: Path) -> None:
    out = tmp_path / "table.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSGENIE_", "CACHE_UTILS_"))}
    done = subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=240, env=env, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert HEADER in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and line != HEADER]
    assert len(rows) >= 4
    assert any(line.rstrip().endswith(("| PASS |", "| MISS |")) for line in rows)
    assert "--quick" in done.stdout  # a smoke run says it is not the real measurement
    assert HEADER in out.read_text()


def test_range_loads_benchmark_runs_quick(tmp_path: Path) -> None:
    """moto and the latency proxy in child processes; every row printed, the in-flight bound kept
    (a count, not a timing)."""
    out = tmp_path / "table.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSGENIE_", "CACHE_UTILS_"))}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_range_loads", "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert HEADER in done.stdout and "--quick" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and line != HEADER]
    assert any(r.startswith("| 10 partitions, sequential") for r in rows)
    assert any(r.startswith("| 10 partitions, concurrent (default") for r in rows)
    assert any("UPathIOManager" in r for r in rows), done.stdout[-3000:]
    assert sum(r.startswith("| local dir") for r in rows) == 3
    [bound] = [r for r in rows if r.startswith("| requests in flight at most")]
    assert bound.rstrip().endswith("| PASS |")
    assert HEADER in out.read_text()


@pytest.mark.parametrize("cloud", ["s3", "gcs", "azure"])
def test_clouds_benchmark_runs_quick(cloud: str, tmp_path: Path) -> None:
    """Each emulator and the latency proxy in child processes: every row printed for the cloud, the
    side-by-side table, and our loads counted by the proxy at one request per small partition (a
    count, not a timing)."""
    if cloud == "azure":
        import shutil

        from tests.support.emulators import azurite_script

        if azurite_script() is None and shutil.which("node") is None:
            pytest.skip("the Azure benchmark needs Node.js for azurite "
                        "(apt-get install nodejs npm; make install)")
    out = tmp_path / "table.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSGENIE_", "CACHE_UTILS_"))}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.bench_clouds", "--cloud", cloud, "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert HEADER in done.stdout and "--quick" in done.stdout and "#### Side by side" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and line != HEADER]
    name = {"s3": "S3", "gcs": "GCS", "azure": "Azure"}[cloud]
    mine = [r for r in rows if r.startswith(f"| {name} (") and "): " in r.split(" | ")[0]]
    assert len(mine) == 11, done.stdout[-3000:]
    assert sum(r.startswith(f"| {name} (") for r in rows) == 12  # and its line of the side-by-side table
    assert sum("UPathIOManager" in r for r in mine) == 5
    [requests] = [r for r in mine if "requests per load" in r]
    assert requests.split(" | ")[1] == "1 / 10", requests
    assert HEADER in out.read_text()


def test_polars_benchmark_runs_quick(tmp_path: Path) -> None:
    """A Polars frame against Polars' own Parquet and IPC writers: every row printed (info rows, no
    targets), the frame round-trips (the script asserts it)."""
    out = tmp_path / "table.md"
    done = subprocess.run([sys.executable, "-m", "benchmarks.bench_polars", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ") and line != HEADER]
    for contestant in ("parquet write", "ipc write (uncompressed)", "parquet read", "ipc read (lz4)"):
        assert any(contestant in row for row in rows), contestant
    assert HEADER in out.read_text()

