"""The command line tool: `python -m cache_utils` and the `cache-utils` console script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from freezegun import freeze_time

from cache_utils import save_cache
from cache_utils.cli import EXIT_ERROR, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, main

SCRIPT = Path(sys.executable).parent / "cache-utils"
ENTRY_POINTS = {"module": [sys.executable, "-m", "cache_utils"], "script": [str(SCRIPT)]}


def run(entry: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TZ": "UTC"}
    return subprocess.run(
        [*ENTRY_POINTS[entry], *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture
def caches(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    frame = pd.DataFrame({"qty": [1, 2, 3], "name": ["apple", "pear", "fig"]})
    save_cache({"frame": frame, "count": 3, "tags": ["a", "b"]}, "sales", "2024-01-15", str(data))
    save_cache({"count": 2}, "sales", "2024-01-14", str(data))
    save_cache({"count": 1}, "sales", "2024-01-13", str(data))
    save_cache([1, 2], "sales_eu", "2024-01-10", str(data))
    (data / "sales_latest.pkl.gz").write_bytes(b"not a cache file")
    return tmp_path


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_ls(entry: str, caches: Path) -> None:
    result = run(entry, "ls", cwd=caches)  # default directory: data
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PREFIX", "FILES", "FIRST", "LATEST", "SIZE", "TODAY"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"sales", "sales_eu"}
    assert rows["sales"][1:4] == ["3", "2024-01-13", "2024-01-15"]
    assert rows["sales"][-1] == "MISSING"  # the machine's today is not in 2024-01
    assert rows["sales_eu"][1:4] == ["1", "2024-01-10", "2024-01-10"]
    size = sum(f.stat().st_size for f in (caches / "data").glob("sales_2*.pkl.gz"))
    expected = f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} B"
    assert " ".join(rows["sales"][4:6]) == expected


def test_ls_today_column_in_process(caches: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with freeze_time("2024-01-15 12:00:00"):
        assert main(["ls", str(caches / "data")]) == EXIT_OK
    rows = {line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows == {"sales": "ok", "sales_eu": "MISSING"}


def test_ls_empty_and_missing_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run("module", "ls", "empty", cwd=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, "no cache files in empty")
    result = run("script", "ls", "nowhere", cwd=tmp_path)
    assert result.returncode == EXIT_NOT_FOUND
    assert "nowhere" in result.stderr


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_show_a_dict_with_a_dataframe(entry: str, caches: Path) -> None:
    result = run(entry, "show", "sales", "--date", "2024-01-15", cwd=caches)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "dict with 3 keys" in out
    assert "'frame': pandas.DataFrame shape=(3, 2)" in out
    assert "qty: int64" in out
    assert "apple" in out and "fig" in out  # the head of the frame
    assert "'count': int: 3" in out
    assert "'tags': list of 2 items" in out


def test_show_defaults_to_the_newest_file(caches: Path) -> None:
    result = run("module", "show", "sales", "--dir", "data", "--head", "1", cwd=caches)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sales 2024-01-15\n")
    assert "apple" in result.stdout and "fig" not in result.stdout  # --head 1


def test_show_without_date_skips_a_corrupt_newest_file(
    caches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newest = caches / "data" / "sales_20240115.pkl.gz"
    newest.write_bytes(newest.read_bytes()[:40])  # truncated
    with freeze_time("2024-01-16 09:00:00"):
        assert main(["show", "sales", "--dir", str(caches / "data")]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out.startswith("sales 2024-01-14\n") and "'count': int: 2" in out
    assert "skipped corrupt file" in err and "sales_20240115.pkl.gz" in err


def test_show_with_dir_and_date_formats(caches: Path) -> None:
    for date in ("2024-01-14", "20240114", "14 Jan 2024"):
        result = run("module", "show", "sales", "--date", date, "--dir", str(caches / "data"), cwd=caches)
        assert (result.returncode, result.stdout.strip()) == (0, "dict with 1 keys\n  'count': int: 2")


def test_prune_dry_run_then_prune(caches: Path) -> None:
    data = caches / "data"
    result = run("module", "prune", "sales", "--keep", "1", "--dry-run", cwd=caches)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"would delete {Path('data') / 'sales_20240114.pkl.gz'}",
        f"would delete {Path('data') / 'sales_20240113.pkl.gz'}",
        "would delete 2 file(s)",
    ]
    assert (data / "sales_20240113.pkl.gz").exists()
    result = run("script", "prune", "sales", "--keep", "1", "--dir", str(data), cwd=caches)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "deleted 2 file(s)"
    assert sorted(p.name for p in data.iterdir()) == [
        "sales_20240115.pkl.gz", "sales_eu_20240110.pkl.gz", "sales_latest.pkl.gz"
    ]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_help(entry: str, tmp_path: Path) -> None:
    result = run(entry, "--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("ls", "show", "prune"):
        assert command in result.stdout
    result = run(entry, "prune", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "--keep" in result.stdout and "--dry-run" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["show", "a/b"], EXIT_USAGE, "'a/b'"),
        (["show", ".."], EXIT_USAGE, "'..'"),
        (["show", "sales*"], EXIT_USAGE, "'sales*'"),
        (["prune", "a/b", "--keep", "1"], EXIT_USAGE, "'a/b'"),
        (["show", "sales", "--date", "2024-01-01"], EXIT_NOT_FOUND, "sales_20240101.pkl.gz"),
        (["show", "nothing"], EXIT_NOT_FOUND, "nothing"),
        (["show", "sales", "--date", "not-a-date"], EXIT_USAGE, "'not-a-date'"),
        (["show", "sales", "--date", "2024-01-12"], EXIT_ERROR, "corrupt cache file"),
        (["prune", "sales", "--keep", "-1"], EXIT_USAGE, "-1"),
        (["prune", "sales"], EXIT_USAGE, "--keep"),
        (["ls", "data/sales_20240115.pkl.gz"], EXIT_ERROR, "not a directory"),
        (["ls", "--storage-options", "{not json"], EXIT_USAGE, "{not json"),
        (["ls", "--storage-options", "[1]"], EXIT_USAGE, "JSON object"),
        (["frobnicate"], EXIT_USAGE, "frobnicate"),
        ([], EXIT_USAGE, "COMMAND"),
    ],
)
def test_errors_and_exit_codes(args: list[str], code: int, needle: str, caches: Path) -> None:
    (caches / "data" / "sales_20240112.pkl.gz").write_bytes(b"\x1f\x8b broken")
    result = run("module", *args, cwd=caches)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert (caches / "data" / "sales_20240115.pkl.gz").exists()  # errors never delete anything


def test_version(tmp_path: Path) -> None:
    result = run("script", "--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("cache-utils ")
