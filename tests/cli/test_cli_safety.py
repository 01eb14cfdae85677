"""The CLI under hostile values and interruptions: no secret echoed, one line for a value too deep to
describe, and a prune interrupted by SIGINT saying what it deleted (issue 18, items 7, 11, 16)."""

from __future__ import annotations

import gzip
import json
import os
import select
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest

from cache_utils import (
    save_cache,
)
from cache_utils.cli import EXIT_ERROR, EXIT_INTERRUPTED, EXIT_USAGE

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "cache_utils"]

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
UNCLOSED = '{"key": "AKIAEXAMPLE", "secret": "' + SECRET + '"'


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TZ": "UTC"}
    return subprocess.run([sys.executable, "-m", "cache_utils", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    ("options", "where"),
    [
        (UNCLOSED, f"line 1, column {len(UNCLOSED) + 1}"),  # no closing brace
        ('{"key": "AKIAEXAMPLE",\n "secret": ' + SECRET + "}", "line 2, column 12"),  # unquoted
        ("{'secret': '" + SECRET + "'}", "line 1, column 2"),  # Python quotes
        ('["' + SECRET + '"]', "got an array"),
        ('"' + SECRET + '"', "got a string"),
    ],
)
@pytest.mark.parametrize("command", [["ls"], ["show", "sales"], ["prune", "sales", "--keep", "1"]])
def test_storage_options_are_never_echoed(
    options: str, where: str, command: list[str], tmp_path: Path
) -> None:
    result = cli(*command, "--dir", "s3://bucket/c", "--storage-options", options, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE
    assert SECRET not in result.stderr + result.stdout
    assert "AKIAEXAMPLE" not in result.stderr
    assert where in result.stderr  # where the JSON breaks, so the user can fix it without seeing it
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("cache-utils: --storage-options")


def _deep_list_file(directory: Path, prefix: str, day: str, depth: int = 100_000) -> None:
    """A file whose pickle builds lists nested `depth` deep: unpickling is a loop (no recursion),
    but repr() and any recursive walk of the value overflow Python's stack."""
    pickle = b"\x80\x04" + b"]" * depth + b"a" * (depth - 1) + b"."
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{prefix}_{day}.pkl.gz").write_bytes(gzip.compress(pickle))


def _deep_dict_file(directory: Path, prefix: str, day: str, depth: int = 100_000) -> None:
    """As above with dicts {"k": {"k": ...}}, which `show` describes level by level."""
    pickle = b"\x80\x04" + (b"}\x8c\x01k") * depth + b"}" + b"s" * depth + b"."
    (directory / f"{prefix}_{day}.pkl.gz").write_bytes(gzip.compress(pickle))


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_show_of_a_too_deep_value_is_one_line(kind: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    _deep_list_file(data, "deep", "20240115")
    if kind == "dict":
        _deep_dict_file(data, "deep", "20240115")
    for date in ([], ["--date", "2024-01-15"]):  # the newest that loads, and one date
        result = cli("show", "deep", *date, cwd=tmp_path)
        assert result.returncode == EXIT_ERROR
        assert result.stderr.count("\n") == 1, result.stderr
        assert "deep_20240115.pkl.gz: the value is nested too deeply to describe" in result.stderr
    # --json shows a bounded repr (reprlib), which never recurses far
    result = cli("show", "deep", "--json", cwd=tmp_path)
    assert result.returncode == 0 and json.loads(result.stdout)["type"] == kind


def _slow_prune_script(marker_fd: int, after: int) -> str:
    """Run `cache-utils prune` in this process; after `after` deletions, tell the test through
    `marker_fd` and wait (up to 60 s) for its SIGINT. The wait is the test's only hook: the
    deletions, the signal and the CLI's handling of it are the real ones."""
    return textwrap.dedent(f"""
        import os, sys, time
        from cache_utils import cli

        real_advance = cli.Progress.advance

        def advance(self, count=1):
            real_advance(self, count)
            if self.done == {after}:
                os.write({marker_fd}, b"deleted\\n")
                time.sleep(60)  # interrupted by the test's SIGINT

        cli.Progress.advance = advance
        sys.exit(cli.main(sys.argv[1:]))
    """)


@pytest.mark.parametrize("as_json", [False, True])
def test_sigint_during_prune_says_what_was_deleted(as_json: bool, tmp_path: Path) -> None:
    data = tmp_path / "data"
    for day in range(1, 21):
        save_cache({"day": day}, "sales", f"2024-01-{day:02d}", str(data))
    read_end, write_end = os.pipe()
    args = ["prune", "sales", "--keep", "2", "--dir", str(data)] + (["--json"] if as_json else [])
    env = {**os.environ, "TZ": "UTC"}
    with subprocess.Popen([sys.executable, "-c", _slow_prune_script(write_end, 5), *args], cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          pass_fds=(write_end,)) as child:
        os.close(write_end)
        try:
            ready, _, _ = select.select([read_end], [], [], 60)
            assert ready and os.read(read_end, 100) == b"deleted\n", "the prune never got to delete"
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=60)
        finally:
            os.close(read_end)
            if child.poll() is None:
                child.kill()
    assert child.returncode == EXIT_INTERRUPTED, err
    left = {p.name for p in data.iterdir()}
    gone = [str(data / f"sales_202401{day:02d}.pkl.gz") for day in range(1, 21)
            if f"sales_202401{day:02d}.pkl.gz" not in left]
    assert len(gone) == 5  # the first five of the 18 planned (prune deletes the newest of them first)
    if as_json:
        report = json.loads(out)
        assert report == {"prefix": "sales", "dry_run": False, "removed": sorted(gone, reverse=True),
                          "interrupted": True, "planned": 18}
    else:
        assert out.splitlines() == [f"deleted {p}" for p in sorted(gone, reverse=True)] + [
            "interrupted: deleted 5 of 18 file(s)"]
    assert err.splitlines()[-1] == "cache-utils: interrupted"


def test_show_of_a_pickle_asking_for_too_much_memory_is_one_line(tmp_path: Path) -> None:
    """A 20-byte pickle declaring a 64 TiB bytes object: the allocation fails (MemoryError), and the
    line says so instead of an empty reason."""
    data = tmp_path / "data"
    data.mkdir()
    pickle = b"\x80\x05\x8e" + (1 << 46).to_bytes(8, "little") + b"."
    (data / "big_20240115.pkl.gz").write_bytes(gzip.compress(pickle))
    result = cli("show", "big", "--date", "2024-01-15", cwd=tmp_path)
    assert result.returncode == EXIT_ERROR
    assert result.stderr == ("cache-utils: corrupt cache file data/big_20240115.pkl.gz: the pickle asks "
                             "for more memory than this process can have\n")


# --- dates and file names the CLI is given or shows (reliability round 2) ------------------------------


def test_cli_show_date_partial_is_refused(tmp_path: Path) -> None:
    save_cache(1, "p", "2024-01-01", str(tmp_path))
    proc = subprocess.run([*CLI, "show", "p", "--dir", str(tmp_path), "--date", "2024"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode != 0 and "'2024' does not name a day" in proc.stderr


def test_cli_escapes_control_characters_in_file_names(tmp_path: Path) -> None:
    prefix = "evil\x1bc\rforged"
    save_cache(1, prefix, "2024-01-01", str(tmp_path))
    proc = subprocess.run([*CLI, "ls", str(tmp_path)], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\r" not in proc.stdout
    assert "evil\\x1bc\\rforged" in proc.stdout
    proc = subprocess.run([*CLI, "prune", prefix, "--keep", "1", "--dir", str(tmp_path), "--dry-run"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert "\x1b" not in proc.stdout + proc.stderr
