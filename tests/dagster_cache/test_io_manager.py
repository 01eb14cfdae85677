"""DatedCacheIOManager: file names, dates, fallback, ranges, backfills, metadata and alerts."""

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import dagster as dg
import pandas as pd
import pytest
from freezegun import freeze_time

import cache_utils
from cache_utils import CacheNotFoundError, load_cache, read_cache, save_cache
from dagster_cache import DatedCacheIOManager, OpsGenieResource
from dagster_cache.dates import SCHEDULED_EXECUTION_TIME_TAG
from tests.support.opsgenie_fake import TEST_API_KEY, FakeOpsGenie

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)


def manager(tmp_path: Path, **kw: Any) -> DatedCacheIOManager:
    return DatedCacheIOManager(directory=str(tmp_path), **kw)


def files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))


def frame(n: int = 3) -> pd.DataFrame:
    return pd.DataFrame({"a": range(n), "b": [f"x{i}" for i in range(n)]})


# --- unit tests with build_output_context / build_input_context ----------------------------------


def test_output_partition_writes_prefix_from_asset_key_and_metadata(tmp_path: Path) -> None:
    io = manager(tmp_path)
    ctx = dg.build_output_context(asset_key=["market", "prices"], partition_key="2024-01-15",
                                  asset_partitions_def=DAILY)
    io.handle_output(ctx, frame())
    assert files(tmp_path) == ["market__prices_20240115.pkl.gz"]
    meta = ctx.get_logged_metadata()
    assert meta["path"].path == str(tmp_path / "market__prices_20240115.pkl.gz")
    assert meta["dagster_cache/date"].text == "2024-01-15"
    size = (tmp_path / "market__prices_20240115.pkl.gz").stat().st_size
    assert meta["dagster_cache/size_bytes"].value == size
    assert meta["dagster/row_count"].value == 3
    assert [c.name for c in meta["dagster/column_schema"].schema.columns] == ["a", "b"]
    assert "x2" in meta["preview"].md_str
    # The same file plain cache_utils reads outside Dagster.
    pd.testing.assert_frame_equal(read_cache("market__prices", "2024-01-15", str(tmp_path)), frame())

    ctx2 = dg.build_output_context(asset_key="prices", partition_key="2024-01-16", asset_partitions_def=DAILY,
                                   definition_metadata={"cache_prefix": "px"})
    io.handle_output(ctx2, {"k": 1})
    assert "px_20240116.pkl.gz" in files(tmp_path)
    assert "dagster/row_count" not in ctx2.get_logged_metadata()


def test_bad_cache_prefix_metadata_is_a_clear_error(tmp_path: Path) -> None:
    ctx = dg.build_output_context(asset_key="prices", definition_metadata={"cache_prefix": "../x"})
    with pytest.raises(ValueError, match=r"\.\./x"):
        manager(tmp_path).handle_output(ctx, 1)
    assert files(tmp_path) == []


def test_both_partition_key_formats_map_to_one_file(tmp_path: Path) -> None:
    io = manager(tmp_path)
    compact = dg.DailyPartitionsDefinition(start_date="20240101", fmt="%Y%m%d", end_offset=1)
    io.handle_output(dg.build_output_context(asset_key="s", partition_key="20240115",
                                             asset_partitions_def=compact), "compact")
    assert files(tmp_path) == ["s_20240115.pkl.gz"]
    loaded = io.load_input(dg.build_input_context(asset_key="s", partition_key="2024-01-15",
                                                  asset_partitions_def=DAILY))
    assert loaded == "compact"


@freeze_time("2024-03-10 03:30:00", tz_offset=0)
def test_unpartitioned_output_uses_today_in_the_configured_zone(tmp_path: Path) -> None:
    # 03:30 UTC is still the 9th in New York.
    io = manager(tmp_path, timezone="America/New_York")
    io.handle_output(dg.build_output_context(asset_key="rates"), {"x": 1})
    assert files(tmp_path) == ["rates_20240309.pkl.gz"]
    assert io.load_input(dg.build_input_context(asset_key="rates")) == {"x": 1}


def test_bad_timezone_names_the_zone(tmp_path: Path) -> None:
    io = manager(tmp_path, timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="Mars/Olympus"):
        io.handle_output(dg.build_output_context(asset_key="rates"), 1)


def test_a_static_partition_is_its_own_daily_series(tmp_path: Path) -> None:
    """Issue 21 item 5 (test_partitions_without_time.py runs it through materializations)."""
    static = dg.StaticPartitionsDefinition(["eu", "us"])
    ctx = dg.build_output_context(asset_key="s", partition_key="eu", asset_partitions_def=static)
    with freeze_time("2024-01-15 12:00"):
        manager(tmp_path).handle_output(ctx, 1)
    assert files(tmp_path) == ["s__eu_20240115.pkl.gz"]


def test_none_output_is_written_and_loads_as_none_not_an_older_day(tmp_path: Path) -> None:
    save_cache("older", "s", "2024-01-14", str(tmp_path))
    ctx = dg.build_output_context(asset_key="s", partition_key="2024-01-15", asset_partitions_def=DAILY)
    io = manager(tmp_path)
    io.handle_output(ctx, None)
    assert files(tmp_path) == ["s_20240114.pkl.gz", "s_20240115.pkl.gz"]
    assert "None" in ctx.get_logged_metadata()["dagster_cache/note"].text
    inp = dg.build_input_context(asset_key="s", partition_key="2024-01-15", asset_partitions_def=DAILY)
    assert io.load_input(inp) is None
    assert inp.consume_logged_metadata()["dagster_cache/fallback"].value is False
    assert read_cache("s", "2024-01-15", str(tmp_path)) is None  # plain cache_utils agrees


def test_missing_partition_falls_back_to_older_never_newer(tmp_path: Path) -> None:
    save_cache("old", "s", "2024-01-10", str(tmp_path))
    save_cache("newer", "s", "2024-01-20", str(tmp_path))
    ctx = dg.build_input_context(asset_key="s", partition_key="2024-01-15", asset_partitions_def=DAILY)
    assert manager(tmp_path).load_input(ctx) == "old"
    # No input metadata: Dagster would record it as an observation of the wanted (missing)
    # partition, making it look fresh. The consumer's materialization says it (test_stale_inputs).
    assert ctx.consume_logged_metadata() == {}


def test_fallback_off_names_the_missing_file(tmp_path: Path) -> None:
    save_cache("old", "s", "2024-01-10", str(tmp_path))
    ctx = dg.build_input_context(asset_key="s", partition_key="2024-01-15", asset_partitions_def=DAILY)
    with pytest.raises(CacheNotFoundError, match=r"s_20240115\.pkl\.gz.*fallback_to_latest is off"):
        manager(tmp_path, fallback_to_latest=False).load_input(ctx)


def test_nothing_on_or_before_is_a_clear_error(tmp_path: Path) -> None:
    save_cache("later", "s", "2024-02-01", str(tmp_path))
    ctx = dg.build_input_context(asset_key="s", partition_key="2024-01-15", asset_partitions_def=DAILY)
    with pytest.raises(CacheNotFoundError, match=r"s_20240115\.pkl\.gz is missing"):
        manager(tmp_path).load_input(ctx)


def range_ctx(first: str, last: str, **metadata: Any) -> dg.InputContext:
    return dg.build_input_context(asset_key="s", asset_partitions_def=DAILY, definition_metadata=metadata,
                                  asset_partition_key_range=dg.PartitionKeyRange(first, last))


def test_range_with_a_missing_day_is_an_error_never_another_days_data(tmp_path: Path) -> None:
    save_cache(1, "s", "2024-01-01", str(tmp_path))
    save_cache(3, "s", "2024-01-03", str(tmp_path))
    with pytest.raises(CacheNotFoundError, match=r"1 of 3 partitions of s .*: 2024-01-02;.*allow_missing"):
        manager(tmp_path).load_input(range_ctx("2024-01-01", "2024-01-03"))
    # Dagster's rule: allow_missing_partitions skips the day.
    skipped = range_ctx("2024-01-01", "2024-01-03", allow_missing_partitions=True)
    assert manager(tmp_path).load_input(skipped) == {"2024-01-01": 1, "2024-01-03": 3}


def test_range_fill_from_earlier_files_is_opt_in_per_manager_and_per_input(tmp_path: Path) -> None:
    save_cache(1, "s", "2024-01-01", str(tmp_path))
    save_cache(3, "s", "2024-01-03", str(tmp_path))
    filled = {"2024-01-01": 1, "2024-01-02": 1, "2024-01-03": 3}
    assert manager(tmp_path, fill_missing_partitions=True).load_input(range_ctx("2024-01-01", "2024-01-03")) \
        == filled
    per_input = range_ctx("2024-01-01", "2024-01-03", fill_missing_partitions=True)
    assert manager(tmp_path).load_input(per_input) == filled
    off = range_ctx("2024-01-01", "2024-01-03", fill_missing_partitions=False)
    with pytest.raises(CacheNotFoundError, match="2024-01-02"):
        manager(tmp_path, fill_missing_partitions=True).load_input(off)
    # Fill never takes a later file: a day with nothing on or before it stays missing.
    (tmp_path / "s_20240101.pkl.gz").unlink()
    with pytest.raises(CacheNotFoundError, match=r"2 of 3 partitions of s .*: 2024-01-01, 2024-01-02;"):
        manager(tmp_path, fill_missing_partitions=True).load_input(range_ctx("2024-01-01", "2024-01-03"))


def test_fallback_can_be_switched_off_per_input(tmp_path: Path) -> None:
    save_cache("old", "s", "2024-01-10", str(tmp_path))
    ctx = dg.build_input_context(asset_key="s", partition_key="2024-01-15", asset_partitions_def=DAILY,
                                 definition_metadata={"fallback_to_latest": False})
    with pytest.raises(CacheNotFoundError, match="fallback_to_latest is off"):
        manager(tmp_path).load_input(ctx)
    on = dg.build_input_context(asset_key="s", partition_key="2024-01-15", asset_partitions_def=DAILY,
                                definition_metadata={"fallback_to_latest": True})
    assert manager(tmp_path, fallback_to_latest=False).load_input(on) == "old"


def test_multi_partition_time_dimension_joins_other_keys_to_the_prefix(tmp_path: Path) -> None:
    regions = dg.StaticPartitionsDefinition(["eu", "us"])
    multi = dg.MultiPartitionsDefinition({"date": DAILY, "region": regions})
    io = manager(tmp_path)
    for region in ("eu", "us"):
        key = dg.MultiPartitionKey({"date": "2024-01-15", "region": region})
        io.handle_output(dg.build_output_context(asset_key="s", partition_key=key,
                                                 asset_partitions_def=multi), region.upper())
    assert files(tmp_path) == ["s__eu_20240115.pkl.gz", "s__us_20240115.pkl.gz"]
    key = dg.MultiPartitionKey({"date": "2024-01-16", "region": "us"})
    ctx = dg.build_input_context(asset_key="s", partition_key=key, asset_partitions_def=multi)
    assert io.load_input(ctx) == "US"  # fell back to the 15th of the same region


# --- materialize(): partitions, fallbacks, backfills, self-dependency -------------------------------


@dg.asset(partitions_def=DAILY)
def prices(context: dg.AssetExecutionContext) -> pd.DataFrame:
    return pd.DataFrame({"day": [context.partition_key], "px": [len(context.partition_key)]})


@dg.asset(partitions_def=DAILY)
def report(prices: pd.DataFrame) -> str:
    return f"report of {prices['day'].iloc[0]}"


def test_materialize_daily_chain_and_fallback_with_input_metadata(tmp_path: Path) -> None:
    io = manager(tmp_path)
    assert dg.materialize([prices, report], partition_key="2024-01-02", resources={"io_manager": io}).success
    assert files(tmp_path) == ["prices_20240102.pkl.gz", "report_20240102.pkl.gz"]
    # prices for the 5th is missing: report loads the 2nd, says so, and warns.
    result = dg.materialize([prices.to_source_asset(), report], partition_key="2024-01-05",
                            resources={"io_manager": io})
    assert result.success
    assert read_cache("report", "2024-01-05", str(tmp_path)) == "report of 2024-01-02"
    [mat] = result.asset_materializations_for_node("report")
    stale = mat.metadata["dagster_cache/stale_inputs"].value["prices"]
    assert (stale["date_used"], stale["stale_days"], stale["asset"]) == ("2024-01-02", 3, "prices")
    assert not [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]


def test_materialize_fails_cleanly_without_fallback(tmp_path: Path) -> None:
    result = dg.materialize([prices.to_source_asset(), report], partition_key="2024-01-05",
                            resources={"io_manager": manager(tmp_path, fallback_to_latest=False)},
                            raise_on_error=False)
    assert not result.success
    assert "prices_20240105.pkl.gz" in str(result.get_step_failure_events()[0].event_specific_data.error)
    assert files(tmp_path) == []


@dg.asset(partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
def bulk(context: dg.AssetExecutionContext) -> dict[str, int]:
    return {key: i for i, key in enumerate(context.partition_keys)}


@dg.asset(partitions_def=DAILY, ins={"bulk": dg.AssetIn(partition_mapping=dg.TimeWindowPartitionMapping(
    start_offset=-1, end_offset=0))})
def two_days(bulk: dict[str, int]) -> int:
    return sum(bulk.values())


@dg.asset(partitions_def=DAILY, ins={"bulk": dg.AssetIn(partition_mapping=dg.TimeWindowPartitionMapping(
    start_offset=0, end_offset=0))})
def same_day(bulk: int) -> int:
    return bulk


def range_tags(start: str, end: str) -> dict[str, str]:
    """The tags a single-run backfill puts on its run."""
    return {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}


def test_single_run_backfill_writes_one_file_per_day(tmp_path: Path) -> None:
    io = manager(tmp_path)
    result = dg.materialize([bulk], tags=range_tags("2024-01-01", "2024-01-03"),
                            resources={"io_manager": io})
    assert result.success
    assert files(tmp_path) == [f"bulk_2024010{d}.pkl.gz" for d in (1, 2, 3)]
    assert [read_cache("bulk", f"2024-01-0{d}", str(tmp_path)) for d in (1, 2, 3)] == [0, 1, 2]
    mat = result.get_asset_materialization_events()[0].materialization
    assert mat.metadata["dagster_cache/files_written"].value == 3


def test_single_run_backfill_with_a_non_dict_is_refused(tmp_path: Path) -> None:
    @dg.asset(partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run(), name="bulk")
    def bad_bulk() -> int:
        return 7

    result = dg.materialize([bad_bulk], tags=range_tags("2024-01-01", "2024-01-02"),
                            resources={"io_manager": manager(tmp_path)}, raise_on_error=False)
    assert not result.success
    assert "return a dict" in str(result.get_step_failure_events()[0].event_specific_data.error)
    assert files(tmp_path) == []


def test_range_mapping_gives_a_dict_even_for_one_key(tmp_path: Path) -> None:
    # dagster issue 28942: the first partition's range [-1, 0] holds only the day itself.
    io = manager(tmp_path)
    save_cache(5, "bulk", "2024-01-01", str(tmp_path))
    save_cache(6, "bulk", "2024-01-02", str(tmp_path))
    assert dg.materialize([bulk.to_source_asset(), two_days], partition_key="2024-01-01",
                          resources={"io_manager": io}).success
    assert read_cache("two_days", "2024-01-01", str(tmp_path)) == 5
    assert dg.materialize([bulk.to_source_asset(), two_days], partition_key="2024-01-02",
                          resources={"io_manager": io}).success
    assert read_cache("two_days", "2024-01-02", str(tmp_path)) == 11
    # A one-to-one mapping still gives the bare value.
    assert dg.materialize([bulk.to_source_asset(), same_day], partition_key="2024-01-02",
                          resources={"io_manager": io}).success
    assert read_cache("same_day", "2024-01-02", str(tmp_path)) == 6


@dg.asset(partitions_def=DAILY, ins={"running_total": dg.AssetIn(
    partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1),
    metadata={"allow_missing_partitions": True})})
def running_total(context: dg.AssetExecutionContext, running_total: int | None) -> int:
    return (running_total or 0) + int(context.partition_key[-2:])


def test_self_dependent_asset_first_partition_gets_none(tmp_path: Path) -> None:
    io = manager(tmp_path)
    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        assert dg.materialize([running_total], partition_key=day, resources={"io_manager": io}).success
    assert read_cache("running_total", "2024-01-03", str(tmp_path)) == 1 + 2 + 3


def test_scheduled_run_writes_the_scheduled_day(tmp_path: Path) -> None:
    @dg.asset
    def snapshot() -> str:
        return "snap"

    # Scheduled for 23:30 on the 9th in New York; the run may start after midnight.
    tags = {SCHEDULED_EXECUTION_TIME_TAG: "2024-03-10T04:30:00+00:00"}
    io = manager(tmp_path, timezone="America/New_York")
    assert dg.materialize([snapshot], resources={"io_manager": io}, tags=tags).success
    assert files(tmp_path) == ["snapshot_20240309.pkl.gz"]


# --- alerts through the OpsGenie-like server -------------------------------------------------------


def test_stale_fallback_alerts_and_fresh_write_closes(tmp_path: Path) -> None:
    with FakeOpsGenie() as og:
        io = manager(tmp_path, opsgenie=OpsGenieResource(api_key=TEST_API_KEY, api_url=og.url, timeout=3))
        save_cache("old", "s", "2024-01-10", str(tmp_path))
        ctx = dg.build_input_context(asset_key="s", partition_key="2024-01-12", asset_partitions_def=DAILY)
        assert io.load_input(ctx) == "old"
        assert og.open_aliases() == {"cache_utils:s"}  # the alias load_cache uses for this prefix
        body = og.creates()[0].body
        assert body["details"]["age_days"] == "2"
        assert og.creates()[0].headers["Authorization"] == f"GenieKey {TEST_API_KEY}"
        today = dt.datetime.now(dt.UTC).date().isoformat()
        io.handle_output(dg.build_output_context(asset_key="s", partition_key=today,
                                                 asset_partitions_def=DAILY), "fresh")
        assert og.open_aliases() == set()
        assert unquote(og.closes()[0].path) == "/v2/alerts/cache_utils:s/close"


def test_missing_data_alerts_before_raising(tmp_path: Path) -> None:
    with FakeOpsGenie() as og:
        io = manager(tmp_path, opsgenie=OpsGenieResource(api_key=TEST_API_KEY, api_url=og.url, timeout=3))
        ctx = dg.build_input_context(asset_key="s", partition_key="2024-01-12", asset_partitions_def=DAILY)
        with pytest.raises(CacheNotFoundError):
            io.load_input(ctx)
        assert og.open_aliases() == {"cache_utils:s"}
        assert og.creates()[0].body["priority"] == "P2"


def test_disabled_opsgenie_resource_sends_nothing(tmp_path: Path, opsgenie: FakeOpsGenie) -> None:
    # The environment points the library at a server, but an explicitly disabled resource wins.
    io = manager(tmp_path, opsgenie=OpsGenieResource(api_key=""))
    save_cache("old", "s", "2024-01-10", str(tmp_path))
    ctx = dg.build_input_context(asset_key="s", partition_key="2024-01-12", asset_partitions_def=DAILY)
    assert io.load_input(ctx) == "old"
    assert opsgenie.requests == []


def test_io_manager_files_are_what_load_cache_reads(tmp_path: Path) -> None:
    with freeze_time("2024-06-01 12:00:00"):
        manager(tmp_path).handle_output(dg.build_output_context(asset_key="sales_data"), [1, 2])
        data, next_cb = load_cache("sales_data", "06:00", str(tmp_path), tz="UTC")
    assert data == [1, 2]
    assert next_cb == dt.datetime(2024, 6, 2, 6, 0, tzinfo=cache_utils.timing.resolve_zone("UTC"))


def test_url_directory_goes_through_cache_utils_storage() -> None:
    pytest.importorskip("cache_utils.stores.fsspec")
    io = DatedCacheIOManager(directory="memory://dagster-cache-test", storage_options={})
    ctx = dg.build_output_context(asset_key="remote", partition_key="2024-01-15", asset_partitions_def=DAILY)
    io.handle_output(ctx, frame())
    meta = ctx.get_logged_metadata()
    assert meta["path"].path.endswith("dagster-cache-test/remote_20240115.pkl.gz")
    assert meta["dagster_cache/size_bytes"].value > 0
    ctx = dg.build_input_context(asset_key="remote", partition_key="2024-01-16", asset_partitions_def=DAILY)
    pd.testing.assert_frame_equal(io.load_input(ctx), frame())  # fell back to the 15th


def test_range_fallback_sends_one_alert_for_the_range(tmp_path: Path) -> None:
    with FakeOpsGenie() as og:
        io = manager(tmp_path, opsgenie=OpsGenieResource(api_key=TEST_API_KEY, api_url=og.url, timeout=3))
        save_cache(1, "s", "2024-01-01", str(tmp_path))
        days = dg.PartitionKeyRange("2024-01-01", "2024-01-05")
        ctx = dg.build_input_context(asset_key="s", asset_partitions_def=DAILY,
                                     asset_partition_key_range=days,
                                     definition_metadata={"fill_missing_partitions": True})
        assert io.load_input(ctx) == {f"2024-01-0{d}": 1 for d in range(1, 6)}
        assert len(og.creates()) == 1
        assert og.creates()[0].body["details"]["stale_partitions"] == "4"


@dg.op
def make_numbers() -> list[int]:
    return [1, 2, 3]


@dg.op
def total(numbers: list[int]) -> int:
    return sum(numbers)


@dg.job
def numbers_job() -> None:
    total(make_numbers())


def test_op_outputs_are_the_runs_own_dated_files(tmp_path: Path) -> None:
    tags = {SCHEDULED_EXECUTION_TIME_TAG: "2024-05-01T06:00:00+00:00"}
    result = numbers_job.execute_in_process(resources={"io_manager": manager(tmp_path)}, tags=tags)
    assert result.output_for_node("total") == 6
    run = result.run_id
    assert files(tmp_path) == [f"make_numbers.result@{run}_20240501.pkl.gz",
                               f"total.result@{run}_20240501.pkl.gz"]


@dg.op(out=dg.Out(metadata={"cache_prefix": "numbers"}))
def publish_numbers() -> list[int]:
    return [4, 5]


@dg.job
def publish_job() -> None:
    total(publish_numbers())


def test_an_op_output_with_a_cache_prefix_is_a_shared_daily_cache(tmp_path: Path) -> None:
    tags = {SCHEDULED_EXECUTION_TIME_TAG: "2024-05-01T06:00:00+00:00"}
    result = publish_job.execute_in_process(resources={"io_manager": manager(tmp_path)}, tags=tags)
    assert result.output_for_node("total") == 9
    assert "numbers_20240501.pkl.gz" in files(tmp_path)
    assert read_cache("numbers", "2024-05-01", str(tmp_path)) == [4, 5]  # what plain cache_utils reads


@dg.asset
def fx() -> float:
    return 1.0


@dg.asset(partitions_def=DAILY)
def converted(fx: float) -> float:
    return fx * 2


def test_unpartitioned_input_in_a_daily_run_never_loads_a_later_day(tmp_path: Path) -> None:
    save_cache(1.5, "fx", "2024-01-10", str(tmp_path))
    save_cache(9.0, "fx", "2024-01-20", str(tmp_path))
    io = manager(tmp_path)
    assert dg.materialize([fx.to_source_asset(), converted], partition_key="2024-01-15",
                          resources={"io_manager": io}).success
    assert read_cache("converted", "2024-01-15", str(tmp_path)) == 3.0
