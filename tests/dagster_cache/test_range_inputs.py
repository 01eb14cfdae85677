"""Range inputs ({partition key: value}) read concurrently from URL directories: the same values,
order, missing-day rules, alerts, log lines and errors as one after another; at most
`max_concurrent_loads` reads in flight; local directories read one after another.

A URL store that is slow on purpose (an fsspec memory file system whose reads sleep and count
themselves) shows the bound without mocking any of our code; moto on 127.0.0.1 behind a counting
latency proxy shows it on S3."""

import datetime as dt
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pytest
from fsspec import register_implementation
from fsspec.implementations.memory import MemoryFileSystem

from cache_utils import CacheNotFoundError, CorruptCacheError, read_cache, save_cache
from dagster_cache import DatedCacheIOManager, OpsGenieResource
from dagster_cache.dates import partition_file
from tests.support.opsgenie_fake import TEST_API_KEY, FakeOpsGenie
from tests.support.s3_server import MotoS3, latency_proxy

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)
FIRST = dt.date(2024, 1, 1)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(30)]
KEYS = [d.isoformat() for d in DAYS]


class SlowMemoryFileSystem(MemoryFileSystem):
    """memory:// with its own store, whose reads take `delay` seconds (longer for paths in
    `slower`) and record how many run at once and on which threads."""

    protocol = "slowmem"
    store: ClassVar[dict[str, Any]] = {}
    pseudo_dirs: ClassVar[list[str]] = [""]
    delay = 0.05
    slower: ClassVar[dict[str, float]] = {}
    lock = threading.Lock()
    active = 0
    peak = 0
    reads = 0
    threads: ClassVar[set[str]] = set()

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        return super()._strip_protocol(str(path).removeprefix("slowmem://"))

    @classmethod
    def reset(cls) -> None:
        cls.store.clear()
        cls.pseudo_dirs[:] = [""]
        cls.slower.clear()
        cls.active = cls.peak = cls.reads = 0
        cls.threads.clear()

    def cat_file(self, path: str, start: Any = None, end: Any = None, **kwargs: Any) -> bytes:
        cls = type(self)
        with cls.lock:
            cls.active += 1
            cls.reads += 1
            cls.peak = max(cls.peak, cls.active)
            cls.threads.add(threading.current_thread().name)
        try:
            time.sleep(next((s for part, s in cls.slower.items() if part in path), cls.delay))
            return super().cat_file(path, start, end, **kwargs)
        finally:
            with cls.lock:
                cls.active -= 1


register_implementation("slowmem", SlowMemoryFileSystem, clobber=True)


@pytest.fixture
def slow() -> Iterator[str]:
    """An empty directory on the slow store."""
    SlowMemoryFileSystem.reset()
    yield f"slowmem://caches-{uuid.uuid4().hex[:8]}"
    SlowMemoryFileSystem.reset()


def range_ctx(first: str, last: str, **metadata: Any) -> dg.InputContext:
    return dg.build_input_context(asset_key="s", asset_partitions_def=DAILY, definition_metadata=metadata,
                                  asset_partition_key_range=dg.PartitionKeyRange(first, last))


def save_days(directory: str, days: list[dt.date], opts: dict[str, Any] | None = None) -> None:
    for i, day in enumerate(days):
        save_cache({"day": day.isoformat(), "i": i, "rows": list(range(i))}, "s", day, directory,
                   storage_options=opts)


def corrupt(directory: str, day: str) -> None:
    """Overwrite a day's file on the slow store with bytes that are no cache file."""
    SlowMemoryFileSystem.store["/" + directory.removeprefix("slowmem://") + f"/s_{day}.pkl.gz"].write(b"junk")


def load(directory: str, first: str = KEYS[0], last: str = KEYS[-1], opts: dict[str, Any] | None = None,
         metadata: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    io = DatedCacheIOManager(directory=directory, storage_options=opts or {}, **kw)
    return io.load_input(range_ctx(first, last, **(metadata or {})))


def expected() -> dict[str, Any]:
    return {d.isoformat(): {"day": d.isoformat(), "i": i, "rows": list(range(i))} for i, d in enumerate(DAYS)}


def worker_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("dagster_cache-load")]


# --- the field ------------------------------------------------------------------------------


def test_max_concurrent_loads_defaults_to_8() -> None:
    assert DatedCacheIOManager().max_concurrent_loads == 8
    assert DatedCacheIOManager(max_concurrent_loads=1).max_concurrent_loads == 1


@pytest.mark.parametrize("bad", [0, -1, "8", True, 8.0, None])
def test_bad_max_concurrent_loads_is_refused_naming_the_value(bad: Any) -> None:
    with pytest.raises((TypeError, ValueError),
                       match=rf"max_concurrent_loads[\s\S]*input_value={re.escape(repr(bad))}"):
        DatedCacheIOManager(max_concurrent_loads=bad)


def test_bad_max_concurrent_loads_in_run_config_is_refused() -> None:
    @dg.asset(io_manager_key="io")
    def a() -> int:
        return 1

    for bad in ("8", True):
        with pytest.raises(dg.DagsterInvalidConfigError, match=rf"max_concurrent_loads.*{bad}"):
            dg.materialize([a], resources={"io": DatedCacheIOManager.configure_at_launch()},
                           run_config={"resources": {"io": {"config": {"max_concurrent_loads": bad}}}})


# --- values and order -------------------------------------------------------------------------


class Probe:
    """A value that notes which thread unpickles it."""

    seen: ClassVar[list[str]] = []

    def __init__(self, day: str, payload: bytes) -> None:
        self.day, self.payload = day, payload

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        Probe.seen.append(threading.current_thread().name)


def test_small_local_files_are_read_on_the_calling_thread_in_key_order(tmp_path: Path) -> None:
    save_days(str(tmp_path), DAYS)
    got = load(str(tmp_path), max_concurrent_loads=8)
    assert got == expected()
    assert list(got) == KEYS
    assert got == load(str(tmp_path), max_concurrent_loads=1)
    for day in DAYS:
        save_cache(Probe(day.isoformat(), b""), "s", day, str(tmp_path))
    Probe.seen.clear()
    assert [p.day for p in load(str(tmp_path)).values()] == KEYS
    assert set(Probe.seen) == {threading.current_thread().name}


def test_big_local_files_are_read_on_the_calling_thread_too(tmp_path: Path) -> None:
    for day in DAYS[:4]:  # incompressible, 2 MiB files: the serializer inflates them on its own threads
        save_cache(Probe(day.isoformat(), os.urandom(2 << 20)), "s", day, str(tmp_path))
    Probe.seen.clear()
    got = load(str(tmp_path), KEYS[0], KEYS[3], max_concurrent_loads=4)
    assert [p.day for p in got.values()] == list(got) == KEYS[:4]
    assert set(Probe.seen) == {threading.current_thread().name}


@pytest.mark.parametrize("limit", [2, 8, 30])
def test_url_range_is_concurrent_bounded_and_identical_to_sequential(slow: str, limit: int) -> None:
    save_days(slow, DAYS)
    SlowMemoryFileSystem.reads = 0
    got = load(slow, max_concurrent_loads=limit)
    assert got == expected()
    assert list(got) == KEYS
    assert SlowMemoryFileSystem.reads == 30
    assert 1 < SlowMemoryFileSystem.peak <= limit  # never more than the bound in flight
    assert threading.current_thread().name not in SlowMemoryFileSystem.threads
    assert worker_threads() == []  # the pool is gone when the load returns

    SlowMemoryFileSystem.peak = 0
    SlowMemoryFileSystem.threads.clear()
    assert load(slow, max_concurrent_loads=1) == got
    assert SlowMemoryFileSystem.peak == 1
    assert SlowMemoryFileSystem.threads == {threading.current_thread().name}


def test_later_days_finishing_first_change_nothing(slow: str) -> None:
    save_days(slow, DAYS)
    SlowMemoryFileSystem.slower.update({"s_20240101": 0.4, "s_20240102": 0.3})  # the first days last
    got = load(slow, max_concurrent_loads=4)
    assert list(got) == KEYS and got == expected()


def test_a_one_day_range_and_a_bound_above_the_range(slow: str) -> None:
    save_days(slow, DAYS[:2])
    assert load(slow, KEYS[0], KEYS[1], max_concurrent_loads=64) == {k: v for k, v in expected().items()
                                                                     if k in KEYS[:2]}
    assert SlowMemoryFileSystem.peak <= 2


# --- missing days, fill, alerts (the assertions of test_io_manager.py's range tests) ---


def test_range_with_a_missing_day_is_an_error_never_another_days_data(slow: str) -> None:
    save_cache(1, "s", "2024-01-01", slow)
    save_cache(3, "s", "2024-01-03", slow)
    with pytest.raises(CacheNotFoundError, match=r"1 of 3 partitions of s .*: 2024-01-02;.*allow_missing"):
        load(slow, "2024-01-01", "2024-01-03")
    skipped = load(slow, "2024-01-01", "2024-01-03", metadata={"allow_missing_partitions": True})
    assert skipped == {"2024-01-01": 1, "2024-01-03": 3}


def test_range_fill_from_earlier_files_is_opt_in_per_manager_and_per_input(slow: str) -> None:
    save_cache(1, "s", "2024-01-01", slow)
    save_cache(3, "s", "2024-01-03", slow)
    filled = {"2024-01-01": 1, "2024-01-02": 1, "2024-01-03": 3}
    assert load(slow, "2024-01-01", "2024-01-03", fill_missing_partitions=True) == filled
    assert load(slow, "2024-01-01", "2024-01-03", metadata={"fill_missing_partitions": True}) == filled
    with pytest.raises(CacheNotFoundError, match="2024-01-02"):
        load(slow, "2024-01-01", "2024-01-03", metadata={"fill_missing_partitions": False},
             fill_missing_partitions=True)
    SlowMemoryFileSystem.store.pop("/" + slow.removeprefix("slowmem://") + "/s_20240101.pkl.gz")
    with pytest.raises(CacheNotFoundError, match=r"2 of 3 partitions of s .*: 2024-01-01, 2024-01-02;"):
        load(slow, "2024-01-01", "2024-01-03", fill_missing_partitions=True)


def test_many_missing_days_message_is_unchanged(slow: str) -> None:
    save_days(slow, DAYS[::4])  # 8 of 30 present
    message = (f"22 of 30 partitions of s have no cache file in {slow!r}: 2024-01-02, 2024-01-03, "
               "2024-01-04, 2024-01-06, 2024-01-07 and 17 more; set input metadata "
               "{'allow_missing_partitions': True} to skip missing days, or "
               "{'fill_missing_partitions': True} to fill each from the newest earlier file")
    with pytest.raises(CacheNotFoundError) as concurrent:
        load(slow)
    with pytest.raises(CacheNotFoundError) as sequential:
        load(slow, max_concurrent_loads=1)
    assert str(concurrent.value) == str(sequential.value) == message
    assert list(load(slow, metadata={"allow_missing_partitions": True})) == [d.isoformat() for d in DAYS[::4]]


def test_range_fallback_sends_one_alert_for_the_range(slow: str) -> None:
    with FakeOpsGenie() as og:
        save_cache(1, "s", "2024-01-01", slow)
        got = load(slow, "2024-01-01", "2024-01-05", metadata={"fill_missing_partitions": True},
                   opsgenie=OpsGenieResource(api_key=TEST_API_KEY, api_url=og.url, timeout=3))
        assert got == {f"2024-01-0{d}": 1 for d in range(1, 6)}
        assert len(og.creates()) == 1
        assert og.creates()[0].body["details"]["stale_partitions"] == "4"


def test_missing_days_send_one_alert_before_raising(slow: str) -> None:
    with FakeOpsGenie() as og:
        save_cache(1, "s", "2024-01-01", slow)
        with pytest.raises(CacheNotFoundError):
            load(slow, "2024-01-01", "2024-01-05",
                 opsgenie=OpsGenieResource(api_key=TEST_API_KEY, api_url=og.url, timeout=3))
        assert len(og.creates()) == 1
        assert og.creates()[0].body["details"]["missing"] == "2024-01-02, 2024-01-03, 2024-01-04, 2024-01-05"


def test_warnings_are_logged_from_the_calling_thread_in_key_order(
    slow: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    save_days(slow, DAYS[:6])
    for day in ("20240103", "20240105"):  # corrupt: skipped, each filled from the day before
        corrupt(slow, day)
    SlowMemoryFileSystem.slower["s_20240103"] = 0.3  # the 3rd day's read finishes last
    ctx = range_ctx(KEYS[0], KEYS[5])
    seen: list[tuple[str, str]] = []
    warning = ctx.log.warning

    def recording(msg: str, *args: Any, **kwargs: Any) -> None:
        seen.append((threading.current_thread().name, msg))
        warning(msg, *args, **kwargs)

    monkeypatch.setattr(ctx.log, "warning", recording)  # Dagster's log manager, instrumented
    got = DatedCacheIOManager(directory=slow, fill_missing_partitions=True).load_input(ctx)
    assert got["2024-01-03"] == got["2024-01-02"] and got["2024-01-05"] == got["2024-01-04"]
    assert {thread for thread, _ in seen} == {threading.current_thread().name}
    messages = [m for _, m in seen]
    assert len(messages) == 3
    assert messages[0].startswith(f"skipped corrupt cache file {slow}/s_20240103.pkl.gz: ")
    assert messages[1].startswith(f"skipped corrupt cache file {slow}/s_20240105.pkl.gz: ")
    assert messages[2].startswith("2 of 6 partitions of s filled from earlier files")


# --- errors -----------------------------------------------------------------------------------


def test_a_corrupt_day_raises_what_the_sequential_loop_raised(slow: str) -> None:
    save_days(slow, DAYS)
    corrupt(slow, "20240110")
    with pytest.raises(CorruptCacheError) as sequential:
        load(slow, max_concurrent_loads=1)
    SlowMemoryFileSystem.peak = 0
    with pytest.raises(CorruptCacheError) as concurrent:
        load(slow, max_concurrent_loads=8)
    assert type(concurrent.value) is type(sequential.value)
    assert str(concurrent.value) == str(sequential.value)
    assert "s_20240110.pkl.gz" in str(concurrent.value)
    assert worker_threads() == []  # reads in flight finished, queued ones dropped


def test_the_first_failing_day_in_key_order_wins(slow: str) -> None:
    save_days(slow, DAYS)
    corrupt(slow, "20240105")
    corrupt(slow, "20240120")
    SlowMemoryFileSystem.slower["s_20240105"] = 0.3  # the 20th fails first in time
    with pytest.raises(CorruptCacheError, match="s_20240105"):
        load(slow, max_concurrent_loads=8)
    assert worker_threads() == []


def test_a_bad_partition_key_is_the_same_error(slow: str) -> None:
    save_days(slow, DAYS)
    keys = ["2024-01-01", "2024-01-02", "not-a-day"]
    ctx = dg.build_input_context(asset_key="s", asset_partitions_def=DAILY,
                                 asset_partition_key_range=dg.PartitionKeyRange("2024-01-01", "2024-01-02"))
    errors = []
    for workers in (1, 8):
        manager = DatedCacheIOManager(directory=slow, max_concurrent_loads=workers)
        with pytest.raises(Exception) as raised:  # noqa: PT011 - compared below
            manager._load_range(ctx, "s", lambda k: partition_file(DAILY, k, "s"), keys, False, False)
        errors.append(raised.value)
    assert type(errors[0]) is type(errors[1]) and str(errors[0]) == str(errors[1])
    assert "not-a-day" in str(errors[1])


# --- through Dagster --------------------------------------------------------------------------


@dg.asset(partitions_def=DAILY)
def s(context: dg.AssetExecutionContext) -> dict[str, Any]:
    return {"day": context.partition_key}


@dg.asset(partitions_def=DAILY, ins={"s": dg.AssetIn(partition_mapping=dg.TimeWindowPartitionMapping(
    start_offset=-29))})
def month(s: dict[str, Any]) -> list[str]:
    return list(s)


JANUARY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-31")  # 30 days


@dg.asset(name="s", partitions_def=JANUARY)
def january_s() -> None: ...


@dg.asset(ins={"s": dg.AssetIn()})  # unpartitioned: every partition of s, as a dict
def everything(s: dict[str, Any]) -> list[str]:
    return list(s)


def test_a_30_day_window_and_an_unpartitioned_consumer_get_every_day_in_order(slow: str) -> None:
    save_days(slow, DAYS)
    io = DatedCacheIOManager(directory=slow)
    assert dg.materialize([s.to_source_asset(), month], partition_key=KEYS[-1],
                          resources={"io_manager": io}).success
    assert read_cache("month", DAYS[-1], slow) == KEYS
    assert 1 < SlowMemoryFileSystem.peak <= 8
    SlowMemoryFileSystem.peak = 0
    with dg.instance_for_test() as instance:
        result = dg.materialize([january_s.to_source_asset(), everything], instance=instance,
                                resources={"io_manager": DatedCacheIOManager(directory=slow,
                                                                            max_concurrent_loads=3)})
        assert result.success
        assert result.output_for_node("everything") == KEYS
    assert 1 < SlowMemoryFileSystem.peak <= 3


def test_a_filled_window_is_recorded_stale_on_the_consumer(slow: str) -> None:
    save_days(slow, DAYS[:-2])  # the last two days are missing
    io = DatedCacheIOManager(directory=slow, fill_missing_partitions=True)
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([s.to_source_asset(), month], partition_key=KEYS[-1],
                            resources={"io_manager": io}, instance=instance)
    [mat] = result.asset_materializations_for_node("month")
    stale = mat.metadata["dagster_cache/stale_inputs"].value
    assert list(stale) == [f"s[{KEYS[-2]}]", f"s[{KEYS[-1]}]"]
    assert stale[f"s[{KEYS[-1]}]"]["date_used"] == KEYS[-3]
    logs = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any("2 of 30 partitions of s filled from earlier files" in m for m in logs)


# --- S3 (moto on 127.0.0.1) -------------------------------------------------------------------


@pytest.mark.integration
def test_s3_range_is_identical_to_sequential_and_bounded(s3: MotoS3, bucket: str) -> None:
    url = f"s3://{bucket}/caches"
    save_days(url, DAYS, s3.options())
    with latency_proxy(s3.endpoint, latency=0.03) as (proxy, stats):
        opts = {"endpoint_url": proxy}
        sequential = load(url, opts=opts, max_concurrent_loads=1)
        assert stats.max_in_flight == 1
        stats.reset()
        got = load(url, opts=opts, max_concurrent_loads=4)
        assert 1 < stats.max_in_flight <= 4
        assert stats.requests >= 30
    assert got == sequential == expected()
    assert list(got) == KEYS


@pytest.mark.integration
def test_s3_missing_days_fill_and_errors_as_before(s3: MotoS3, bucket: str) -> None:
    url = f"s3://{bucket}/caches"
    opts = s3.options()
    save_cache(1, "s", "2024-01-01", url, storage_options=opts)
    save_cache(3, "s", "2024-01-03", url, storage_options=opts)
    with pytest.raises(CacheNotFoundError, match=r"1 of 3 partitions of s .*: 2024-01-02;.*allow_missing"):
        load(url, "2024-01-01", "2024-01-03", opts=opts)
    assert load(url, "2024-01-01", "2024-01-03", opts=opts, metadata={"allow_missing_partitions": True}) \
        == {"2024-01-01": 1, "2024-01-03": 3}
    assert load(url, "2024-01-01", "2024-01-03", opts=opts, fill_missing_partitions=True) \
        == {"2024-01-01": 1, "2024-01-02": 1, "2024-01-03": 3}
    s3.client.put_object(Bucket=bucket, Key="caches/s_20240102.pkl.gz", Body=b"junk")
    errors = []
    for workers in (1, 8):
        with pytest.raises(CorruptCacheError) as raised:
            load(url, "2024-01-01", "2024-01-03", opts=opts, max_concurrent_loads=workers)
        errors.append(raised.value)
    assert str(errors[0]) == str(errors[1]) and "s_20240102.pkl.gz" in str(errors[1])
