"""Reliability, second round: hangs, crashes, collisions and leaks found by trying to break it.
Each test failed before its fix."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import struct
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


# --- only regular files are read: a FIFO or a device named like today's file never hangs ---------


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


# --- entries whose is_file() raises (a symlink loop) are skipped like other unusable entries -----


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


# --- signed mode: malformed headers are corrupt files; verification streams in bounded memory ----


def crafted_header() -> bytes:
    """FEXTRA with xlen=4 holding a `CU` subfield that claims 33 bytes: 16 bytes in all."""
    return b"\x1f\x8b\x08\x04" + b"\0" * 6 + b"\x04\x00" + b"CU" + (33).to_bytes(2, "little")


XLEN_CUT = b"\x1f\x8b\x08\x04" + b"\0" * 6 + b"\xff"
FNAME_UNTERMINATED = b"\x1f\x8b\x08\x08" + b"\0" * 6 + b"x"


@pytest.mark.parametrize("body", [crafted_header(), crafted_header() + b"\x01" * 40, XLEN_CUT,
                                  FNAME_UNTERMINATED],
                         ids=["subfield-past-field", "subfield-into-body", "xlen-cut", "fname-unterminated"])
def test_a_crafted_signed_header_is_corrupt_and_falls_back(tmp_path: Path, body: bytes) -> None:
    save_cache("good", "sales", "2024-01-14", str(tmp_path), signing_key="k")
    (tmp_path / "sales_20240115.pkl.gz").write_bytes(body)
    with pytest.raises(CorruptCacheError, match="sales_20240115"):
        read_cache("sales", "2024-01-15", str(tmp_path), signing_key="k")
    hit, skipped = load_latest_cache("sales", "2024-01-15", str(tmp_path), signing_key="k")
    assert hit.data == "good" and len(skipped) == 1


MEASURE_SIGNED_LOAD = """
import resource, sys
from cache_utils import CorruptCacheError, read_cache
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_cache("big", "2024-01-15", sys.argv[1], signing_key="k")
except CorruptCacheError as e:
    print("corrupt:", e.reason)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_signed_verification_streams_a_huge_file_in_bounded_memory(tmp_path: Path) -> None:
    # An older single-member file (no index to check its length against: it is hashed to its end)
    # with a signature subfield, a whole gzip stream, then 400 MB of zeros (sparse: no disk used).
    # A multi-member file with such a tail is refused before hashing (test_sparse_signed.py).
    import zlib

    deflate = zlib.compressobj(2, zlib.DEFLATED, -15)
    body = deflate.compress(pickle.dumps("x")) + deflate.flush()
    header = b"\x1f\x8b\x08\x04\0\0\0\0\0\xff" + struct.pack("<H2sH", 37, b"CU", 33)
    path = tmp_path / "big_20240115.pkl.gz"
    with path.open("wb") as f:
        f.write(header + b"\x01" + bytes(32) + body + struct.pack("<II", zlib.crc32(pickle.dumps("x")), 16))
        f.truncate(400 << 20)
    proc = subprocess.run([sys.executable, "-c", MEASURE_SIGNED_LOAD, str(tmp_path)], capture_output=True,
                          text=True, timeout=100, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    reason, grown_mb = proc.stdout.splitlines()
    assert reason == "corrupt: signature does not match the configured key (tampered, or another key)"
    assert int(grown_mb) < 120, f"peak RSS grew by {grown_mb} MB reading a 400 MB file"


def test_bytes_changed_after_the_signature_check_are_never_unpickled(tmp_path: Path) -> None:
    """The checked bytes are the ones unpickled: a file rewritten in place mid-load changes nothing."""
    from cache_utils import GzipPickleSerializer

    save_cache({"v": 1}, "s", "2024-01-15", str(tmp_path), signing_key="k")
    good = (tmp_path / "s_20240115.pkl.gz").read_bytes()
    save_cache({"v": 666}, "s", "2024-01-16", str(tmp_path))  # unsigned: other bytes

    class SwapsAfterFirstPass:
        def __init__(self) -> None:
            self.data, self.pos, self.swapped = good, 0, False

        def read(self, n: int = -1) -> bytes:
            if self.pos >= len(self.data) and not self.swapped:  # the check has read it all
                self.swapped = True
            end = len(self.data) if n < 0 else self.pos + n
            out = self.data[self.pos:end]
            self.pos += len(out)
            return out

        def seek(self, pos: int, whence: int = 0) -> int:
            if self.swapped:
                self.data = (tmp_path / "s_20240116.pkl.gz").read_bytes()
            self.pos = pos if whence == 0 else len(self.data) + pos if whence == 2 else self.pos + pos
            return self.pos

        def tell(self) -> int:
            return self.pos

    path = str(tmp_path / "s_20240115.pkl.gz")
    assert GzipPickleSerializer(signing_key="k").load(SwapsAfterFirstPass(), path) == {"v": 1}


# --- 6 and 8. InMemoryCache copies pandas extension arrays and offsets, and object cells too --------


def pandas_values() -> dict[str, object]:
    import numpy as np

    return {
        "categorical": pd.Categorical(["a", "b", "a"]),
        "nullable-int": pd.array([1, None]),
        "string-array": pd.array(["x", None], dtype="string"),
        "datetime-array": pd.array(pd.to_datetime(["2024-01-01", "2024-01-02"])),
        "date-offset": pd.DateOffset(days=2),
        "timestamp": pd.Timestamp("2024-01-01"),
        "nested": {"cats": [pd.Categorical(["z"])], "offset": pd.DateOffset(months=1)},
        "object-ndarray": np.array([{"a": 1}, [1, 2]], dtype=object),
    }


@pytest.mark.parametrize("name", list(pandas_values()))
def test_memory_cache_puts_and_gets_pandas_extension_values(name: str) -> None:
    from cache_utils import InMemoryCache

    value = pandas_values()[name]
    InMemoryCache.put(value, "rel2", name)
    got = InMemoryCache.get("rel2", name)
    expected = pandas_values()[name]
    assert repr(got) == repr(expected)
    assert InMemoryCache.get("rel2", name) is not InMemoryCache.get("rel2", name) or name == "timestamp"


def test_memory_cache_isolates_object_cells_both_ways() -> None:
    import numpy as np

    from cache_utils import InMemoryCache

    frame = pd.DataFrame({"meta": [{"k": 1}, {"k": 2}], "tags": [["a"], ["b"]], "n": [1, 2]})
    series = pd.Series([{"k": 1}], dtype=object)
    array = np.array([{"k": 1}], dtype=object)
    InMemoryCache.put_many({"frame": frame, "series": series, "array": array}, "rel2-cells")
    frame.loc[0, "meta"]["k"] = 99  # the caller mutates a cell of what it put
    frame.loc[1, "tags"].append("leak")
    series.iloc[0]["k"] = 99
    array[0]["k"] = 99
    got = InMemoryCache.get_many("rel2-cells", ["frame", "series", "array"])
    assert got["frame"]["meta"].tolist() == [{"k": 1}, {"k": 2}]
    assert got["frame"]["tags"].tolist() == [["a"], ["b"]]
    assert got["series"].iloc[0] == {"k": 1} and got["array"][0] == {"k": 1}
    got["frame"].loc[0, "meta"]["k"] = -1  # and what a get returned
    got["series"].iloc[0]["k"] = -1
    got["array"][0]["k"] = -1
    again = InMemoryCache.get_many("rel2-cells", ["frame", "series", "array"])
    assert again["frame"].loc[0, "meta"] == {"k": 1}
    assert again["series"].iloc[0] == {"k": 1} and again["array"][0] == {"k": 1}


def test_string_object_columns_keep_the_cheap_copy() -> None:
    from cache_utils import InMemoryCache

    frame = pd.DataFrame({"s": pd.Series(["a", "b"], dtype=object), "d": [dt.date(2024, 1, 1)] * 2})
    InMemoryCache.put(frame, "rel2-cheap", "f")
    got = InMemoryCache.get("rel2-cheap", "f")
    stored = InMemoryCache.get("rel2-cheap", "f", default_copy=False)
    # Immutable cells are shared (no per-cell copy), and the frames are still isolated.
    assert got["s"].iloc[0] is stored["s"].iloc[0]
    got.loc[0, "s"] = "changed"
    assert InMemoryCache.get("rel2-cheap", "f").loc[0, "s"] == "a"


# --- prune never takes from load_cache what it would have loaded ----------------------------------


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


# --- a date must name a day: no part is taken from today --------------------------------------


@pytest.mark.parametrize("text", ["2024-01", "2024", "15", "Jan", "09:00", "15 Jan", "January 2024"])
def test_partial_date_strings_are_refused_naming_the_value(text: str) -> None:
    from cache_utils import cache_filename

    with freeze_time("2024-03-25 12:00:00"), pytest.raises(ValueError, match=f"'{text}' does not name a day"):
        cache_filename("p", text)


def test_nat_is_a_value_error_naming_it() -> None:
    from cache_utils import cache_filename

    with pytest.raises(ValueError, match="NaT"):
        cache_filename("p", pd.NaT)


def test_cli_show_date_partial_is_refused(tmp_path: Path) -> None:
    save_cache(1, "p", "2024-01-01", str(tmp_path))
    proc = subprocess.run([*CLI, "show", "p", "--dir", str(tmp_path), "--date", "2024"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode != 0 and "'2024' does not name a day" in proc.stderr


# --- minor items ----------------------------------------------------------------------------------


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


def test_a_non_utf8_signing_key_in_the_environment_signs_with_its_bytes(tmp_path: Path) -> None:
    key = b"\xff\xfek\x80y"
    env = {k.encode(): v.encode() for k, v in os.environ.items() if k != "CACHE_UTILS_SIGNING_KEY"}
    env[b"CACHE_UTILS_SIGNING_KEY"] = key
    code = f"import cache_utils; cache_utils.save_cache('s', 'p', '2024-01-01', {str(tmp_path)!r})"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert read_cache("p", "2024-01-01", str(tmp_path), signing_key=key) == "s"
    with pytest.raises(CorruptCacheError, match="signature"):
        read_cache("p", "2024-01-01", str(tmp_path), signing_key=b"other")


def test_the_longest_prefix_whose_temp_name_fits_is_accepted_one_more_byte_refused(tmp_path: Path) -> None:
    from cache_utils.naming import MAX_PREFIX_BYTES

    fits = "p" * MAX_PREFIX_BYTES
    save_cache(1, fits, "2024-01-01", str(tmp_path))
    assert read_cache(fits, "2024-01-01", str(tmp_path)) == 1
    for too_long in ("p" * (MAX_PREFIX_BYTES + 1), "é" * 113):  # 226 bytes either way
        with pytest.raises(ValueError, match=rf"is 226 bytes long: at most {MAX_PREFIX_BYTES} fit"):
            save_cache(1, too_long, "2024-01-01", str(tmp_path))
    assert os.listdir(tmp_path) == [f"{fits}_20240101.pkl.gz"]


def test_a_signed_file_copied_to_another_directory_under_its_name_is_accepted(tmp_path: Path) -> None:
    """The documented choice: the MAC binds key, name and bytes, not the directory."""
    a, b = tmp_path / "a", tmp_path / "b"
    save_cache("x", "p", "2024-01-01", str(a), signing_key="k")
    b.mkdir()
    (b / "p_20240101.pkl.gz").write_bytes((a / "p_20240101.pkl.gz").read_bytes())
    assert read_cache("p", "2024-01-01", str(b), signing_key="k") == "x"
    (b / "p_20240102.pkl.gz").write_bytes((a / "p_20240101.pkl.gz").read_bytes())  # another day: refused
    with pytest.raises(CorruptCacheError, match="signature"):
        read_cache("p", "2024-01-02", str(b), signing_key="k")


# --- the figures' measurements (benchmarks/reliability_figures.py prints them) ----------------------


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_measured_hangs_are_bounded(tmp_path: Path) -> None:
    from tests.support.scenarios import measure_hangs

    rows = measure_hangs(str(tmp_path), with_moto=False)
    assert len(rows) == 5 and all(r["ok"] for r in rows), rows


@pytest.mark.integration
def test_measured_bad_alert_settings_are_survived(tmp_path: Path) -> None:
    from tests.support.opsgenie_fake import FakeOpsGenie
    from tests.support.scenarios import BAD_TIMEOUTS, measure_bad_alert_settings

    with FakeOpsGenie() as server:
        rows = measure_bad_alert_settings(str(tmp_path), server.url, "og-key")
    assert [r["value"] for r in rows] == BAD_TIMEOUTS
    assert all(r["ok"] for r in rows), rows


@pytest.mark.integration
def test_measured_secret_forms_never_reach_the_logs(tmp_path: Path) -> None:
    from tests.support.opsgenie_fake import FakeOpsGenie
    from tests.support.scenarios import measure_secret_forms

    with FakeOpsGenie("500") as server:
        result = measure_secret_forms(str(tmp_path), server.url)
    assert result["data_ok"] and result["records"] > 0
    assert result["leaks"] == 0, result
