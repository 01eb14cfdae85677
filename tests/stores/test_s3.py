"""Caches on S3 through fsspec/s3fs, against a real S3 API server (moto on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cache_utils import (
    get_latest_cache_filename,
    list_caches,
    load_cache,
    load_latest_cache,
    prune,
    read_cache,
    save_cache,
)
from cache_utils.stores import FsspecStore, get_store
from cache_utils.stores.fsspec import DEFAULT_S3_CONFIG, effective_options
from tests.support.alert_backends import RecordingAlerter
from tests.support.loopback import refused_url
from tests.support.s3_server import (
    FAKE_ENV,
    MotoS3,
    silent_endpoint,
    stalling_proxy,
    trickling_endpoint,
)

pytestmark = pytest.mark.integration  # a moto S3 server, stalling and silent endpoints

ROOT = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def count_list_calls(store: FsspecStore) -> Iterator[list[dict[str, Any]]]:
    """Record every ListObjectsV2 the store's S3 client sends: its Prefix and the keys that came back."""
    calls: list[dict[str, Any]] = []
    events = store.fs.s3.meta.events

    def before(params: dict[str, Any], **_: Any) -> None:
        calls.append({"Prefix": params.get("Prefix"), "Delimiter": params.get("Delimiter")})

    def after(parsed: dict[str, Any], **_: Any) -> None:
        calls[-1]["keys"] = [o["Key"] for o in parsed.get("Contents", [])]

    events.register("before-parameter-build.s3.ListObjectsV2", before)
    events.register("after-call.s3.ListObjectsV2", after)
    try:
        yield calls
    finally:  # the client is shared by every store with the same options
        events.unregister("before-parameter-build.s3.ListObjectsV2", before)
        events.unregister("after-call.s3.ListObjectsV2", after)


# ---------------------------------------------------------------- save, list, latest, read


def test_save_writes_one_object_and_reads_back(s3: MotoS3, bucket: str) -> None:
    """The endpoint given inside `client_kwargs`, s3fs' other spelling (the spool and gzip checks
    moved to the store contract's test_save_then_read_round_trips)."""
    url = f"s3://{bucket}/caches"
    opts = {"client_kwargs": {"endpoint_url": s3.endpoint}}  # the other way to give the endpoint
    path = save_cache({"a": [1, 2]}, "sales", dt.date(2024, 1, 15), url, storage_options=opts)
    assert path == f"s3://{bucket}/caches/sales_20240115.pkl.gz"
    assert s3.keys(bucket) == ["caches/sales_20240115.pkl.gz"]
    assert read_cache("sales", "2024-01-15", url, storage_options=opts) == {"a": [1, 2]}


def test_prefix_listing_never_lists_other_prefixes(s3: MotoS3, bucket: str) -> None:
    url = f"s3://{bucket}/caches"
    opts = s3.options()
    for day in ("2024-03-01", "2024-03-02"):
        save_cache(day, "mine", day, url, storage_options=opts)
    for i in range(40):  # other datasets in the same directory and elsewhere in the bucket
        s3.client.put_object(Bucket=bucket, Key=f"caches/other{i}_20240301.pkl.gz", Body=b"")
        s3.client.put_object(Bucket=bucket, Key=f"elsewhere/mine_2024030{i % 9 + 1}.pkl.gz", Body=b"")
    with count_list_calls(get_store(url, opts)) as calls:
        assert get_latest_cache_filename("mine", url, storage_options=opts) == f"{url}/mine_20240302.pkl.gz"
        hit, _ = load_latest_cache("mine", "2024-03-05", url, storage_options=opts)
        assert hit is not None and hit.data == "2024-03-02"
        assert prune("mine", 5, url, storage_options=opts) == []
        assert [c.date.day for c in list_caches(url, "mine", storage_options=opts)] == [1, 2]

    # one prefix listing per call (s3fs also probes "is today's missing name a directory?" with a
    # one-key listing under that name); no listing ever returns another dataset's keys
    listings = [c for c in calls if c["Prefix"] == "caches/mine_"]
    assert len(listings) == 4, calls
    for call in listings:
        assert call["Delimiter"] == "/"
        assert call["keys"] == ["caches/mine_20240301.pkl.gz", "caches/mine_20240302.pkl.gz"]
    assert all(c["Prefix"].startswith("caches/mine_") and len(c["keys"]) <= 2 for c in calls), calls


# ---------------------------------------------------------------- atomicity, memory


def test_multipart_upload_failure_is_aborted_and_invisible(
    s3: MotoS3, bucket: str, spool_dir: Path
) -> None:
    """A large object goes up in parts; if a part fails, nothing appears and the upload is aborted."""
    url = f"s3://{bucket}/c"
    opts = s3.options()
    payload = os.urandom(20 * 2**20)  # incompressible: > 2 parts of 8 MiB
    store = get_store(url, opts)
    parts: list[int] = []

    def fail_second_part(params: dict[str, Any], **_: Any) -> None:
        parts.append(params["PartNumber"])
        if params["PartNumber"] == 2:
            raise ConnectionResetError("network dropped during part 2")

    store.fs.s3.meta.events.register("before-parameter-build.s3.UploadPart", fail_second_part)
    try:
        with pytest.raises(OSError, match="could not save cache"):
            save_cache(payload, "big", "2024-01-01", url, storage_options=opts)
    finally:
        store.fs.s3.meta.events.unregister("before-parameter-build.s3.UploadPart", fail_second_part)
    assert 2 in parts
    assert s3.keys(bucket) == []
    assert s3.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert list(spool_dir.iterdir()) == []
    # and the same payload uploads fine in parts
    save_cache(payload, "big", "2024-01-01", url, storage_options=opts)
    assert read_cache("big", "2024-01-01", url, storage_options=opts) == payload
    assert s3.client.head_object(Bucket=bucket, Key="c/big_20240101.pkl.gz")["ETag"].endswith('-3"')  # parts


def test_streaming_save_memory_is_bounded(s3: MotoS3, bucket: str) -> None:
    """Saving 64 MiB does not hold the pickle or the compressed file in memory (measured in a
    separate process, since moto keeps the object in this one)."""
    script = textwrap.dedent(f"""
        import os, tracemalloc, cache_utils
        data = [os.urandom(2**20) for _ in range(64)]  # 64 MiB, incompressible
        cache_utils.save_cache([b"warm"], "warm", "2024-01-01", "s3://{bucket}/c",
                               storage_options={{"endpoint_url": "{s3.endpoint}"}})
        tracemalloc.start()
        cache_utils.save_cache(data, "big", "2024-01-01", "s3://{bucket}/c",
                               storage_options={{"endpoint_url": "{s3.endpoint}"}})
        print(tracemalloc.get_traced_memory()[1])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=ROOT, env={**os.environ})
    assert out.returncode == 0, out.stderr
    peak = int(out.stdout.split()[-1])
    assert s3.client.head_object(Bucket=bucket, Key="c/big_20240101.pkl.gz")["ContentLength"] > 64 * 2**20
    assert peak < 48 * 2**20, f"peak traced memory {peak / 2**20:.1f} MiB"


# ---------------------------------------------------------------- options and CLI


def test_default_options_and_overrides() -> None:
    opts = effective_options("s3", {"config_kwargs": {"read_timeout": 3}, "endpoint_url": "http://x"})
    assert opts["config_kwargs"]["read_timeout"] == 3
    assert opts["config_kwargs"]["connect_timeout"] == DEFAULT_S3_CONFIG["connect_timeout"]
    assert opts["config_kwargs"]["retries"] == DEFAULT_S3_CONFIG["retries"]
    assert opts["use_listings_cache"] is False and opts["endpoint_url"] == "http://x"
    user = {"use_listings_cache": True, "config_kwargs": {"retries": {"max_attempts": 7}}}
    opts = effective_options("s3", user)
    assert opts["use_listings_cache"] is True and opts["config_kwargs"]["retries"] == {"max_attempts": 7}
    assert user == {"use_listings_cache": True, "config_kwargs": {"retries": {"max_attempts": 7}}}
    assert effective_options("memory", {"a": 1}) == {"a": 1}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cache_utils", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ})


def test_cli_against_s3(s3: MotoS3, bucket: str) -> None:
    url = f"s3://{bucket}/c"
    opts = s3.options()
    for d in (1, 2, 3):
        save_cache({"day": d}, "sales", f"2024-01-0{d}", url, storage_options=opts)
    so = json.dumps(opts)
    out = _cli("ls", url, "--storage-options", so)
    assert out.returncode == 0, out.stderr
    assert "sales" in out.stdout and "2024-01-01" in out.stdout and "2024-01-03" in out.stdout
    out = _cli("show", "sales", "--date", "2024-01-02", "--dir", url, "--storage-options", so)
    assert out.returncode == 0, out.stderr
    assert "'day'" in out.stdout
    out = _cli("prune", "sales", "--keep", "1", "--dir", url, "--dry-run", "--storage-options", so)
    assert out.returncode == 0 and "would delete 2 file(s)" in out.stdout
    assert len(s3.keys(bucket)) == 3
    out = _cli("prune", "sales", "--keep", "1", "--dir", url, "--storage-options", so)
    assert out.returncode == 0 and s3.keys(bucket) == ["c/sales_20240103.pkl.gz"]
    out = _cli("ls", "s3://no-such-bucket-here/c", "--storage-options", so)
    assert out.returncode != 0 and "no-such-bucket-here" in out.stderr


# ---------------------------------------------------------------- errors


def _timed(fn: Any) -> tuple[BaseException, float]:
    start = time.monotonic()
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - the test inspects it
        return e, time.monotonic() - start
    raise AssertionError("no error raised")


def test_unreachable_endpoint_raises_quickly(bucket: str) -> None:
    url = f"s3://{bucket}/c"
    opts = {"endpoint_url": refused_url(), "config_kwargs": {"retries": {"max_attempts": 2}}}
    for fn in (
        lambda: get_latest_cache_filename("p", url, storage_options=opts),
        lambda: save_cache(1, "p", "2024-01-01", url, storage_options=opts),
        # "unreachable" is not "no data": load_cache raises even with allow_no_data
        lambda: load_cache("p", "08:00", url, allow_no_data=True, tz="UTC", storage_options=opts,
                           alerter=RecordingAlerter()),
    ):
        error, took = _timed(fn)
        assert isinstance(error, ConnectionError), repr(error)
        assert url in str(error) and "cannot reach" in str(error)
        assert took < 20


def test_hung_endpoint_times_out_within_configured_bound(bucket: str) -> None:
    url = f"s3://{bucket}/c"
    with silent_endpoint() as endpoint:
        opts = {"endpoint_url": endpoint,
                "config_kwargs": {"read_timeout": 1, "retries": {"max_attempts": 1}}}
        error, took = _timed(lambda: get_latest_cache_filename("p", url, storage_options=opts))
        assert isinstance(error, TimeoutError), repr(error)
        assert url in str(error) and "did not answer in time" in str(error)
        assert 0.9 <= took < 10
        error, took = _timed(lambda: load_cache("p", "08:00", url, allow_no_data=True, tz="UTC",
                                                storage_options=opts, alerter=RecordingAlerter()))
        assert isinstance(error, TimeoutError), repr(error)
        assert took < 10


def test_wrong_credentials_are_access_denied(s3: MotoS3, bucket: str) -> None:
    """Moto checks IAM credentials once its documented /moto-api/reset-auth switch is set."""
    import boto3

    url = f"s3://{bucket}/c"
    save_cache(1, "p", "2024-01-01", url, storage_options=s3.options())
    iam = boto3.client("iam", endpoint_url=s3.endpoint, region_name="us-east-1")
    iam.create_user(UserName=f"u-{bucket}")
    real = iam.create_access_key(UserName=f"u-{bucket}")["AccessKey"]
    cases = {
        "unknown key": {"key": "AKIAUNKNOWN000000000", "secret": "nope"},
        "wrong secret": {"key": real["AccessKeyId"], "secret": "wrong-secret"},
        "no permission": {"key": real["AccessKeyId"], "secret": real["SecretAccessKey"]},
    }
    with s3.auth_enforced():
        for what, creds in cases.items():
            opts = s3.options(**creds)
            for fn in (
                lambda opts=opts: get_latest_cache_filename("p", url, storage_options=opts),
                lambda opts=opts: save_cache(2, "p", "2024-01-02", url, storage_options=opts),
                lambda opts=opts: read_cache("p", "2024-01-01", url, storage_options=opts),
                lambda opts=opts: load_cache("p", "08:00", url, allow_no_data=True, tz="UTC",
                                             storage_options=opts, alerter=RecordingAlerter()),
            ):
                error, took = _timed(fn)
                assert isinstance(error, PermissionError), (what, repr(error))
                assert "access denied" in str(error) and url in str(error), (what, str(error))
                assert took < 20
    assert s3.keys(bucket) == ["c/p_20240101.pkl.gz"]


@pytest.mark.parametrize("signing_key", [None, "k1"])
def test_store_hanging_mid_read_is_an_error_not_corruption(
    s3: MotoS3, bucket: str, signing_key: str | None
) -> None:
    """The object's HEAD succeeds, then its GET never answers: a TimeoutError naming the file, not a
    'corrupt file' skipped in favour of older data."""
    url = f"s3://{bucket}/c"
    save_cache("older", "p", "2024-01-01", url, signing_key=signing_key, storage_options=s3.options())
    save_cache("newer", "p", "2024-01-02", url, signing_key=signing_key, storage_options=s3.options())
    with stalling_proxy(s3.endpoint, f"GET /{bucket}/c/p_20240102".encode()) as endpoint:
        opts = {"endpoint_url": endpoint,
                "config_kwargs": {"read_timeout": 1, "retries": {"max_attempts": 1}}}
        assert get_latest_cache_filename("p", url, storage_options=opts) == f"{url}/p_20240102.pkl.gz"
        error, took = _timed(lambda: load_latest_cache("p", "2024-01-02", url, signing_key=signing_key,
                                                       storage_options=opts))
        assert isinstance(error, TimeoutError), repr(error)
        assert "p_20240102.pkl.gz" in str(error)
        assert took < 20
        error, _ = _timed(lambda: read_cache("p", "2024-01-02", url, signing_key=signing_key,
                                             storage_options=opts))
        assert isinstance(error, TimeoutError), repr(error)


# --- uploads are bounded too: a stalled upload ends within the configured timeouts ------------------


@pytest.mark.parametrize("size", [100, 20 * 2**20], ids=["single-put", "multipart"])
@pytest.mark.parametrize("attempts", [1, 2])
def test_upload_to_a_silent_endpoint_times_out_within_the_configured_bound(size: int, attempts: int) -> None:
    """botocore sends `Expect: 100-continue` on every PUT and aiohttp waited for the `100 Continue`
    without any timeout: an upload to an endpoint that accepts and never answers hung forever."""
    url = "s3://bucket/c"
    with silent_endpoint() as endpoint:
        opts = {"endpoint_url": endpoint, "key": "k", "secret": "s",
                "config_kwargs": {"read_timeout": 1, "connect_timeout": 1,
                                  "retries": {"max_attempts": attempts, "mode": "standard"}}}
        error, took = _timed(lambda: save_cache(b"x" * size, "p", "2024-01-01", url, storage_options=opts))
    assert isinstance(error, TimeoutError), repr(error)
    assert "could not save cache" in str(error) and f"{url}/p_20240101.pkl.gz" in str(error)
    assert took < 4 * attempts + 4, took


# Sizes above what the loopback socket buffers hold (a 4 MiB send buffer at most): the client's write
# blocks mid-body, where no botocore timeout is armed, so only the upload's deadline can end it.
STALLS = {"single-put": (8 * 2**20, "PUT /{bucket}/c/p_20240102.pkl.gz HTTP"),
          "second-part": (17 * 2**20, "partNumber=2")}  # three parts of UPLOAD_CHUNKSIZE at most


@pytest.mark.timeout(90)  # were the deadline not applied, the upload would hang: fail, not wait 300 s
@pytest.mark.parametrize("rate", [
    pytest.param(None, id="size-per-second"),
    pytest.param(2**20, id="default-1MiB-per-second", marks=pytest.mark.slow),  # the real bound: 12 s, 21 s
])
@pytest.mark.parametrize("stall", STALLS)
def test_a_proxy_that_stops_forwarding_mid_upload_is_a_timeout_and_keeps_the_old_file(
    s3: MotoS3, bucket: str, stall: str, rate: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The upload's deadline is the request bound plus its size at `FsspecStore.min_bytes_per_second`.
    The fast variant sets that rate to the upload's size per second (the size's share: 1 s), so it
    proves the deadline without waiting out 1 MiB/s; the slow one keeps the default rate."""
    size, stall_on = STALLS[stall]
    url = f"s3://{bucket}/c"
    save_cache("older", "p", "2024-01-01", url, storage_options=s3.options())
    data = os.urandom(size)  # incompressible: the upload is as large as the data (a few bytes more)
    per_second = rate or size
    assert FsspecStore.min_bytes_per_second == 2**20  # the default the slow variant keeps
    monkeypatch.setattr(FsspecStore, "min_bytes_per_second", per_second)
    with stalling_proxy(s3.endpoint, stall_on.format(bucket=bucket).encode()) as endpoint:
        opts = {"endpoint_url": endpoint,
                "config_kwargs": {"read_timeout": 2, "connect_timeout": 2, "retries": {"max_attempts": 1}}}
        error, took = _timed(lambda: save_cache(data, "p", "2024-01-02", url, storage_options=opts))
    assert isinstance(error, TimeoutError), repr(error)
    # The bound: the request bound (1 attempt x (2 s + 2 s)) plus the size at the rate set, and the
    # error says so (only the upload's deadline raises "did not finish within").
    deadline = 4 + size / per_second
    assert f"the upload did not finish within {deadline:.0f} s" in str(error), str(error)
    assert took < deadline + 10, took
    # Whole or nothing: no new object, the older one intact, no multipart upload left open.
    assert s3.keys(bucket) == ["c/p_20240101.pkl.gz"]
    assert read_cache("p", "2024-01-01", url, storage_options=s3.options()) == "older"
    assert s3.client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


# --- an S3 endpoint that trickles its answer is bounded too (red-team round on the reliability fixes)


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
