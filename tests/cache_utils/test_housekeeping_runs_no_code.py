"""Housekeeping never executes data (issue 18, item 2): `prune` (library and CLI, `--dry-run` too)
and `ls` check files without unpickling them; `show` unpickles, says so, and refuses an unsigned
file when a signing key is configured."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from freezegun import freeze_time

from cache_utils import CorruptCacheError, GzipPickleSerializer, prune, save_cache

ROOT = Path(__file__).resolve().parents[2]
KEY = "housekeeping-test-key"


class Planted:
    """Unpickling this creates the marker file: proof that a pickle was (not) executed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.marker, "w"))


def _plant(tmp_path: Path, signing_key: str | None = None) -> tuple[str, Path]:
    """A directory with yesterday's good file and today's file holding `Planted` (a whole, valid
    cache file: its gzip CRC and, when signed, its signature check out)."""
    d = tmp_path / "data"
    d.mkdir()
    marker = tmp_path / "PWNED"
    save_cache({"good": 1}, "p", "2024-01-14", str(d), signing_key=signing_key)
    save_cache(Planted(str(marker)), "p", "2024-01-15", str(d), signing_key=signing_key)
    return str(d), marker


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("CACHE_UTILS_SIGNING_KEY")}
    full.update({"PYTHONPATH": str(ROOT), "TZ": "UTC", **(env or {})})
    return subprocess.run([sys.executable, "-m", "cache_utils", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=full)


def test_control_the_planted_file_runs_code_when_unpickled(tmp_path: Path) -> None:
    d, marker = _plant(tmp_path)
    with open(os.path.join(d, "p_20240115.pkl.gz"), "rb") as f:
        GzipPickleSerializer().load(f, "p_20240115.pkl.gz").close()
    assert marker.exists()


@pytest.mark.parametrize("dry_run", [True, False])
@pytest.mark.parametrize("signed", [False, True])
def test_library_prune_never_unpickles(tmp_path: Path, dry_run: bool, signed: bool) -> None:
    key = KEY if signed else None
    d, marker = _plant(tmp_path, key)
    with freeze_time("2024-01-15 12:00:00"):
        gone = prune("p", 1, d, tz="UTC", dry_run=dry_run, signing_key=key)
    assert not marker.exists(), "prune unpickled the newest file: it ran the code in it"
    # The planted file is sound as a file (structure, CRC, signature): it is kept, yesterday's goes.
    assert gone == [os.path.join(d, "p_20240114.pkl.gz")]


def test_cli_ls_and_prune_never_unpickle(tmp_path: Path) -> None:
    d, marker = _plant(tmp_path)
    for args in (["ls", "--dir", d], ["ls", "--dir", d, "--json"],
                 ["prune", "p", "--keep", "1", "--dir", d, "--dry-run"],
                 ["prune", "p", "--keep", "1", "--dir", d, "--json"]):
        proc = _cli(*args)
        assert proc.returncode == 0, (args, proc.stderr)
        assert not marker.exists(), f"`cache-utils {' '.join(args)}` ran the code in a cache file"
    assert sorted(os.listdir(d)) == ["p_20240115.pkl.gz"]


def test_cli_show_refuses_an_unsigned_file_when_a_key_is_configured(tmp_path: Path) -> None:
    d, marker = _plant(tmp_path)
    env = {"CACHE_UTILS_SIGNING_KEY": KEY}
    proc = _cli("show", "p", "--date", "2024-01-15", "--dir", d, env=env)
    assert proc.returncode == 1 and "not signed" in proc.stderr, proc.stderr
    assert not marker.exists()
    proc = _cli("show", "p", "--dir", d, env=env)  # no date: every unsigned file is skipped
    assert proc.returncode == 3 and "no usable files" in proc.stderr, proc.stderr
    assert not marker.exists()
    assert KEY not in proc.stderr + proc.stdout


def test_show_says_it_unpickles(tmp_path: Path) -> None:
    proc = _cli("show", "--help")
    text = " ".join(proc.stdout.split())
    assert "unpickles" in text and "runs code" in text and "CACHE_UTILS_SIGNING_KEY" in text
    text = " ".join(_cli("prune", "--help").stdout.split())
    assert "never unpickles" in text
    for page in ("docs/cli.md", "docs/file-format.md"):
        assert "`show` unpickles" in " ".join((ROOT / page).read_text().split()), page


def test_prune_refuses_a_broken_pickle_without_running_it(tmp_path: Path) -> None:
    """A whole gzip stream holding something other than one whole pickle is not sound: the newest
    sound older file is kept. Checked by walking opcodes, so nothing runs."""
    d = tmp_path / "data"
    d.mkdir()
    save_cache({"good": 1}, "p", "2024-01-13", str(d))
    (d / "p_20240114.pkl.gz").write_bytes(gzip.compress(pickle.dumps([1, 2])[:-1]))  # no STOP
    (d / "p_20240115.pkl.gz").write_bytes(gzip.compress(pickle.dumps([1, 2]) + b"trailing"))
    with freeze_time("2024-01-15 12:00:00"):
        assert prune("p", 1, str(d), tz="UTC", dry_run=True) == [str(d / "p_20240114.pkl.gz")]


def test_opcode_walk_streams_a_large_buffer_without_holding_it(tmp_path: Path) -> None:
    """A 64 MiB bytes value (one opcode argument, as a column's buffer is) is read through in
    pieces: the check's peak memory stays far below the value's size."""
    d = tmp_path / "data"
    d.mkdir()
    save_cache(bytes(64 << 20), "big", "2024-01-15", str(d))
    path = d / "big_20240115.pkl.gz"
    tracemalloc.start()
    try:
        with path.open("rb") as f:
            GzipPickleSerializer(threads=1).verify(f, str(path), pickle_opcodes=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"walking the opcodes of a 64 MiB value peaked at {peak >> 20} MiB"


@pytest.mark.parametrize("protocol", range(6))
def test_the_bounded_opcode_source_reads_what_genops_reads(protocol: int) -> None:
    """Through the buffered source, genops sees the opcodes and arguments it sees on the whole
    pickle, small and large arguments and text-protocol lines across buffer boundaries alike; an
    argument over 1 MiB comes back as a stand-in of its length."""
    import io
    import pickletools

    from cache_utils.format.opcodes import _OpcodeSource

    value = {"big": bytes(range(256)) * 5000, "text": "é" * 700_000, "many": [str(i) for i in range(30_000)],
             "nested": [(i, float(i), None, True) for i in range(5000)], "line": "x" * 100_000}
    data = pickle.dumps(value, protocol)
    expected = list(pickletools.genops(io.BytesIO(data)))
    got = list(pickletools.genops(_OpcodeSource(io.BytesIO(data))))  # type: ignore[arg-type]
    assert [op.name for op, _, _ in got] == [op.name for op, _, _ in expected]
    for (_, arg, _), (_, want, _) in zip(got, expected):
        raw = want.encode("utf-8", "surrogatepass") if isinstance(want, str) else want
        if isinstance(raw, bytes) and len(raw) > 1 << 20:
            assert len(arg) == len(want) or arg == ""  # dropped: its length (a str decodes to "")
        else:
            assert arg == want


def test_an_overlong_text_protocol_line_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cache_utils.format import opcodes

    monkeypatch.setattr(opcodes, "_MAX_LINE", 1000)
    path = tmp_path / "p_20240115.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps("x" * 5000, 0)))
    with path.open("rb") as f, pytest.raises(CorruptCacheError, match="newline"):
        GzipPickleSerializer().verify(f, str(path), pickle_opcodes=True)
    path.write_bytes(gzip.compress(pickle.dumps("x" * 500, 0)))
    with path.open("rb") as f:
        GzipPickleSerializer().verify(f, str(path), pickle_opcodes=True)
