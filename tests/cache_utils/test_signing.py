"""Signed caches are verified before unpickling; unsigned, tampered or renamed files
are refused; files are owner-only; prefixes and dates never escape the cache directory."""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest
from freezegun import freeze_time

from cache_utils import (
    CorruptCacheError,
    cache_dates,
    cache_filename,
    get_latest_cache_filename,
    list_caches,
    load_cache,
    load_latest_cache,
    prune,
    read_cache,
    save_cache,
)
from cache_utils.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]

KEY = "signing-key-for-tests-7f3a"
GOOD = {"good": [1, 2, 3]}
TODAY = "prices_20240115.pkl.gz"


def _signed_header_length(data: bytes) -> int:
    """Length of a signed file's gzip header (RFC 1952): 10 fixed bytes, then the FEXTRA field
    (2-byte little-endian XLEN and XLEN bytes) that holds the signature, and no other field."""
    assert data[:3] == b"\x1f\x8b\x08" and data[3] == 4  # gzip, deflate, FLG = FEXTRA only
    return 12 + int.from_bytes(data[10:12], "little")


class Planted:
    """Unpickling this creates the marker file: proof that a pickle was (not) executed."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def marker(tmp_path) -> str:
    return str(tmp_path / "PWNED")


def _plant(directory: str, name: str, data: bytes) -> str:
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _unsigned_payload(marker: str) -> bytes:
    return gzip.compress(pickle.dumps(Planted(marker)))


def _load_refused(directory: str, opsgenie, marker: str, reason: str) -> None:
    with freeze_time("2024-01-15 12:00:00"):
        data, _ = load_cache("prices", "23:00", directory, tz="UTC")
    assert data == GOOD  # fell back to the older, validly signed file
    assert not os.path.exists(marker)
    creates = opsgenie.creates()
    assert len(creates) == 1 and TODAY in creates[0].body["description"]
    assert reason in creates[0].body["description"]
    with pytest.raises(CorruptCacheError, match=reason):
        read_cache("prices", "2024-01-15", directory)
    assert not os.path.exists(marker)


def test_control_the_planted_pickle_really_runs_when_unsigned_files_are_trusted(tmp_path, marker):
    d = str(tmp_path / "data")
    os.makedirs(d)
    _plant(d, TODAY, _unsigned_payload(marker))
    read_cache("prices", "2024-01-15", d).close()  # no key configured: plain pickle semantics
    assert os.path.exists(marker)


def test_unsigned_file_refused_when_key_in_env(tmp_path, marker, opsgenie, monkeypatch):
    monkeypatch.setenv("CACHE_UTILS_SIGNING_KEY", KEY)
    d = str(tmp_path / "data")
    save_cache(GOOD, "prices", "2024-01-14", d)
    _plant(d, TODAY, _unsigned_payload(marker))
    _load_refused(d, opsgenie, marker, "not signed")


def test_body_altered_after_signing_refused(tmp_path, marker, opsgenie, monkeypatch):
    monkeypatch.setenv("CACHE_UTILS_SIGNING_KEY", KEY)
    d = str(tmp_path / "data")
    save_cache(GOOD, "prices", "2024-01-14", d)
    path = save_cache({"harmless": True}, "prices", "2024-01-15", d)
    with open(path, "rb") as f:
        signed = f.read()
    signed_header = signed[:_signed_header_length(signed)]
    evil_body = _unsigned_payload(marker)[10:]  # deflate stream + trailer after a plain header
    _plant(d, TODAY, signed_header + evil_body)
    with gzip.open(path, "rb") as f:  # the tampered file is still valid gzip holding the payload
        assert b"PWNED" in f.read()
    # Refused before any hashing: the file no longer ends with the end member its layout needs.
    _load_refused(d, opsgenie, marker, "does not end with an end member")


def test_validly_signed_file_renamed_refused(tmp_path, marker, opsgenie, monkeypatch):
    monkeypatch.setenv("CACHE_UTILS_SIGNING_KEY", KEY)
    d = str(tmp_path / "data")
    staging = str(tmp_path / "staging")
    save_cache(GOOD, "prices", "2024-01-14", d)
    for name_prefix, day in (("other", "2024-01-15"), ("prices", "2024-01-10")):
        signed = save_cache(Planted(marker), name_prefix, day, staging)
        shutil.copy(signed, os.path.join(d, TODAY))
        with pytest.raises(CorruptCacheError, match="signature does not match"):
            read_cache("prices", "2024-01-15", d)
        assert not os.path.exists(marker)
    _load_refused(d, opsgenie, marker, "signature does not match")
    # Control: under its own name the same file verifies, and the payload really runs.
    read_cache("other", "2024-01-15", staging).close()
    assert os.path.exists(marker)


def test_file_signed_with_another_key_refused(tmp_path, marker):
    d = str(tmp_path)
    save_cache(Planted(marker), "prices", "2024-01-15", d, signing_key="attacker's key")
    with pytest.raises(CorruptCacheError, match="signature does not match"):
        read_cache("prices", "2024-01-15", d, signing_key=KEY)
    hit, skipped = load_latest_cache("prices", "2024-01-15", d, signing_key=KEY)
    assert hit is None and len(skipped) == 1
    assert not os.path.exists(marker)


def test_signing_key_as_kwarg_str_or_bytes_and_kwarg_wins_over_env(tmp_path, monkeypatch):
    d = str(tmp_path)
    save_cache(GOOD, "prices", "2024-01-15", d, signing_key=KEY.encode())
    assert read_cache("prices", "2024-01-15", d, signing_key=KEY) == GOOD
    monkeypatch.setenv("CACHE_UTILS_SIGNING_KEY", "a different key")
    with pytest.raises(CorruptCacheError):
        read_cache("prices", "2024-01-15", d)
    assert read_cache("prices", "2024-01-15", d, signing_key=KEY) == GOOD
    with gzip.open(os.path.join(d, TODAY)) as f:  # still standard gzip for other readers
        assert pickle.load(f) == GOOD


# --- file permissions ---------------------------------------------------------------------------


def test_files_are_owner_only_by_default(tmp_path):
    old = os.umask(0o022)
    try:
        path = save_cache(GOOD, "prices", "2024-01-15", str(tmp_path))
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        path = save_cache(GOOD, "shared", "2024-01-15", str(tmp_path), file_mode=0o644)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    finally:
        os.umask(old)


# --- nothing escapes the cache directory ---------------------------------------------------

BAD_PREFIXES = ["../x", "/etc/passwd", "a/b", "..", ".", "a\\b", "x\0y", "*", "p?", "[ab]", "", "../../tmp/z"]


def _entry_points(directory: str):
    return {
        "save_cache": lambda p: save_cache(1, p, "2024-01-15", directory),
        "load_cache": lambda p: load_cache(p, "09:00", directory, allow_no_data=True),
        "load_latest_cache": lambda p: load_latest_cache(p, "2024-01-15", directory),
        "read_cache": lambda p: read_cache(p, "2024-01-15", directory),
        "get_latest_cache_filename": lambda p: get_latest_cache_filename(p, directory),
        "cache_dates": lambda p: cache_dates(p, directory),
        "list_caches": lambda p: list_caches(directory, p),
        "prune": lambda p: prune(p, 1, directory),
        "cache_filename": lambda p: cache_filename(p, "2024-01-15", directory=directory),
    }


def _tree(root: str) -> set[str]:
    return {os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files}


@pytest.mark.parametrize("prefix", BAD_PREFIXES)
def test_bad_prefix_refused_by_every_entry_point(tmp_path, prefix):
    d = str(tmp_path / "a" / "b" / "data")
    os.makedirs(d)
    before = _tree(str(tmp_path))
    for name, call in _entry_points(d).items():
        with pytest.raises(ValueError, match="prefix") as info:
            call(prefix)
        assert prefix == "" or repr(prefix) in str(info.value), (name, info.value)
    for argv in (["show", prefix, "--dir", d], ["prune", prefix, "--keep", "0", "--dir", d]):
        assert cli_main(argv) != 0
    assert _tree(str(tmp_path)) == before


@pytest.mark.parametrize("day", ["../../x", "/etc/passwd", "*", "..", "2024-01-15/../../x"])
def test_bad_date_refused(tmp_path, day):
    d = str(tmp_path / "data")
    with pytest.raises(ValueError, match="date") as info:
        save_cache(1, "p", day, d)
    assert repr(day) in str(info.value)
    with pytest.raises(ValueError):
        cache_filename("p", day, directory=d)
    assert not os.path.exists(d)


@pytest.mark.parametrize("day", ["2024/01/15", " 2024-01-15 "])
def test_lenient_date_strings_still_give_a_plain_stamp(tmp_path, day):
    """The name is built from the parsed date, never from the text."""
    d = str(tmp_path / "data")
    assert save_cache(1, "p", day, d) == os.path.join(d, "p_20240115.pkl.gz")
    assert os.listdir(d) == ["p_20240115.pkl.gz"]


@pytest.mark.parametrize("day", ["2024-01-15/../..", "2024-01-15\0", "2024\\01\\15", "2024..01..15"])
def test_date_strings_dateutil_would_skip_parts_of_are_refused(tmp_path, day):
    d = str(tmp_path / "data")
    with pytest.raises(ValueError) as info:
        save_cache(1, "p", day, d)
    assert repr(day) in str(info.value)
    assert not os.path.exists(d)


@pytest.mark.parametrize("pattern", ["*", "2024*", "..", "????????"])
def test_glob_date_patterns_stay_in_directory(pattern):
    name = cache_filename("p", pattern, keep_date_as_string=True, directory="data")
    assert os.path.dirname(name) == "data"
    for bad in ("../x", "a/b", "x\\y", "x\0"):
        with pytest.raises(ValueError, match="pattern"):
            cache_filename("p", bad, keep_date_as_string=True, directory="data")


# --- malformed headers are corrupt files; verification streams in bounded memory (reliability round 2)


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


# --- keys, names and directories (reliability round 2 and its red-team round) --------------------------


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


def test_signed_save_of_a_surrogate_prefix_is_a_clear_error_or_works(tmp_path: Path) -> None:
    """validate_prefix measures prefixes with surrogateescape, so a prefix read from a non-UTF-8 file
    name ('a\\udcff') is accepted and saves fine unsigned; signed, `_mac` encodes the name strictly and
    the save dies with a UnicodeEncodeError that names neither the prefix nor the path (the same
    class of failure as a signing key that is not valid UTF-8)."""
    prefix = "a\udcff"
    try:
        path = save_cache(1, prefix, "2024-01-15", str(tmp_path), signing_key="k")
    except UnicodeEncodeError as e:
        pytest.fail(f"signed save_cache with prefix {prefix!r} raised a bare {e!r}: encode the name "
                    f"with surrogateescape in _mac (as the key is), or refuse such prefixes in "
                    f"validate_prefix with a ValueError naming the value")
    except ValueError as e:
        assert repr(prefix) in str(e), f"the error does not name the prefix: {e}"
        return
    assert read_cache(prefix, "2024-01-15", str(tmp_path), signing_key="k") == 1, path
