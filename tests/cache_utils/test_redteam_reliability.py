"""Red-team round on the reliability fixes: the rest of each class of failure the fixes missed.

Each test failed on the code it was written against and names the README promise it broke; all hold now.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # before freezegun, as the suite requires
import pytest
from freezegun import freeze_time

from cache_utils import InMemoryCache, NullAlerter, load_cache, prune, read_cache, save_cache
from cache_utils.alerts import WebhookAlerter
from cache_utils.errors import CacheNotFoundError, CorruptCacheError
from cache_utils.files import get_latest_cache_filename
from cache_utils.naming import to_date
from tests.support.s3_server import FAKE_ENV, trickling_endpoint


@pytest.fixture(autouse=True)
def _clean_memory_cache() -> Iterator[None]:
    InMemoryCache.clear()
    yield
    InMemoryCache.clear()


# --- 1. prune: "the newest file that verifies" is not "the newest file that loads" -------------------


def test_prune_keeps_a_broken_pickle_in_valid_gzip_and_deletes_the_only_loadable_file(tmp_path: Path) -> None:
    """README's own corrupt-file list includes "a broken pickle in valid gzip": its CRC verifies, so
    prune(keep=1) keeps it as the newest file that verifies and deletes yesterday's good file;
    load_cache, which returned yesterday's data before the prune, then has nothing. Prune
    must never leave load_cache without the data it would have loaded before the prune."""
    d = str(tmp_path)
    with freeze_time("2024-01-15 12:00:00"):
        save_cache({"rows": 3}, "p", "2024-01-14", d)
        (tmp_path / "p_20240115.pkl.gz").write_bytes(gzip.compress(b"this is not a pickle"))
        before, _ = load_cache("p", "08:00", d, tz="UTC", alerter=NullAlerter())
        assert before == {"rows": 3}
        deleted = prune("p", 1, d, tz="UTC")
        try:
            after, _ = load_cache("p", "08:00", d, tz="UTC", alerter=NullAlerter())
        except CacheNotFoundError as e:
            after = e
    assert after == before, (
        f"prune(keep=1) deleted {deleted} although today's file is a broken pickle (its gzip CRC "
        f"verifies, but it does not load): load_cache returned {before!r} before the prune and "
        f"{after!r} after it. Verification must include what load_cache checks (unpickling, or at least "
        f"a pickle opcode scan), or prune must keep the newest file that actually loads."
    )


# --- 2. hangs: an S3 endpoint that trickles its answer is never timed out ---------------------------


def _finishes_within(call: Callable[[], Any], budget: float) -> tuple[bool, Any, float]:
    """Run `call` in a thread: (finished, its result or exception, seconds taken)."""
    out: dict[str, Any] = {}

    def run() -> None:
        start = time.monotonic()
        try:
            out["result"] = call()
        except BaseException as e:  # noqa: BLE001 - reported to the test
            out["result"] = e
        out["took"] = time.monotonic() - start

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(budget)
    return not t.is_alive(), out.get("result"), out.get("took", budget)


_TRICKLE_CALLS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "read_cache": lambda o: read_cache("p", "2024-01-01", "s3://bucket/c", storage_options=o),
    "listing": lambda o: get_latest_cache_filename("p", "s3://bucket/c", storage_options=o),
    "save_cache": lambda o: save_cache(b"x" * 100, "p", "2024-01-01", "s3://bucket/c", storage_options=o),
}


@pytest.mark.integration
@pytest.mark.timeout(60)
@pytest.mark.parametrize("what", sorted(_TRICKLE_CALLS))
def test_s3_endpoint_that_trickles_its_answer_is_bounded(what: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """README "Hangs bounded": every store call must be bounded by the configured
    timeouts. With read_timeout=1, connect_timeout=1, max_attempts=1 (a 2 s bound), a store (or proxy)
    that sends one byte every 0.3 s holds reads, listings and uploads forever: the read timeout is
    per-read, and the upload's deadline is followed by `_abort_uploads`, whose calls trickle too."""
    for k, v in FAKE_ENV.items():
        monkeypatch.setenv(k, v)
    with trickling_endpoint() as (endpoint, _stop):
        opts = {"endpoint_url": endpoint,
                "config_kwargs": {"read_timeout": 1, "connect_timeout": 1, "retries": {"max_attempts": 1}}}
        finished, result, took = _finishes_within(lambda: _TRICKLE_CALLS[what](opts), 8.0)
    assert finished, (
        f"{what} against an S3 endpoint that trickles one byte every 0.3 s was still running after 8 s "
        f"with read_timeout=1, connect_timeout=1, max_attempts=1: give every store call (HEAD, GET, "
        f"listing, the upload's abort calls) an overall deadline, as uploads have, e.g. aiobotocore's "
        f"total timeout or asyncio.wait_for around each call"
    )
    assert isinstance(result, TimeoutError), f"{what} ended with {result!r} after {took:.1f} s"


# --- 3. hangs / resources: a sparse signed file is streamed whole before anything is checked ---------


def _rchar() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


@pytest.mark.timeout(60)
@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs /proc/self/io")
def test_signed_read_of_a_sparse_file_stops_at_the_first_bad_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed mode exists for an attacker who can write to the cache directory. A sparse file costs
    them nothing: a valid signed gzip header followed by a hole of zeros (`truncate -s 16T`). The
    unsigned reader rejects it at the first deflate block; the signed reader hashes and copies all of
    it into a temp file first (a 16 TiB hole: hours, and a full /tmp). 256 MiB here: every byte is
    read (and 192 MiB spooled to disk) before CorruptCacheError."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the spool stays inside tmp_path
    cache = tmp_path / "cache"
    save_cache("x", "p", "2024-01-15", str(cache), signing_key="k")
    path = cache / "p_20240115.pkl.gz"
    header = path.read_bytes()[:49]  # the signed header: 10 + 2 + 4 + 1 + 32 bytes
    path.write_bytes(header)
    os.truncate(path, 256 << 20)

    before = _rchar()
    with pytest.raises(CorruptCacheError):
        read_cache("p", "2024-01-15", str(cache), signing_key="k")
    read = _rchar() - before
    assert read < 32 << 20, (
        f"a signed read of a 256 MiB sparse file that is garbage after its 49-byte header read "
        f"{read / 2**20:.0f} MiB (and spooled it to disk) before rejecting it: inflate while hashing "
        f"and stop at the first gzip error (the unsigned path does), or cap the size of a signed file"
    )


# --- 4. InMemoryCache: copy isolation holes and lost data ----------------------------------------------


def test_memory_cache_index_name_is_shared_with_the_caller() -> None:
    """README promises copy isolation; `_copy_pandas` returns a pd.Index itself as "immutable", but
    an Index's name (and names) can be set in place, so a put value's later rename shows in the cache."""
    idx = pd.Index([1, 2, 3], name="day")
    InMemoryCache.put(idx, "idx")
    idx.name = "changed by the caller after put"
    got = InMemoryCache.get("idx")
    assert got.name == "day", (
        f"InMemoryCache.get returned an Index named {got.name!r}: the caller renamed its own Index after "
        f"put and the cached one changed too; copy an Index shallowly (idx.copy() / idx.view()) instead"
    )


def test_memory_cache_object_extension_array_cells_are_shared() -> None:
    """pd.array of object cells (a NumpyExtensionArray) goes through ExtensionArray.copy(), which copies
    the pointers only: a list cell mutated by the caller after put changes the cached value."""
    arr = pd.array([[1], [2]], dtype=object)
    InMemoryCache.put(arr, "arr")
    arr[0].append(99)
    got = InMemoryCache.get("arr")
    assert list(got[0]) == [1], (
        f"cached object array cell is {got[0]!r} after the caller mutated its own list: an object-dtype "
        f"ExtensionArray needs its cells copied like an object ndarray's (copy_value on each cell)"
    )


def test_memory_cache_object_index_cells_are_shared() -> None:
    """An object Index holding lists (pandas allows it) is returned as is: its cells are shared."""
    idx = pd.Index([[1], [2]], dtype=object)
    InMemoryCache.put(idx, "objidx")
    idx[0].append(9)
    got = InMemoryCache.get("objidx")
    assert list(got[0]) == [1], f"cached Index cell is {got[0]!r} after the caller mutated its own list"


def test_memory_cache_series_with_mutable_cells_loses_attrs_and_flags() -> None:
    """A Series whose object cells are copied is rebuilt with pd.Series(...): its attrs and flags are
    dropped (a plain Series keeps them), so get() returns different data than was put."""
    s = pd.Series([[1], [2]], name="n").set_flags(allows_duplicate_labels=False)
    s.attrs["unit"] = "kg"
    InMemoryCache.put(s, "s")
    got = InMemoryCache.get("s")
    assert (got.attrs, got.flags.allows_duplicate_labels) == ({"unit": "kg"}, False), (
        f"Series from the cache has attrs={got.attrs!r}, allows_duplicate_labels="
        f"{got.flags.allows_duplicate_labels}: build the copy from out (e.g. out.copy(deep=False) then "
        f"assign the copied cells, or __finalize__(value))"
    )
    np.testing.assert_equal(list(got), [[1], [2]])


# --- 5. dates: two-digit years take their century from the clock ----------------------------------


def _parsed_in(year: int, text: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """to_date(text) in a process whose dateutil default parser was built in `year` (dateutil builds
    it at import, from time.localtime())."""
    from dateutil.parser import _parser

    with freeze_time(f"{year}-06-01 12:00:00"):
        fresh = _parser.parser()
    monkeypatch.setattr(_parser, "DEFAULTPARSER", fresh)
    try:
        return to_date(text)
    except ValueError as e:
        return e


@pytest.mark.parametrize("text", ["15 Jan 60", "01/15/60", "15.01.60"])
def test_two_digit_year_does_not_take_its_century_from_the_clock(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A date that does not name a day is a ValueError that names the value; no part of it is ever
    filled in from today. dateutil fills a two-digit year's century from the current year (a 100-year
    window around it), so the same string names 1960 in a process started in 2010 and 2060 in 2024:
    save_cache writes, and load_cache later misses, a file 100 years away."""
    old, new = _parsed_in(2010, text, monkeypatch), _parsed_in(2024, text, monkeypatch)
    if isinstance(old, ValueError) and isinstance(new, ValueError):
        assert text in str(new), f"the error for {text!r} does not name it: {new}"
        return
    assert old == new, (
        f"to_date({text!r}) is {old} when the process started in 2010 and {new} in 2024: the century "
        f"comes from the clock; refuse two-digit years with a ValueError naming the value"
    )


def test_six_digit_string_is_not_silently_read_as_day_month_year() -> None:
    """'240115' (a common YYMMDD stamp for 2024-01-15) is read by dateutil as 24 Jan 2015, with the
    century from the clock: a silent wrong day rather than a ValueError naming the value."""
    try:
        got = to_date("240115")
    except ValueError as e:
        assert "240115" in str(e), f"the error does not name the value: {e}"
        return
    assert got == pd.Timestamp("2024-01-15").date(), (
        f"to_date('240115') gave {got}: a 6-digit string is ambiguous (YYMMDD, DDMMYY) and its century "
        f"comes from the clock; refuse it with a ValueError naming the value"
    )


# --- 6. signed mode: a prefix that passes validation fails with a bare UnicodeEncodeError ------------


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


# --- 7. secrets: a webhook URL's query token in an exception message -----------------------------------


def test_webhook_url_token_is_not_shown_when_the_scheme_is_wrong() -> None:
    """The webhook alerter treats the URL's query values as secrets (its repr shows `?***`), but a URL
    refused for its scheme (a typo such as 'htps://') is echoed whole in the ValueError, token included.
    README: secrets never appear in any exception message."""
    token = "S3CRET-T0KEN-value"
    with pytest.raises(ValueError) as info:
        WebhookAlerter(f"htps://hooks.example.com/services/x?token={token}")
    assert token not in str(info.value), (
        f"the ValueError shows the webhook token: {info.value}; hide the query (and password) "
        f"as __repr__ does"
    )
