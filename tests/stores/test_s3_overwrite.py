"""Reads of an S3 object that a writer replaces meanwhile (issue 18 item 1): every load returns one
whole version of today's file, never a mix, never yesterday's file. Against moto's server.

Before the fix a read asked HEAD for the size, then fetched ranges: a writer replacing the object in
between made the reader mix two versions (or cut one short), skip the good file as corrupt and
return yesterday's data."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

import cache_utils.stores.pinned as pinned_reads
from cache_utils import CorruptCacheError, load_latest_cache, read_cache, write_cache
from tests.support.s3_server import MotoS3

pytestmark = pytest.mark.integration

TODAY, YESTERDAY = "2024-03-02", "2024-03-01"
SMALL_BLOCK = 256 * 1024  # the read block (and single-GET threshold) these tests use


def _payload(tag: str, size: int) -> tuple[str, bytes, bytes]:
    """Incompressible bytes, so the file is about `size` bytes; the tag names the version."""
    body = hashlib.shake_256(tag.encode()).digest(size)
    return (tag, hashlib.sha256(body).digest(), body)


def _stress(s3: MotoS3, bucket: str, sizes: tuple[int, int], seconds: float, pause: float,
            enough: Callable[[int], bool] = lambda loads: True) -> tuple[int, list[str], list[str]]:
    """A writer overwrites today's file, alternating two versions of `sizes` bytes (pausing
    `pause` s after each save, like a refresh job), while this thread loads for `seconds`, and on
    until the writer saved 3 times and `enough(loads)` holds (at most 10 x `seconds`): on a busy
    machine the loads and writes of `seconds` may be too few to prove anything.
    Returns (loads, wrong loads described, errors described)."""
    url, opts = f"s3://{bucket}/c", s3.options()
    versions = [_payload("a", sizes[0]), _payload("b", sizes[1])]
    write_cache(_payload("yesterday", 1000), "p", YESTERDAY, url, storage_options=opts)
    write_cache(versions[0], "p", TODAY, url, storage_options=opts)
    stop = threading.Event()
    writes = [0]

    def writer() -> None:
        while not stop.is_set():
            write_cache(versions[writes[0] % 2 - 1], "p", TODAY, url, storage_options=opts)
            writes[0] += 1
            stop.wait(pause)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    loads, wrong, errors = 0, [], []
    start = time.monotonic()

    def done() -> bool:
        now = time.monotonic() - start
        return now >= 10 * seconds or (now >= seconds and writes[0] >= 3 and enough(loads))

    try:
        while not done():
            try:
                hit, skipped = load_latest_cache("p", TODAY, url, storage_options=opts)
            except OSError as e:  # an error is not a wrong load, but none is expected either
                errors.append(f"{type(e).__name__}: {e}")
                continue
            loads += 1
            data: Any = hit.data if hit else None
            if hit is None or str(hit.date) != TODAY or data not in versions or skipped:
                got = data[0] if isinstance(data, tuple) else data
                wrong.append(f"{hit and hit.date} {got!r} skipped={[s.reason for s in skipped]}")
    finally:
        stop.set()
        thread.join(30)
    assert writes[0] >= 3, "the writer barely ran: the test proves nothing"
    return loads, wrong, errors


@pytest.mark.parametrize(("sizes", "pause"), [
    pytest.param((3 * SMALL_BLOCK + 1234, 5 * SMALL_BLOCK + 77), 0.15, id="ranged"),
    pytest.param((SMALL_BLOCK // 2, SMALL_BLOCK // 3), 0.0, id="single-get"),
])
def test_loads_during_overwrites_return_one_whole_version_of_today(
    s3: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
    sizes: tuple[int, int], pause: float,
) -> None:
    """Objects above the single-GET threshold (ranged reads pinned to one version) and below it
    (one GET); the block is made small so the ranged case costs a few MiB, not hundreds."""
    monkeypatch.setattr(pinned_reads, "READ_BLOCKSIZE", SMALL_BLOCK)
    caplog.set_level(logging.INFO, "cache_utils")

    def restarted() -> int:
        return sum("replaced while being read" in r.getMessage() for r in caplog.records)

    def enough(loads: int) -> bool:  # what the assertions below need, once 6 s have passed
        return loads >= 10 and (sizes[0] <= SMALL_BLOCK or restarted() >= 1)

    loads, wrong, errors = _stress(s3, bucket, sizes, seconds=6.0, pause=pause, enough=enough)
    restarts = restarted()
    print(f"{loads} loads, {len(wrong)} wrong, {len(errors)} failed, {restarts} reads restarted")
    assert loads >= 10
    if sizes[0] > SMALL_BLOCK:  # the race was met: some reads found their object replaced
        assert restarts >= 1
    assert wrong == [], f"{len(wrong)} of {loads} loads wrong: {wrong[:5]}"
    assert errors == [], f"{len(errors)} loads failed: {errors[:5]}"


@pytest.mark.slow
def test_loads_during_overwrites_real_block_size(s3: MotoS3, bucket: str) -> None:
    """The same with the shipped block size: one version larger than it, one smaller."""
    block = pinned_reads.READ_BLOCKSIZE
    loads, wrong, errors = _stress(s3, bucket, (block + block // 2, block // 2), seconds=30.0, pause=0.5)
    print(f"{loads} loads, {len(wrong)} wrong, {len(errors)} failed")
    assert loads >= 5
    assert wrong == [], f"{len(wrong)} of {loads} loads wrong: {wrong[:5]}"
    assert errors == [], f"{len(errors)} loads failed: {errors[:5]}"


def test_a_read_keeps_its_version_when_the_object_is_replaced_between_ranges(
    s3: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deterministic: the object is replaced right after the first ranged GET of a read. The read
    starts again from the start and returns the new version whole (no mix, no fallback)."""
    monkeypatch.setattr(pinned_reads, "READ_BLOCKSIZE", SMALL_BLOCK)
    url, opts = f"s3://{bucket}/c", s3.options()
    old, new = _payload("old", 3 * SMALL_BLOCK), _payload("new", 4 * SMALL_BLOCK)
    write_cache(_payload("yesterday", 1000), "p", YESTERDAY, url, storage_options=opts)
    write_cache(old, "p", TODAY, url, storage_options=opts)
    key = s3.keys(bucket, "c/p_20240302")[0]
    new_bytes: list[bytes] = []
    write_cache(new, "p", "2024-03-03", url, storage_options=opts)
    new_bytes.append(s3.client.get_object(Bucket=bucket, Key="c/p_20240303.pkl.gz")["Body"].read())
    real_fetch = pinned_reads._S3RangeFile._fetch
    replaced = []

    def fetch_then_replace(self: Any, start: int, length: int) -> bytes:
        data: bytes = real_fetch(self, start, length)
        if not replaced:  # the writer's put lands between this read's requests
            s3.client.put_object(Bucket=bucket, Key=key, Body=new_bytes[0])
            replaced.append(start)
        return data

    monkeypatch.setattr(pinned_reads._S3RangeFile, "_fetch", fetch_then_replace)
    hit, skipped = load_latest_cache("p", TODAY, url, storage_options=opts)
    assert replaced and skipped == ()
    assert hit is not None and str(hit.date) == TODAY and hit.data == new


def test_small_object_is_read_in_one_request(s3: MotoS3, bucket: str) -> None:
    """Issue 22 item 3: a file up to the read block costs one GET (no HEAD), counted by a proxy."""
    from tests.support.s3_server import latency_proxy

    url = f"s3://{bucket}/c"
    write_cache({"x": 1}, "p", TODAY, url, storage_options=s3.options())
    with latency_proxy(s3.endpoint, 0.0) as (proxy, stats):
        opts = {"endpoint_url": proxy}
        read_cache("p", TODAY, url, storage_options=opts)  # connection set up, client created
        stats.reset()
        assert read_cache("p", TODAY, url, storage_options=opts) == {"x": 1}
        assert stats.requests == 1


def test_a_store_failure_during_a_read_is_not_a_corrupt_file(s3: MotoS3) -> None:
    """The first request of a read is a GET inside the unpickler's reads: a store that refuses it
    (here botocore refuses the bucket name) fails the load, naming the cause, instead of having
    the file skipped as corrupt and an older one served."""
    url = "s3://Invalid_Bucket!/c"
    with pytest.raises(OSError, match="Invalid bucket name") as caught:
        read_cache("p", TODAY, url, storage_options=s3.options())
    assert not isinstance(caught.value, CorruptCacheError)
    with pytest.raises(OSError, match="Invalid bucket name") as caught:
        load_latest_cache("p", TODAY, url, storage_options=s3.options())
    assert not isinstance(caught.value, CorruptCacheError)


def test_on_a_versioned_bucket_a_read_keeps_the_version_it_started_with(
    s3: MotoS3, bucket: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With versioning on, later GETs ask for the first one's VersionId: the overwrite does not
    disturb the read (no restart), and the version it began with comes back whole."""
    monkeypatch.setattr(pinned_reads, "READ_BLOCKSIZE", SMALL_BLOCK)
    caplog.set_level(logging.INFO, "cache_utils")
    s3.client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    url, opts = f"s3://{bucket}/c", s3.options()
    old, new = _payload("old", 3 * SMALL_BLOCK), _payload("new", 4 * SMALL_BLOCK)
    write_cache(old, "p", TODAY, url, storage_options=opts)
    write_cache(new, "p", "2024-03-03", url, storage_options=opts)
    new_bytes = s3.client.get_object(Bucket=bucket, Key="c/p_20240303.pkl.gz")["Body"].read()
    real_fetch = pinned_reads._S3RangeFile._fetch
    replaced = []

    def fetch_then_replace(self: Any, start: int, length: int) -> bytes:
        data: bytes = real_fetch(self, start, length)
        if not replaced:
            s3.client.put_object(Bucket=bucket, Key="c/p_20240302.pkl.gz", Body=new_bytes)
            replaced.append(start)
        return data

    monkeypatch.setattr(pinned_reads._S3RangeFile, "_fetch", fetch_then_replace)
    assert read_cache("p", TODAY, url, storage_options=opts) == old
    assert replaced
    assert not any("replaced while being read" in r.getMessage() for r in caplog.records)
