"""Signed caches are verified before unpickling; unsigned, tampered or renamed files
are refused; files are owner-only; prefixes and dates never escape the cache directory."""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import stat

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
