"""The serializer's large-object paths: members deflated and inflated on worker threads."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from cache_utils import CorruptCacheError, GzipPickleSerializer, read_cache, save_cache
from cache_utils.format.layout import END_LEN, MEMBER_SIZE
from cache_utils.format.reader import THREADED_READ_MIN


def started_since(before: set[threading.Thread]) -> list[threading.Thread]:
    """Threads alive now that were not alive at `before`: what a call left running. (Not a count of
    all threads: a daemon thread an earlier test left behind may end meanwhile.)"""
    return [t for t in threading.enumerate() if t not in before]


def big_value() -> dict:
    """Several members of both kinds: big zero-copy buffers and many small pickle frames."""
    rng = bytes(range(256))
    return {
        "noise": os.urandom(3 * MEMBER_SIZE),  # incompressible: the file stays large
        "words": [f"w{i}-{rng[i % 256]}" for i in range(400_000)],  # many small frames
        "tail": os.urandom(MEMBER_SIZE // 3),
    }


@pytest.fixture(scope="module")
def value() -> dict:
    return big_value()


def dump(value: object, key: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    GzipPickleSerializer(signing_key=key).dump(value, buf, "x_20240101.pkl.gz")
    return buf.getvalue()


def load(data: bytes, key: bytes | None = None) -> object:
    return GzipPickleSerializer(signing_key=key).load(io.BytesIO(data), "x_20240101.pkl.gz")


def test_large_round_trip_is_standard_gzip(value: dict) -> None:
    data = dump(value)
    assert len(data) > THREADED_READ_MIN  # large enough for the inflating helper thread
    assert load(data) == value
    assert pickle.loads(gzip.decompress(data)) == value  # any gzip reader agrees


@pytest.mark.parametrize("key", [None, b"k"])
def test_large_damage_is_detected(value: dict, key: bytes | None) -> None:
    data = dump(value, key)
    middle = len(data) // 2
    flipped = bytearray(data)
    flipped[middle] ^= 0x10
    # The last data member's ISIZE zeroed (the end member, whose trailer is zero, follows it).
    zeroed = data[: -END_LEN - 4] + b"\0\0\0\0" + data[-END_LEN:]
    for damaged in (data[:middle], bytes(flipped), data + b"garbage!", zeroed):
        with pytest.raises(CorruptCacheError):
            load(damaged, key)


def test_signed_large_file_verifies(value: dict) -> None:
    data = dump(value, b"secret")
    assert load(data, b"secret") == value
    with pytest.raises(CorruptCacheError, match="signature"):
        load(data, b"other")


class Exploding:
    """Pickles fine until it is reached, after several batches were already handed over."""

    def __reduce__(self) -> tuple:
        raise RuntimeError("boom while pickling")


def test_error_midway_stops_helper_and_keeps_previous_file(tmp_path, value: dict, monkeypatch) -> None:
    save_cache({"v": 1}, "p", "2024-01-01", tmp_path)
    before = set(threading.enumerate())
    shut: list[tuple[str, bool]] = []  # the pools shut down, and whether the shutdown waited
    real_shutdown = ThreadPoolExecutor.shutdown

    def shutdown(self: ThreadPoolExecutor, wait: bool = True, *, cancel_futures: bool = False) -> None:
        shut.append((self._thread_name_prefix, wait))
        real_shutdown(self, wait, cancel_futures=cancel_futures)

    monkeypatch.setattr(ThreadPoolExecutor, "shutdown", shutdown)
    with pytest.raises(RuntimeError, match="boom"):
        save_cache({**value, "z": Exploding()}, "p", "2024-01-01", tmp_path)
    # The writer stops its own pool before the error leaves it (garbage collection would end idle
    # workers too, later: the thread check alone would not tell).
    assert shut == [("cache_utils-deflate", True)]
    assert started_since(before) == []  # the deflate threads are gone
    assert read_cache("p", "2024-01-01", tmp_path) == {"v": 1}
    assert sorted(os.listdir(tmp_path)) == ["p_20240101.pkl.gz"]  # no temp file left


def test_unpickling_error_midway_stops_inflater(value: dict) -> None:
    data = dump({**value, "bad": Unloadable()})
    before = set(threading.enumerate())
    with pytest.raises(CorruptCacheError):
        load(data)
    assert started_since(before) == []


class Unloadable:
    def __reduce__(self) -> tuple:
        return (_fail, ())


def _fail() -> None:
    raise pickle.UnpicklingError("cannot rebuild")


@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_large_files_of_older_protocols_load(tmp_path, protocol: int) -> None:
    """Protocols 0-3 read opcodes line by line (readline), newer ones in frames (read/readinto)."""
    import datetime as dt

    value = {"blob": os.urandom(THREADED_READ_MIN + (1 << 20)),
             "when": [dt.date(2024, 1, d) for d in range(1, 29)],
             "text": "line\nbreaks\n" * 1000}
    path = tmp_path / "old_20240101.pkl.gz"
    with gzip.open(path, "wb", compresslevel=1) as f:
        pickle.dump(value, f, protocol=protocol)
    assert path.stat().st_size > THREADED_READ_MIN  # the threaded reader is used
    assert read_cache("old", "2024-01-01", tmp_path) == value


class _ExplodesOnLoad:
    def __reduce__(self):  # unpickling calls _explode: verify must never get there
        return (_explode, ())


def _explode() -> None:
    raise AssertionError("verify unpickled the file")


@pytest.mark.parametrize("key", [None, b"k"])
def test_verify_checks_signature_and_crc_without_unpickling(key: bytes | None) -> None:
    ser = GzipPickleSerializer(signing_key=key)
    buf = io.BytesIO()
    ser.dump(_ExplodesOnLoad(), buf, "p_20240101.pkl.gz")
    whole = buf.getvalue()
    ser.verify(io.BytesIO(whole), "/d/p_20240101.pkl.gz")  # no error, no unpickling
    with pytest.raises(CorruptCacheError, match="p_20240101"):
        ser.verify(io.BytesIO(whole[:-6]), "/d/p_20240101.pkl.gz")
    if key is not None:
        with pytest.raises(CorruptCacheError, match="signature"):
            GzipPickleSerializer(signing_key=b"other").verify(io.BytesIO(whole), "/d/p_20240101.pkl.gz")
