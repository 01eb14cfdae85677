"""Multi-member cache files: standard gzip for every reader, an index only we read, signed and
checked member by member, a content fingerprint of the whole pickle, bounded memory."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import logging
import os
import pickle
import random
import re
import shutil
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import pandas as pd  # imported before freezegun runs (pandas issue 64023)
import pytest
from freezegun import freeze_time

from cache_utils import (
    CorruptCacheError,
    GzipPickleSerializer,
    cache_fingerprint,
    load_cache,
    load_latest_cache,
    read_cache,
    save_cache,
    verify_cache,
    write_cache,
)
from cache_utils.format import layout
from cache_utils.format import threads as format_threads
from cache_utils.format.layout import END_LEN, MEMBER_SIZE
from cache_utils.format.reader import MemberReader
from cache_utils.format.writer import MemberWriter

NAME = "prices_20240115.pkl.gz"
OLDER = {"older": True}


def members(data: bytes) -> list[tuple[int, int, list[bytes]]]:
    """(offset, size, subfield ids) of each gzip member, walking the `CM` sizes and the end member."""
    out, pos = [], 0
    while pos < len(data):
        assert data[pos : pos + 4] == b"\x1f\x8b\x08\x04"
        (xlen,) = struct.unpack_from("<H", data, pos + 10)
        ids, size, sub = [], None, pos + 12
        while sub < pos + 12 + xlen:
            sub_id, sub_len = data[sub : sub + 2], struct.unpack_from("<H", data, sub + 2)[0]
            ids.append(sub_id)
            if sub_id == b"CM":
                (size,) = struct.unpack_from("<I", data, sub + 4)
            sub += 4 + sub_len
        size = END_LEN if size is None else size
        out.append((pos, size, ids))
        pos += size
    return out


def payload(n: int, seed: int = 0) -> dict:
    """A value whose pickle spans about n bytes, partly compressible."""
    rng = hashlib.sha256(str(seed).encode()).digest()
    return {"blob": (rng * (n // 64 + 1))[: n // 2] + os.urandom(n // 2), "n": n, "seed": seed}


@pytest.fixture(scope="module")
def big() -> dict:
    return payload(3 * MEMBER_SIZE + 12345)


@pytest.fixture
def small_members(monkeypatch: pytest.MonkeyPatch) -> int:
    """Members of 4 KiB, so a small file has many of them (and every byte can be flipped)."""
    monkeypatch.setattr(layout, "MEMBER_SIZE", 4096)
    return 4096


def dump(value: object, key: bytes | None = None, threads: int = 2, level: int = 2) -> bytes:
    buf = io.BytesIO()
    GzipPickleSerializer(level=level, signing_key=key, threads=threads).dump(value, buf, NAME)
    return buf.getvalue()


def load(data: bytes, key: bytes | None = None, threads: int = 2) -> object:
    return GzipPickleSerializer(signing_key=key, threads=threads).load(io.BytesIO(data), NAME)


def plant(directory: Path, data: bytes, name: str = NAME) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_bytes(data)
    return path


# --- the layout, as every gzip reader sees it ------------------------------------------------


def test_layout_fixed_size_members_then_end_member(big: dict) -> None:
    data = dump(big)
    found = members(data)
    raw = pickle.dumps(big, protocol=5)
    assert len(found) == -(-len(raw) // MEMBER_SIZE) + 1  # whole members, the rest, the end member
    assert [ids for _, _, ids in found[:-1]] == [[b"CM"]] * (len(found) - 1)
    assert found[-1][2] == [b"CI"] and found[-1][0] + END_LEN == len(data)
    for offset, size, _ in found[:-1]:  # each member is a complete gzip stream of its own
        member = gzip.decompress(data[offset : offset + size])
        assert len(member) <= MEMBER_SIZE
    assert gzip.decompress(data[found[-1][0] :]) == b""  # the end member holds no data


def test_round_trip_through_every_reader(big: dict, tmp_path: Path) -> None:
    path = Path(save_cache(big, "prices", "2024-01-15", tmp_path))
    assert len(members(path.read_bytes())) > 3
    with gzip.open(path) as f:
        assert pickle.load(f) == big
    assert pd.read_pickle(path) == big
    assert read_cache("prices", "2024-01-15", tmp_path) == big


@pytest.mark.skipif(shutil.which("gzip") is None, reason="no gzip command")
def test_gzip_command_reads_and_tests_the_file(big: dict, tmp_path: Path) -> None:
    path = save_cache(big, "prices", "2024-01-15", tmp_path, signing_key="k")
    out = subprocess.run(["gzip", "-dc", path], capture_output=True, check=True).stdout
    assert pickle.loads(out) == big
    assert subprocess.run(["gzip", "-t", path], capture_output=True).returncode == 0


def test_frame_round_trips_through_pandas(tmp_path: Path) -> None:
    import numpy as np

    df = pd.DataFrame({"a": np.arange(600_000), "s": [f"row{i}" for i in range(600_000)]})
    path = save_cache(df, "frame", "2024-01-15", tmp_path)
    assert len(members(Path(path).read_bytes())) > 2
    assert pd.read_pickle(path).equals(df)
    assert read_cache("frame", "2024-01-15", tmp_path).equals(df)


def test_same_data_same_bytes_whatever_the_thread_count(big: dict) -> None:
    one = dump(big, threads=1)
    assert dump(big, threads=2) == one
    assert dump(big, threads=5) == one


def test_small_value_is_one_member_and_an_end_member() -> None:
    data = dump({"x": 1})
    assert [ids for _, _, ids in members(data)] == [[b"CM"], [b"CI"]]
    assert load(data) == {"x": 1}
    assert pickle.loads(gzip.decompress(data)) == {"x": 1}


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_reader_serves_read_readline_and_readinto(protocol: int, small_members: int) -> None:
    """Protocols 0-2 read opcodes line by line; the pure-Python unpickler (pandas' compatibility
    reader) reads through `read` and `readline` too."""
    value = {"text": "line\nbreaks\n" * 3000, "n": list(range(5000)), "b": os.urandom(10_000)}
    buf = io.BytesIO()
    writer = MemberWriter(buf, 2, 2)
    pickle.dump(value, writer, protocol=protocol)
    writer.finish()
    writer.close()
    for unpickler in (pickle.Unpickler, pickle._Unpickler):
        buf.seek(0)
        with MemberReader(buf, 2) as reader:
            assert unpickler(reader).load() == value
            assert reader.read(1) == b""


# --- signing --------------------------------------------------------------------------------


def test_signed_file_signature_covers_every_member_and_the_index(big: dict) -> None:
    data = dump(big, key=b"k")
    first_header = 12 + struct.unpack_from("<H", data, 10)[0]
    assert members(data)[0][2] == [b"CU", b"CM"]
    mac = hmac.new(b"k", b"cache_utils-v1\0" + NAME.encode() + b"\0" + data[first_header:], hashlib.sha256)
    assert data[17:49] == mac.digest()  # after XLEN, `CU`, its length and the version byte
    assert load(data, key=b"k") == big
    assert load(data) == big  # a reader without a key reads it like any file
    assert pickle.loads(gzip.decompress(data)) == big


def flip_positions(data: bytes, every: int = 32, random_picks: int = 128, seed: int = 20) -> list[int]:
    """Every byte of each member's header (its subfields: signature, size, index) and trailer (CRC,
    length) and of the end member, plus a deterministic sample of each deflate body: its first and
    last 8 bytes (block headers, end of block), every `every`-th byte and `random_picks` seeded ones."""
    rng = random.Random(seed)
    chosen: set[int] = set()
    for offset, size, ids in members(data):
        if ids == [b"CI"]:  # the end member: header, index, empty deflate, trailer
            chosen.update(range(offset, offset + size))
            continue
        body_start = offset + 12 + struct.unpack_from("<H", data, offset + 10)[0]
        body_end = offset + size - 8
        chosen.update(range(offset, body_start), range(body_end, offset + size))
        chosen.update(range(body_start, min(body_start + 8, body_end)))
        chosen.update(range(max(body_end - 8, body_start), body_end))
        chosen.update(range(body_start, body_end, every))
    chosen.update(rng.sample(range(len(data)), min(random_picks, len(data))))
    return sorted(chosen)


def assert_every_flip_caught(
    data: bytes, value: object, key: bytes | None, positions: list[int] | None
) -> None:
    """Flip each byte at `positions` (all: None) of `value`'s file `data`: verify or load raises
    CorruptCacheError, never returns different data, and no byte is one no reader looks at."""
    assert len(members(data)) >= 5
    ser = GzipPickleSerializer(signing_key=key, threads=2)
    harmless = []
    for pos in range(len(data)) if positions is None else positions:
        damaged = bytearray(data)
        damaged[pos] ^= 0x41
        try:
            ser.verify(io.BytesIO(bytes(damaged)), NAME)
            loaded = ser.load(io.BytesIO(bytes(damaged)), NAME)
        except CorruptCacheError:
            continue
        assert loaded == value, pos  # never different data
        harmless.append(pos)  # a byte no reader looks at would be harmless: there is none
    assert harmless == []


def flip_value() -> dict:
    return {"words": [f"w{i}" for i in range(3000)], "blob": os.urandom(6000)}


@pytest.mark.parametrize("key", [b"k", None])
def test_a_flipped_byte_anywhere_is_caught(small_members: int, key: bytes | None) -> None:
    """Every header, trailer and index byte and a sample of the bodies (the full run: below)."""
    value = flip_value()
    data = dump(value, key=key)
    assert_every_flip_caught(data, value, key, flip_positions(data))


@pytest.mark.slow
@pytest.mark.parametrize("key", [b"k", None])
def test_a_flipped_byte_anywhere_is_caught_every_byte(small_members: int, key: bytes | None) -> None:
    value = flip_value()
    assert_every_flip_caught(dump(value, key=key), value, key, None)


# --- damage falls back like any corrupt file ------------------------------------------------


def _swap_members(data: bytes) -> bytes:
    (a, sa, _), (b, sb, _) = members(data)[1:3]  # each still a valid member on its own
    return data[:a] + data[b : b + sb] + data[a : a + sa] + data[b + sb :]


def _drop_member(data: bytes) -> bytes:
    a, size, _ = members(data)[1]
    return data[:a] + data[a + size :]


def _index_byte(data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[-END_LEN + 20] ^= 1  # inside the end member's index
    return bytes(damaged)


def _member_size(data: bytes) -> bytes:
    a, size, _ = members(data)[1]
    return data[: a + 16] + struct.pack("<I", size + 7) + data[a + 20 :]


def _member_deflate(data: bytes) -> bytes:
    a, size, _ = members(data)[2]
    damaged = bytearray(data)
    damaged[a + size // 2] ^= 0x08
    return bytes(damaged)


DAMAGE = {
    "index byte flipped": _index_byte,
    "end member cut off": lambda d: d[:-END_LEN],
    "end member truncated": lambda d: d[:-5],
    "member size changed": _member_size,
    "member deflate damaged": _member_deflate,
    "two members swapped": _swap_members,
    "a member dropped": _drop_member,
    "member after the end member": lambda d: d + d[: members(d)[1][0]],
    "plain gzip member appended": lambda d: d + gzip.compress(pickle.dumps("extra")),
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
@pytest.mark.parametrize("key", [None, "k"])
def test_damaged_index_or_member_falls_back(
    tmp_path: Path, small_members: int, damage: str, key: str | None
) -> None:
    value = {"rows": list(range(20_000)), "blob": os.urandom(9000)}
    save_cache(OLDER, "prices", "2024-01-14", tmp_path, signing_key=key)
    good = Path(save_cache(value, "prices", "2024-01-15", tmp_path, signing_key=key))
    plant(tmp_path, DAMAGE[damage](good.read_bytes()))
    with pytest.raises(CorruptCacheError, match=NAME):
        read_cache("prices", "2024-01-15", tmp_path, signing_key=key)
    with pytest.raises(CorruptCacheError):
        verify_cache("prices", "2024-01-15", tmp_path, signing_key=key)
    hit, skipped = load_latest_cache("prices", "2024-01-15", tmp_path, signing_key=key)
    assert hit is not None and hit.data == OLDER
    assert [os.path.basename(s.path) for s in skipped] == [NAME]


def test_load_cache_skips_a_damaged_multimember_file_to_yesterday(tmp_path: Path, big: dict) -> None:
    save_cache(OLDER, "prices", "2024-01-14", tmp_path)
    good = Path(save_cache(big, "prices", "2024-01-15", tmp_path))
    plant(tmp_path, _member_deflate(good.read_bytes()))
    with freeze_time("2024-01-15 12:00:00"):
        data, _ = load_cache("prices", "23:00", tmp_path, tz="UTC")
    assert data == OLDER


# --- older files -------------------------------------------------------------------------------


def old_format(value: object, key: bytes | None = None, name: str = NAME) -> bytes:
    """A file as earlier versions wrote it: one gzip member, signed in a `CU` subfield."""
    raw = pickle.dumps(value, protocol=5)
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = deflate.compress(raw) + deflate.flush()
    body += struct.pack("<II", zlib.crc32(raw), len(raw) & 0xFFFFFFFF)
    if key is None:
        return b"\x1f\x8b\x08\x00\0\0\0\0\0\xff" + body
    mac = hmac.new(key, b"cache_utils-v1\0" + name.encode() + b"\0" + body, hashlib.sha256).digest()
    return b"\x1f\x8b\x08\x04\0\0\0\0\0\xff" + struct.pack("<H2sH", 37, b"CU", 33) + b"\x01" + mac + body


@pytest.mark.parametrize("key", [None, b"old key"])
def test_single_member_files_of_earlier_versions_still_load(tmp_path: Path, big: dict, key) -> None:
    data = old_format(big, key)
    plant(tmp_path, data)
    assert read_cache("prices", "2024-01-15", tmp_path, signing_key=key) == big
    verify_cache("prices", "2024-01-15", tmp_path, signing_key=key)
    # The fingerprint of such a file is its trailer, as before.
    crc, isize = struct.unpack("<II", data[-8:])
    assert cache_fingerprint("prices", "2024-01-15", tmp_path).fingerprint == f"{crc:08x}{isize:08x}"


def test_seed_to_pickle_gzip9_files_still_load(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": range(1000), "b": [f"x{i}" for i in range(1000)]})
    tmp_path.mkdir(exist_ok=True)
    df.to_pickle(tmp_path / NAME)  # pandas infers gzip (level 9 by default) from the name
    assert read_cache("prices", "2024-01-15", tmp_path).equals(df)
    trailer = (tmp_path / NAME).read_bytes()[-8:]
    crc, isize = struct.unpack("<II", trailer)
    assert cache_fingerprint("prices", "2024-01-15", tmp_path).fingerprint == f"{crc:08x}{isize:08x}"


# --- the content fingerprint -------------------------------------------------------------------


def test_fingerprint_is_the_whole_pickles_crc_and_length(tmp_path: Path, big: dict) -> None:
    raw = pickle.dumps(big, protocol=5)
    expected = f"{zlib.crc32(raw):08x}{len(raw) & 0xFFFFFFFF:08x}"
    seen = set()
    for threads in (1, 2):
        for key in (None, b"a", b"b"):
            for level in (0, 3):
                data = dump(big, key=key, threads=threads, level=level)
                seen.add(GzipPickleSerializer.fingerprint(io.BytesIO(data), NAME))
    assert seen == {expected}
    # The same number for an earlier version's single-member file of the same pickle.
    assert GzipPickleSerializer.fingerprint(io.BytesIO(old_format(big)), NAME) == expected
    written = write_cache(big, "prices", "2024-01-15", tmp_path)
    assert written.fingerprint == expected
    assert cache_fingerprint("prices", "2024-01-15", tmp_path).fingerprint == expected
    assert verify_cache("prices", "2024-01-15", tmp_path).fingerprint == expected
    assert write_cache(big | {"n": 0}, "prices", "2024-01-16", tmp_path).fingerprint != expected


class CountingReader(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.reads.append(len(chunk))
        return chunk


def test_fingerprint_is_one_small_read_from_the_end(big: dict) -> None:
    f = CountingReader(dump(big, key=b"k"))
    GzipPickleSerializer.fingerprint(f, NAME)
    assert f.reads == [END_LEN] and END_LEN < 100


def test_damaged_end_member_has_no_fingerprint(tmp_path: Path, big: dict) -> None:
    data = dump(big)
    for damaged in (_index_byte(data), data[:-1] + b"\x01", data[:-END_LEN] + b"\x1e" + data[-END_LEN + 1 :]):
        with pytest.raises(CorruptCacheError, match="end member"):
            GzipPickleSerializer.fingerprint(io.BytesIO(damaged), NAME)
    with pytest.raises(CorruptCacheError, match="too short"):
        GzipPickleSerializer.fingerprint(io.BytesIO(b"\x1f\x8b"), NAME)


# --- threads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["2", 2.0, True, b"2", [2]])
def test_threads_of_the_wrong_type(bad: object) -> None:
    with pytest.raises(TypeError, match=re.escape(f"got {type(bad).__name__}: {bad!r}")):
        GzipPickleSerializer(threads=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -1, format_threads.MAX_THREADS + 1])
def test_threads_out_of_range(bad: int) -> None:
    limit = format_threads.MAX_THREADS
    with pytest.raises(ValueError, match=rf"threads must be an int from 1 to {limit}, got {bad}\b"):
        GzipPickleSerializer(threads=bad)


def test_default_threads_are_the_usable_cores_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(format_threads.THREADS_ENV, raising=False)
    cores = len(os.sched_getaffinity(0))
    assert GzipPickleSerializer().threads == min(cores, format_threads.DEFAULT_MAX_THREADS)
    monkeypatch.setattr(format_threads, "available_cores", lambda: 96)
    assert GzipPickleSerializer().threads == format_threads.DEFAULT_MAX_THREADS
    monkeypatch.setenv(format_threads.THREADS_ENV, "3")
    assert GzipPickleSerializer().threads == 3
    assert GzipPickleSerializer(threads=1).threads == 1  # an explicit count wins


@pytest.mark.parametrize("bad", ["0", "many", "2.5", "65", "-3"])
def test_a_bad_thread_setting_warns_once_and_loads_anyway(
    bad: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Like a bad CACHE_UTILS_ALERT_TIMEOUT: a warning naming the variable and value, once, and the
    default count; loads (with and without data) go on."""
    monkeypatch.setattr(format_threads, "_warned_threads", set())
    monkeypatch.setattr(format_threads, "available_cores", lambda: 3)
    monkeypatch.setenv(format_threads.THREADS_ENV, bad)
    with caplog.at_level(logging.WARNING, logger="cache_utils"):
        assert GzipPickleSerializer().threads == 3
        save_cache({"a": 1}, "t", "2024-01-15", str(tmp_path))
        with freeze_time("2024-01-15 09:00"):
            assert load_cache("t", "08:00", str(tmp_path))[0] == {"a": 1}
            assert load_cache("none", "08:00", str(tmp_path), allow_no_data=True)[0] == {}
    warned = [r.getMessage() for r in caplog.records if format_threads.THREADS_ENV in r.getMessage()]
    assert warned == [f"ignoring {format_threads.THREADS_ENV}={bad!r}: not a whole number from 1 to "
                      f"{format_threads.MAX_THREADS}; using 3 thread(s)"]


def test_workers_are_used_and_stopped(big: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    started: list[tuple[int, str]] = []
    real = ThreadPoolExecutor.__init__

    def spy(self: ThreadPoolExecutor, max_workers: int, thread_name_prefix: str = "", **kw: object) -> None:
        if thread_name_prefix.startswith("cache_utils-"):
            started.append((max_workers, thread_name_prefix))
        real(self, max_workers, thread_name_prefix, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ThreadPoolExecutor, "__init__", spy)
    before = set(threading.enumerate())  # not a count: a thread an earlier test left may end meanwhile
    data = dump(big, threads=3)
    assert load(data, threads=3) == big
    assert started == [(3, "cache_utils-deflate"), (3, "cache_utils-inflate")]
    assert [t for t in threading.enumerate() if t not in before] == []  # every worker stopped
    started.clear()
    assert load(dump({"small": 1}, threads=3), threads=3) == {"small": 1}
    assert started == []  # one member: no thread at all
    assert load(dump(big, threads=1), threads=1) == big
    assert started == []  # threads=1: everything in the calling thread


# --- memory ------------------------------------------------------------------------------------

MEMORY_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from cache_utils import load_cache, save_cache

    def status(field):  # VmRSS: resident now; VmHWM: peak of this process image (ru_maxrss
        with open("/proc/self/status") as f:  # would carry the parent's peak across exec)
            line = next(line for line in f if line.startswith(field + ":"))
        return int(line.split()[1]) * 1024

    def rss():
        return status("VmRSS")

    def peak():
        return status("VmHWM")

    directory, action, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
    if action == "save":
        blob = os.urandom(size)
        base = max(rss(), peak())
        save_cache(blob, "mem", None, directory)
    else:
        base = max(rss(), peak())
        blob, _ = load_cache("mem", "23:59:59", directory)
        assert len(blob) == size
    print(json.dumps({"extra": peak() - base}))
""")


@pytest.mark.integration
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
def test_memory_stays_bounded_for_a_large_incompressible_object(tmp_path: Path) -> None:
    """Peak resident memory above the object itself: a few members in flight, not the file."""
    size = 256 << 20
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CACHE_UTILS_")},
           "CACHE_UTILS_THREADS": "2"}
    extra = {}
    for action in ("save", "load"):
        done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, str(tmp_path), action, str(size)],
                              capture_output=True, text=True, env=env, timeout=240, check=True)
        extra[action] = json.loads(done.stdout)["extra"]
    # 2 threads: 2 members of 2 MiB deflated at once (3 inflated): a few MB whatever the size.
    assert extra["save"] / size < 0.2, extra  # no copy of the pickle, nor of the file
    assert (extra["load"] - size) / size < 0.2, extra  # the object itself, plus members in flight


def test_object_store_round_trip_and_fingerprint(big: dict) -> None:
    """Through an fsspec store (memory://): members read back in order, fingerprint from the end."""
    written = write_cache(big, "prices", "2024-01-15", "memory://multimember-test")
    assert read_cache("prices", "2024-01-15", "memory://multimember-test") == big
    assert cache_fingerprint("prices", "2024-01-15", "memory://multimember-test").fingerprint == \
        written.fingerprint
