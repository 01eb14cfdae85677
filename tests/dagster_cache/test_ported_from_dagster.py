"""Dagster's own IO-manager test scenarios, ported to `DatedCacheIOManager`.

Each test names the Dagster test it ports (repository dagster-io/dagster, under
python_modules/dagster/dagster_tests/):

* storage_tests/test_upath_io_manager.py          (UPathIOManager / PickleIOManager / DummyIOManager)
* storage_tests/test_fs_io_manager.py             (fs_io_manager)
* asset_defs_tests/test_partitioned_assets.py
* asset_defs_tests/partition_mapping_tests/test_asset_partition_mappings.py
* execution_tests/dynamic_tests/test_dynamic_execution.py
* core_tests/test_multiple_outputs.py

Dagster's IO manager is replaced by `DatedCacheIOManager(directory=str(tmp_path))`; Dagster's
assertions on the values each consumer receives are kept. Where Dagster asserted on its own file
layout (`<base_dir>/<asset key>/<partition>`), the assertion is made on ours
(`<prefix>_<YYYYMMDD>.pkl.gz`, read back with `cache_utils.read_cache`). Where Dagster's fake IO
manager returned a path or None instead of the data, the test asserts the data the asset wrote.

Scenarios whose stored asset uses static or dynamic (non-date) partitions run as they are: each key
is its own daily series (`<prefix>__<key>_<run day>.pkl.gz`). Five of them read static partitions
that were never materialized, which Dagster's fake IO manager returns as None and ours refuses
(naming the key), so they stay skipped. A daily variant follows each where the scenario matters for a
dated cache.

Time never comes from the machine clock: partition keys are in the past and every run that writes
an unpartitioned output (an op, an unpartitioned asset) runs under `freeze_time(FROZEN)`.

23 of these failed before the IO manager's correctness fixes (hourly partitions sharing one daily
file, unpartitioned outputs in partitioned runs, dynamic outputs, None outputs, range loads filling
missing days, inputs mapped to no partition, prefix collisions).
"""

import datetime as dt
import os
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd  # before any freeze_time: pandas 3 crashes when first imported while time is frozen
import pytest
from dagster import AssetExecutionContext, OpExecutionContext
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.partitions.mapping.partition_mapping import UpstreamPartitionsResult
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from freezegun import freeze_time

from cache_utils import read_cache
from dagster_cache import DatedCacheIOManager

# Quoted from docs/dagster.md (a test below checks that it still says so).
README_MISSING_KEY_RULE = ("A key with no file at all is an\n"
                           "    error naming the key, or skipped with `allow_missing_partitions: True`.")
NEVER_MATERIALIZED = pytest.mark.skip(
    reason="reads static partitions never materialized, which Dagster's test IO manager returns as None; "
           "docs/dagster.md: " + " ".join(README_MISSING_KEY_RULE.split()))


def test_the_skip_reason_is_what_the_readme_says() -> None:
    readme = (Path(__file__).resolve().parents[2] / "docs" / "dagster.md").read_text()
    assert README_MISSING_KEY_RULE in readme

# "Today" for every run that writes an unpartitioned output: later than every partition key used
# with it below, so a file written under today and one written under a partition's day differ.
FROZEN = "2024-02-01 12:00:00"
TODAY = dt.date(2024, 2, 1)
TODAY_STAMP = "20240201"


def manager(tmp_path: Path) -> DatedCacheIOManager:
    return DatedCacheIOManager(directory=str(tmp_path))


def resources(tmp_path: Path) -> dict[str, Any]:
    return {"io_manager": manager(tmp_path)}


def cache_files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))


def all_entries(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir())


def handled_outputs(result: Any) -> list[dg.DagsterEvent]:
    return [evt for evt in result.all_node_events if evt.is_handled_output]


def loaded_inputs(result: Any) -> list[dg.DagsterEvent]:
    return [evt for evt in result.all_node_events if evt.is_loaded_input]


def range_tags(start: str, end: str) -> dict[str, str]:
    return {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}


@pytest.fixture
def start() -> datetime:
    return datetime(2022, 1, 1)


@pytest.fixture
def hourly(start: datetime) -> dg.HourlyPartitionsDefinition:
    return dg.HourlyPartitionsDefinition(start_date=f"{start:%Y-%m-%d-%H:%M}")


@pytest.fixture
def daily(start: datetime) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=f"{start:%Y-%m-%d}")


# =================================================================================================
# storage_tests/test_upath_io_manager.py
# =================================================================================================


def _materialize_hours_of_first_day(
    tmp_path: Path, hourly: dg.HourlyPartitionsDefinition, upstream_asset: dg.AssetsDefinition, days: int = 1
) -> list[str]:
    """The hourly upstream for `days` days, in one single-run backfill (one value per hour).

    Dagster's test never materializes the upstream (its DummyIOManager returns paths); we need the
    files, and one run is much faster than 24 (the manager's documented {partition_key: value} form).
    """
    keys = hourly.get_partition_keys_in_range(
        dg.PartitionKeyRange("2022-01-01-00:00", f"2022-01-{days:02d}-23:00")
    )
    result = dg.materialize(
        [upstream_asset], tags=range_tags(keys[0], keys[-1]), resources=resources(tmp_path)
    )
    assert result.success
    return keys


def _hourly_upstream(hourly: dg.HourlyPartitionsDefinition) -> dg.AssetsDefinition:
    @dg.asset(partitions_def=hourly, backfill_policy=dg.BackfillPolicy.single_run())
    def upstream_asset(context: AssetExecutionContext) -> dict[str, str]:
        return {key: key for key in context.partition_keys}  # each hour's value is its key

    return upstream_asset


def test_upath_io_manager_multiple_time_partitions(
    tmp_path: Path,
    daily: dg.DailyPartitionsDefinition,
    hourly: dg.HourlyPartitionsDefinition,
    start: datetime,
) -> None:
    """Ports test_upath_io_manager.py::test_upath_io_manager_multiple_time_partitions (hourly -> daily)."""
    upstream_asset = _hourly_upstream(hourly)
    hours = _materialize_hours_of_first_day(tmp_path, hourly, upstream_asset)

    @dg.asset(partitions_def=daily)
    def downstream_asset(upstream_asset: dict[str, str]) -> dict[str, str]:
        return upstream_asset

    result = dg.materialize(
        [upstream_asset.to_source_asset(), downstream_asset],
        partition_key=start.strftime(daily.fmt),
        resources=resources(tmp_path),
    )
    downstream_asset_data = result.output_for_node("downstream_asset", "result")
    assert len(downstream_asset_data) == 24, "downstream day should map to upstream 24 hours"
    # Each hour's own value, as Dagster's PickleIOManager gives it (one file per hour).
    assert downstream_asset_data == {hour: hour for hour in hours}


def test_skip_type_check_for_multiple_partitions_with_no_type_annotation(
    tmp_path: Path,
    daily: dg.DailyPartitionsDefinition,
    hourly: dg.HourlyPartitionsDefinition,
    start: datetime,
) -> None:
    """Ports test_upath_io_manager.py::
    test_skip_type_check_for_multiple_partitions_with_no_type_annotation."""
    upstream_asset = _hourly_upstream(hourly)
    _materialize_hours_of_first_day(tmp_path, hourly, upstream_asset)

    @dg.asset(partitions_def=daily)
    def downstream_asset(upstream_asset):
        return upstream_asset

    result = dg.materialize(
        [upstream_asset.to_source_asset(), downstream_asset],
        partition_key=start.strftime(daily.fmt),
        resources=resources(tmp_path),
    )
    assert isinstance(result.output_for_node("downstream_asset"), dict)


def test_skip_type_check_for_multiple_partitions_with_any_type(
    tmp_path: Path,
    daily: dg.DailyPartitionsDefinition,
    hourly: dg.HourlyPartitionsDefinition,
    start: datetime,
) -> None:
    """Ports test_upath_io_manager.py::test_skip_type_check_for_multiple_partitions_with_any_type."""
    upstream_asset = _hourly_upstream(hourly)
    _materialize_hours_of_first_day(tmp_path, hourly, upstream_asset)

    @dg.asset(partitions_def=daily)
    def downstream_asset(upstream_asset: Any):
        return upstream_asset

    result = dg.materialize(
        [upstream_asset.to_source_asset(), downstream_asset],
        partition_key=start.strftime(daily.fmt),
        resources=resources(tmp_path),
    )
    assert isinstance(result.output_for_node("downstream_asset"), dict)


def test_hourly_partitions_in_separate_runs_keep_their_own_values(
    tmp_path: Path, daily: dg.DailyPartitionsDefinition, hourly: dg.HourlyPartitionsDefinition
) -> None:
    """Ports test_upath_io_manager.py::test_upath_io_manager_multiple_time_partitions with the hourly
    upstream materialized one run per hour (the usual schedule) instead of one backfill."""

    @dg.asset(partitions_def=hourly)
    def upstream_asset(context: AssetExecutionContext) -> str:
        return context.partition_key

    hours = ["2022-01-01-00:00", "2022-01-01-01:00", "2022-01-01-02:00"]
    for hour in hours:
        assert dg.materialize([upstream_asset], partition_key=hour, resources=resources(tmp_path)).success

    data: dict[str, str] = {}

    @dg.asset(
        partitions_def=daily, ins={"upstream_asset": dg.AssetIn(metadata={"allow_missing_partitions": True})}
    )
    def partial_downstream(upstream_asset: dict[str, str]) -> int:
        data.update(upstream_asset)
        return len(upstream_asset)

    dg.materialize(
        [upstream_asset.to_source_asset(), partial_downstream],
        partition_key="2022-01-01",
        resources=resources(tmp_path),
    )
    for hour in hours:
        assert data[hour] == hour, f"hour {hour} must load its own value, got {data[hour]!r}"


@freeze_time(FROZEN)
def test_upath_io_manager_multiple_static_partitions(tmp_path: Path) -> None:
    """Ports test_upath_io_manager.py::test_upath_io_manager_multiple_static_partitions."""
    upstream_partitions_def = dg.StaticPartitionsDefinition(["A", "B"])

    @dg.asset(partitions_def=upstream_partitions_def)
    def upstream_asset(context: AssetExecutionContext) -> str:
        return context.partition_key

    @dg.asset(ins={"upstream_asset": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
    def downstream_asset(upstream_asset: dict[str, str]) -> dict[str, str]:
        return upstream_asset

    dg.materialize([upstream_asset], partition_key="B", resources=resources(tmp_path))
    result = dg.materialize(
        assets=[upstream_asset, downstream_asset], resources=resources(tmp_path), partition_key="A"
    )
    downstream_asset_data = result.output_for_node("downstream_asset", "result")
    assert set(downstream_asset_data.keys()) == {"A", "B"}


@freeze_time(FROZEN)
def test_upath_io_manager_load_multiple_inputs(tmp_path: Path) -> None:
    """Ports test_upath_io_manager.py::test_upath_io_manager_load_multiple_inputs."""
    upstream_partitions_def = dg.MultiPartitionsDefinition(
        {"a": dg.StaticPartitionsDefinition(["a", "b"]), "1": dg.StaticPartitionsDefinition(["1"])}
    )

    @dg.asset(partitions_def=upstream_partitions_def)
    def upstream_asset(context: AssetExecutionContext) -> str:
        return context.partition_key

    @dg.asset
    def downstream_asset(upstream_asset):
        return upstream_asset

    dg.materialize(
        [upstream_asset],
        partition_key=dg.MultiPartitionKey({"a": "b", "1": "1"}),
        resources=resources(tmp_path),
    )
    result = dg.materialize(
        assets=[upstream_asset, downstream_asset],
        resources=resources(tmp_path),
        partition_key=dg.MultiPartitionKey({"a": "a", "1": "1"}),
    )
    downstream_asset_data = result.output_for_node("downstream_asset", "result")
    assert set(downstream_asset_data.keys()) == {"1|a", "1|b"}


@freeze_time(FROZEN)
def test_upath_io_manager_multiple_partitions_from_non_partitioned_run(tmp_path: Path) -> None:
    """Ports test_upath_io_manager.py::test_upath_io_manager_multiple_partitions_from_non_partitioned_run."""
    upstream_partitions_def = dg.StaticPartitionsDefinition(["A", "B"])

    @dg.asset(partitions_def=upstream_partitions_def, io_manager_def=manager(tmp_path))
    def upstream_asset(context: AssetExecutionContext) -> str:
        return context.partition_key

    @dg.asset(
        ins={"upstream_asset": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
        io_manager_def=manager(tmp_path),
    )
    def downstream_asset(upstream_asset: dict[str, str]) -> dict[str, str]:
        return upstream_asset

    for partition_key in ["A", "B"]:
        dg.materialize([upstream_asset], partition_key=partition_key)

    result = dg.materialize([upstream_asset.to_source_asset(), downstream_asset])
    downstream_asset_data = result.output_for_node("downstream_asset", "result")
    assert set(downstream_asset_data.keys()) == {"A", "B"}


@freeze_time(FROZEN)
def test_upath_io_manager_multiple_partitions_from_non_partitioned_run_daily(tmp_path: Path) -> None:
    """Daily variant of test_upath_io_manager.py::test_upath_io_manager_multiple_partitions_from_non_
    partitioned_run: an unpartitioned asset reads every partition of a daily one (AllPartitionMapping)."""
    upstream_partitions_def = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-03")

    @dg.asset(partitions_def=upstream_partitions_def, io_manager_def=manager(tmp_path))
    def upstream_asset(context: AssetExecutionContext) -> str:
        return context.partition_key

    @dg.asset(
        ins={"upstream_asset": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())},
        io_manager_def=manager(tmp_path),
    )
    def downstream_asset(upstream_asset: dict[str, str]) -> dict[str, str]:
        return upstream_asset

    for partition_key in ["2024-01-01", "2024-01-02"]:
        dg.materialize([upstream_asset], partition_key=partition_key)

    result = dg.materialize([upstream_asset.to_source_asset(), downstream_asset])
    downstream_asset_data = result.output_for_node("downstream_asset", "result")
    assert set(downstream_asset_data.keys()) == {"2024-01-01", "2024-01-02"}
    assert downstream_asset_data == {"2024-01-01": "2024-01-01", "2024-01-02": "2024-01-02"}
    assert read_cache("downstream_asset", TODAY, str(tmp_path)) == downstream_asset_data


def test_partitioned_io_manager_preserves_single_partition_dependency(
    tmp_path: Path, daily: dg.DailyPartitionsDefinition
) -> None:
    """Ports test_upath_io_manager.py::test_partitioned_io_manager_preserves_single_partition_dependency."""

    @dg.asset(partitions_def=daily)
    def upstream_asset(context: AssetExecutionContext) -> str:
        # Dagster's DummyIOManager hands the consumer the partition's path; ours hands the data,
        # so the data names the partition it was written for.
        return f"upstream_asset/{context.partition_key}"

    @dg.asset(partitions_def=daily)
    def daily_asset(upstream_asset: str):
        return upstream_asset

    assert dg.materialize([upstream_asset], partition_key="2022-01-02", resources=resources(tmp_path)).success
    result = dg.materialize(
        [upstream_asset, daily_asset], partition_key="2022-01-01", resources=resources(tmp_path)
    )
    assert result.output_for_node("daily_asset").endswith("2022-01-01")


def test_multiple_partition_output(
    tmp_path: Path,
    start: datetime,
    daily: dg.DailyPartitionsDefinition,
    hourly: dg.HourlyPartitionsDefinition,
) -> None:
    """Ports test_upath_io_manager.py::test_multiple_partition_output (a two-day single-run range)."""
    upstream_asset = _hourly_upstream(hourly)
    _materialize_hours_of_first_day(tmp_path, hourly, upstream_asset, days=2)

    @dg.asset(partitions_def=daily)
    def downstream_asset(upstream_asset: dict[str, str]) -> dict[str, str]:
        return {"2022-01-01": "ok", "2022-01-02": "ok"}

    result = dg.materialize(
        [upstream_asset.to_source_asset(), downstream_asset],
        tags=range_tags(start.strftime(daily.fmt), (start + timedelta(days=1)).strftime(daily.fmt)),
        resources=resources(tmp_path),
    )
    mats = sorted(result.asset_materializations_for_node("downstream_asset"), key=lambda m: str(m.partition))
    assert len(mats) == 2
    assert [m.partition for m in mats] == ["2022-01-01", "2022-01-02"]
    # Dagster checks each materialization's path ends with downstream_asset/<day>; our files:
    assert read_cache("downstream_asset", "2022-01-01", str(tmp_path)) == "ok"
    assert read_cache("downstream_asset", "2022-01-02", str(tmp_path)) == "ok"
    assert {"downstream_asset_20220101.pkl.gz", "downstream_asset_20220102.pkl.gz"} <= set(
        cache_files(tmp_path)
    )


def _upstream_and_window_downstream(
    daily: dg.DailyPartitionsDefinition, metadata: dict[str, Any] | None = None
) -> tuple[dg.AssetsDefinition, dg.AssetsDefinition]:
    @dg.asset(partitions_def=daily)
    def upstream_asset(context: AssetExecutionContext) -> str:
        return context.partition_key

    @dg.asset(
        partitions_def=daily,
        ins={
            "upstream_asset": dg.AssetIn(
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1), metadata=metadata
            )
        },
    )
    def downstream_asset(upstream_asset: dict[str, str]):
        return upstream_asset

    return upstream_asset, downstream_asset


def test_upath_io_manager_async_multiple_time_partitions(
    tmp_path: Path, daily: dg.DailyPartitionsDefinition, start: datetime
) -> None:
    """Ports test_upath_io_manager.py::test_upath_io_manager_async_multiple_time_partitions (the
    async part is UPathIOManager's; the scenario is a two-day TimeWindowPartitionMapping range)."""
    upstream_asset, downstream_asset = _upstream_and_window_downstream(daily)

    for days in range(2):
        dg.materialize(
            [upstream_asset],
            partition_key=(start + timedelta(days=days)).strftime(daily.fmt),
            resources=resources(tmp_path),
        )

    result = dg.materialize(
        [upstream_asset.to_source_asset(), downstream_asset],
        partition_key=(start + timedelta(days=1)).strftime(daily.fmt),
        resources=resources(tmp_path),
    )
    downstream_asset_data = result.output_for_node("downstream_asset", "result")
    assert len(downstream_asset_data) == 2, "downstream day should map to 2 upstream days"
    assert downstream_asset_data == {"2022-01-01": "2022-01-01", "2022-01-02": "2022-01-02"}


def test_upath_io_manager_async_fail_on_missing_partitions(
    tmp_path: Path, daily: dg.DailyPartitionsDefinition, start: datetime
) -> None:
    """Ports test_upath_io_manager.py::test_upath_io_manager_async_fail_on_missing_partitions."""
    upstream_asset, downstream_asset = _upstream_and_window_downstream(daily)

    dg.materialize([upstream_asset], partition_key=start.strftime(daily.fmt), resources=resources(tmp_path))

    with pytest.raises(RuntimeError):
        dg.materialize(
            [upstream_asset.to_source_asset(), downstream_asset],
            partition_key=(start + timedelta(days=4)).strftime(daily.fmt),
            resources=resources(tmp_path),
        )


def test_upath_io_manager_async_allow_missing_partitions(
    tmp_path: Path, daily: dg.DailyPartitionsDefinition, start: datetime
) -> None:
    """Ports test_upath_io_manager.py::test_upath_io_manager_async_allow_missing_partitions."""
    upstream_asset, downstream_asset = _upstream_and_window_downstream(
        daily, metadata={"allow_missing_partitions": True}
    )

    dg.materialize([upstream_asset], partition_key=start.strftime(daily.fmt), resources=resources(tmp_path))

    result = dg.materialize(
        [upstream_asset.to_source_asset(), downstream_asset],
        partition_key=(start + timedelta(days=1)).strftime(daily.fmt),
        resources=resources(tmp_path),
    )
    downstream_asset_data = result.output_for_node("downstream_asset", "result")
    assert len(downstream_asset_data) == 1, "1 partition should be missing"


@freeze_time(FROZEN)
def test_upath_can_transition_from_non_partitioned_to_partitioned(
    tmp_path: Path, daily: dg.DailyPartitionsDefinition, start: datetime
) -> None:
    """Ports test_upath_io_manager.py::test_upath_can_transition_from_non_partitioned_to_partitioned."""

    @dg.asset
    def my_asset():
        return 1

    assert dg.materialize([my_asset], resources=resources(tmp_path)).success

    @dg.asset(partitions_def=daily, name="my_asset")
    def my_partitioned_asset():
        return 1

    assert dg.materialize(
        [my_partitioned_asset], resources=resources(tmp_path), partition_key=start.strftime(daily.fmt)
    ).success
    assert cache_files(tmp_path) == ["my_asset_20220101.pkl.gz", f"my_asset_{TODAY_STAMP}.pkl.gz"]


JSON_DATA = [0, 0.0, [0, 1, 2], {"a": 0}, [{"a": 0}, {"b": 1}, {"c": 2}]]


@pytest.mark.parametrize("json_data", JSON_DATA)
@freeze_time(FROZEN)
def test_upath_io_manager_with_json(tmp_path: Path, json_data: Any) -> None:
    """Ports test_upath_io_manager.py::test_upath_io_manager_with_json (an op output, no asset key)."""
    io = manager(tmp_path)
    context = dg.build_output_context(
        name="abc",
        step_key="123",
        dagster_type=dg.DagsterType(type_check_fn=lambda _, value: True, name="any", typing_type=Any),
    )
    io.handle_output(context, json_data)

    # Dagster reads the file at manager._get_path(context); ours is <step>.<output>_<today>.
    assert read_cache("123.abc", TODAY, str(tmp_path)) == json_data

    context = dg.build_input_context(
        name="abc",
        upstream_output=context,
        dagster_type=dg.DagsterType(type_check_fn=lambda _, value: True, name="any", typing_type=Any),
    )
    assert io.load_input(context) == json_data


@freeze_time(FROZEN)
def test_upath_io_manager_with_non_any_type_annotation(tmp_path: Path) -> None:
    """Ports test_upath_io_manager.py::test_upath_io_manager_with_non_any_type_annotation."""
    io = manager(tmp_path)
    data = [0, 1, "a", "b"]
    list_type = dg.DagsterType(
        type_check_fn=lambda _, value: isinstance(value, list), name="List", typing_type=list
    )
    context = dg.build_output_context(name="abc", step_key="123", dagster_type=list_type)
    io.handle_output(context, data)

    assert data == read_cache("123.abc", TODAY, str(tmp_path))

    context = dg.build_input_context(name="abc", upstream_output=context, dagster_type=list_type)
    assert io.load_input(context) == data


@pytest.mark.parametrize("json_data", JSON_DATA)
@freeze_time(FROZEN)
def test_upath_io_manager_async_load_from_path(tmp_path: Path, json_data: Any) -> None:
    """Ports the unpartitioned half of test_upath_io_manager.py::test_upath_io_manager_async_load_from_path,
    plus a consumer so the value goes through load_input."""
    received: list[Any] = []

    @dg.asset(io_manager_def=manager(tmp_path))
    def non_partitioned_asset():
        return json_data

    @dg.asset(io_manager_def=manager(tmp_path))
    def consumer(non_partitioned_asset: Any) -> None:
        received.append(non_partitioned_asset)

    result = dg.materialize([non_partitioned_asset, consumer])

    assert result.output_for_node("non_partitioned_asset") == json_data
    assert received == [json_data]


@freeze_time(FROZEN)
def test_upath_io_manager_async_load_from_path_static_partitions(tmp_path: Path) -> None:
    """Ports the static-partition half of
    test_upath_io_manager.py::test_upath_io_manager_async_load_from_path."""

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b"]), io_manager_def=manager(tmp_path))
    def partitioned_asset(context: OpExecutionContext):
        return context.partition_key

    result = dg.materialize([partitioned_asset], partition_key="a")
    assert result.output_for_node("partitioned_asset") == "a"


VARIOUS_VALUES = [
    pytest.param("", id="empty-str"),
    pytest.param("text", id="str"),
    pytest.param(b"\x00bytes", id="bytes"),
    pytest.param(False, id="false"),
    pytest.param(True, id="true"),
    pytest.param(-7, id="int"),
    pytest.param(2.5, id="float"),
    pytest.param([], id="empty-list"),
    pytest.param({}, id="empty-dict"),
    pytest.param((1, "two", 3.0), id="tuple"),
    pytest.param({1, 2, 3}, id="set"),
    pytest.param(frozenset({"a"}), id="frozenset"),
    pytest.param(dt.date(2024, 1, 15), id="date"),
    pytest.param(dt.datetime(2024, 1, 15, 12, 30, tzinfo=dt.UTC), id="datetime"),
    pytest.param({"nested": {"list": [1, {"deep": (2, 3)}]}}, id="nested"),
    pytest.param(pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]}), id="dataframe"),
]


@pytest.mark.parametrize("value", VARIOUS_VALUES)
@freeze_time(FROZEN)
def test_outputs_of_various_python_types(tmp_path: Path, value: Any) -> None:
    """Extends test_upath_io_manager.py::test_upath_io_manager_with_json / _async_load_from_path
    (whose values are JSON types) to other Python types, falsy ones included, unpartitioned and
    daily: the consumer receives what the producer returned."""
    expected = value.copy() if isinstance(value, pd.DataFrame) else value
    received: list[Any] = []
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")

    @dg.asset
    def produced():
        return value

    @dg.asset
    def consumed(produced: Any) -> None:
        received.append(produced)

    @dg.asset(partitions_def=daily)
    def produced_daily():
        return value

    @dg.asset(partitions_def=daily)
    def consumed_daily(produced_daily: Any) -> None:
        received.append(produced_daily)

    assert dg.materialize([produced, consumed], resources=resources(tmp_path)).success
    assert dg.materialize(
        [produced_daily, consumed_daily], partition_key="2024-01-15", resources=resources(tmp_path)
    ).success
    assert len(received) == 2
    for got in received:
        if isinstance(expected, pd.DataFrame):
            pd.testing.assert_frame_equal(got, expected)
        else:
            # isinstance, not type(): under freeze_time a loaded date is freezegun's FakeDate subclass
            assert isinstance(got, type(expected)), f"{type(got)} is not a {type(expected)}"
            assert got == expected


# =================================================================================================
# storage_tests/test_fs_io_manager.py
# =================================================================================================


def define_job() -> dg.JobDefinition:
    @dg.op
    def op_a(_context):
        return [1, 2, 3]

    @dg.op
    def op_b(_context, _df):
        return 1

    @dg.job
    def asset_job() -> None:
        op_b(op_a())

    return asset_job


@freeze_time(FROZEN)
def test_fs_io_manager(tmp_path: Path) -> None:
    """Ports test_fs_io_manager.py::test_fs_io_manager (op outputs, unpartitioned)."""
    defs = dg.Definitions(jobs=[define_job()], resources=resources(tmp_path))
    result = defs.get_job_def("asset_job").execute_in_process()
    assert result.success

    handled_output_events = [evt for evt in result.all_events if evt.is_handled_output]
    assert len(handled_output_events) == 2

    # Dagster: <base>/<run_id>/op_a/result; ours: the run's own file, op_a.result@<run_id>_<today>.
    filepath_a = os.path.join(str(tmp_path), f"op_a.result@{result.run_id}_{TODAY_STAMP}.pkl.gz")
    metadata = handled_output_events[0].event_specific_data.metadata
    assert metadata["path"] == dg.MetadataValue.path(filepath_a)
    assert os.path.isfile(filepath_a)
    assert read_cache(f"op_a.result@{result.run_id}", TODAY, str(tmp_path)) == [1, 2, 3]

    loaded_input_events = [evt for evt in result.all_events if evt.is_loaded_input]
    metadata = loaded_input_events[0].event_specific_data.metadata
    assert metadata["path"] == dg.MetadataValue.path(filepath_a)
    assert len(loaded_input_events) == 1
    assert loaded_input_events[0].event_specific_data.upstream_step_key == "op_a"

    filepath_b = os.path.join(str(tmp_path), f"op_b.result@{result.run_id}_{TODAY_STAMP}.pkl.gz")
    metadata = handled_output_events[1].event_specific_data.metadata
    assert metadata["path"] == dg.MetadataValue.path(filepath_b)
    assert os.path.isfile(filepath_b)
    assert read_cache(f"op_b.result@{result.run_id}", TODAY, str(tmp_path)) == 1


# lambda functions can't be pickled (pickle.PicklingError)
lam = lambda x: x * x  # noqa: E731


@freeze_time(FROZEN)
def test_fs_io_manager_unpicklable(tmp_path: Path) -> None:
    """Ports test_fs_io_manager.py::test_fs_io_manager_unpicklable.

    Dagster's assertion (DagsterInvariantViolationError "... is not picklable"), and no file left behind.
    """

    @dg.op
    def unpicklable_local_func_output():
        # locally defined functions can't be pickled (AttributeError)
        def local_func() -> int:
            return 1

        return local_func

    @dg.op
    def unpicklable_lambda_output():
        return lam

    @dg.op
    def recursion_limit_output():
        # a will exceed the recursion limit of 1000 and can't be pickled (RecursionError)
        a: list = []
        for _ in range(2000):
            a = [a]
        return a

    @dg.op
    def op_b(_i):
        return 1

    @dg.graph
    def local_func_graph() -> None:
        op_b(unpicklable_local_func_output())

    @dg.graph
    def lambda_graph() -> None:
        op_b(unpicklable_lambda_output())

    @dg.graph
    def recursion_limit_graph() -> None:
        op_b(recursion_limit_output())

    for graph_def, pattern in [
        (local_func_graph, r"is not picklable.*local_func"),
        (lambda_graph, r"is not picklable.*lambda"),
        (recursion_limit_graph, r"builtins\.list returned by .* is not picklable.*RecursionError"),
    ]:
        job_def = graph_def.to_job(resource_defs=resources(tmp_path))
        with pytest.raises(dg.DagsterInvariantViolationError, match=pattern):
            job_def.execute_in_process()
        assert all_entries(tmp_path) == [], f"{graph_def.name} left {all_entries(tmp_path)}"


def get_assets_defs(tmp_path: Path, partitions_def: dg.PartitionsDefinition | None = None) -> dg.Definitions:
    asset1_key_prefix = ["one", "two", "three"]

    @dg.asset(key_prefix=["one", "two", "three"], partitions_def=partitions_def)
    def asset1():
        return [1, 2, 3]

    @dg.asset(
        key_prefix=["four", "five"],
        ins={"asset1": dg.AssetIn(key_prefix=asset1_key_prefix)},
        partitions_def=partitions_def,
    )
    def asset2(asset1):
        return [*asset1, 4]

    return dg.Definitions(
        assets=[asset1, asset2], jobs=[dg.define_asset_job("a")], resources=resources(tmp_path)
    )


@freeze_time(FROZEN)
def test_fs_io_manager_handles_assets(tmp_path: Path) -> None:
    """Ports test_fs_io_manager.py::test_fs_io_manager_handles_assets."""
    result = get_assets_defs(tmp_path).get_job_def("a").execute_in_process()
    assert result.success

    assert len(handled_outputs(result)) == 2

    assert os.path.isfile(tmp_path / f"one__two__three__asset1_{TODAY_STAMP}.pkl.gz")
    assert read_cache("one__two__three__asset1", TODAY, str(tmp_path)) == [1, 2, 3]

    loaded_input_events = loaded_inputs(result)
    assert len(loaded_input_events) == 1
    assert loaded_input_events[0].event_specific_data.upstream_step_key.endswith("asset1")

    assert os.path.isfile(tmp_path / f"four__five__asset2_{TODAY_STAMP}.pkl.gz")
    assert read_cache("four__five__asset2", TODAY, str(tmp_path)) == [1, 2, 3, 4]


def test_fs_io_manager_partitioned(tmp_path: Path) -> None:
    """Ports test_fs_io_manager.py::test_fs_io_manager_partitioned."""
    defs = get_assets_defs(tmp_path, partitions_def=dg.DailyPartitionsDefinition(start_date="2020-02-01"))
    result = defs.get_job_def("a").execute_in_process(partition_key="2020-05-03")
    assert result.success

    assert len(handled_outputs(result)) == 2

    assert os.path.isfile(tmp_path / "one__two__three__asset1_20200503.pkl.gz")
    assert read_cache("one__two__three__asset1", "2020-05-03", str(tmp_path)) == [1, 2, 3]

    loaded_input_events = loaded_inputs(result)
    assert len(loaded_input_events) == 1
    assert loaded_input_events[0].event_specific_data.upstream_step_key.endswith("asset1")

    assert os.path.isfile(tmp_path / "four__five__asset2_20200503.pkl.gz")
    assert read_cache("four__five__asset2", "2020-05-03", str(tmp_path)) == [1, 2, 3, 4]


class NoPartitionsPartitionMapping(dg.PartitionMapping):
    """Maps every downstream partition to no upstream partition (test_fs_io_manager.py)."""

    def get_upstream_mapped_partitions_result_for_partitions(
        self,
        downstream_partitions_subset: Any,
        downstream_partitions_def: Any,
        upstream_partitions_def: dg.PartitionsDefinition,
        current_time: datetime | None = None,
        dynamic_partitions_store: Any = None,
    ) -> UpstreamPartitionsResult:
        return UpstreamPartitionsResult(
            partitions_subset=upstream_partitions_def.empty_subset(),
            required_but_nonexistent_subset=upstream_partitions_def.empty_subset(),
        )

    def get_downstream_partitions_for_partitions(
        self,
        upstream_partitions_subset: Any,
        upstream_partitions_def: Any,
        downstream_partitions_def: Any,
        current_time: datetime | None = None,
        dynamic_partitions_store: Any = None,
    ) -> Any:
        raise NotImplementedError()

    def validate_partition_mapping(
        self, upstream_partitions_def: Any, downstream_partitions_def: Any
    ) -> None:
        pass

    @property
    def description(self) -> str:
        return "no upstream partitions"


def test_fs_io_manager_partitioned_no_partitions(tmp_path: Path) -> None:
    """Ports test_fs_io_manager.py::test_fs_io_manager_partitioned_no_partitions: an input mapped to
    no upstream partition is None."""
    partitions_def = dg.DailyPartitionsDefinition(start_date="2020-02-01")

    @dg.asset(partitions_def=partitions_def)
    def asset1() -> None: ...

    @dg.asset(
        partitions_def=partitions_def,
        ins={"asset1": dg.AssetIn(partition_mapping=NoPartitionsPartitionMapping())},
    )
    def asset2(asset1):
        assert asset1 is None

    assert dg.materialize(
        [asset1.to_source_asset(), asset2], partition_key="2020-02-01", resources=resources(tmp_path)
    ).success


@freeze_time(FROZEN)
def test_fs_io_manager_partitioned_multi_asset(tmp_path: Path) -> None:
    """Ports test_fs_io_manager.py::test_fs_io_manager_partitioned_multi_asset."""
    partitions = dg.StaticPartitionsDefinition(["A"])

    @dg.multi_asset(
        partitions_def=partitions,
        outs={
            "out_1": dg.AssetOut(key=dg.AssetKey("upstream_asset_1")),
            "out_2": dg.AssetOut(key=dg.AssetKey("upstream_asset_2")),
        },
    )
    def upstream_asset() -> tuple[dg.Output[int], dg.Output[int]]:
        return (dg.Output(1, output_name="out_1"), dg.Output(2, output_name="out_2"))

    @dg.asset(partitions_def=partitions)
    def downstream_asset(upstream_asset_1: int) -> int:
        del upstream_asset_1
        return 2

    foo_job = dg.Definitions(
        assets=[upstream_asset, downstream_asset],
        resources=resources(tmp_path),
        jobs=[dg.define_asset_job("TheJob")],
    ).get_job_def("TheJob")

    result = foo_job.execute_in_process(partition_key="A")
    assert result.success
    assert len(handled_outputs(result)) == 3


def test_fs_io_manager_partitioned_multi_asset_daily(tmp_path: Path) -> None:
    """Daily variant of test_fs_io_manager.py::test_fs_io_manager_partitioned_multi_asset."""
    partitions = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    received: list[int] = []

    @dg.multi_asset(
        partitions_def=partitions,
        outs={
            "out_1": dg.AssetOut(key=dg.AssetKey("upstream_asset_1")),
            "out_2": dg.AssetOut(key=dg.AssetKey("upstream_asset_2")),
        },
    )
    def upstream_asset() -> tuple[dg.Output[int], dg.Output[int]]:
        return (dg.Output(1, output_name="out_1"), dg.Output(2, output_name="out_2"))

    @dg.asset(partitions_def=partitions)
    def downstream_asset(upstream_asset_1: int) -> int:
        received.append(upstream_asset_1)
        return 2

    foo_job = dg.Definitions(
        assets=[upstream_asset, downstream_asset],
        resources=resources(tmp_path),
        jobs=[dg.define_asset_job("TheJob")],
    ).get_job_def("TheJob")

    result = foo_job.execute_in_process(partition_key="2024-01-15")
    assert result.success
    assert len(handled_outputs(result)) == 3
    assert received == [1]
    assert read_cache("upstream_asset_2", "2024-01-15", str(tmp_path)) == 2


@freeze_time(FROZEN)
def test_fs_io_manager_partitioned_graph_backed_asset(tmp_path: Path) -> None:
    """Ports test_fs_io_manager.py::test_fs_io_manager_partitioned_graph_backed_asset."""
    partitions_def = dg.StaticPartitionsDefinition(["A"])
    job_def = _graph_backed_defs(tmp_path, partitions_def).get_job_def("a")
    result = job_def.execute_in_process(partition_key="A")
    assert result.success
    assert len(handled_outputs(result)) == 4


def _graph_backed_defs(tmp_path: Path, partitions_def: dg.PartitionsDefinition) -> dg.Definitions:
    @dg.asset(key_prefix=["the", "cool", "prefix"], partitions_def=partitions_def)
    def one():
        return 1

    @dg.op
    def add_1(inp):
        return inp + 1

    @dg.graph
    def four(inp):
        return add_1(add_1(add_1(inp)))

    four_asset = dg.AssetsDefinition.from_graph(
        four,
        keys_by_input_name={"inp": dg.AssetKey(["the", "cool", "prefix", "one"])},
        partitions_def=partitions_def,
    )
    return dg.Definitions(
        assets=[one, four_asset], jobs=[dg.define_asset_job("a")], resources=resources(tmp_path)
    )


@freeze_time(FROZEN)
def test_fs_io_manager_partitioned_graph_backed_asset_daily(tmp_path: Path) -> None:
    """Daily variant of test_fs_io_manager.py::test_fs_io_manager_partitioned_graph_backed_asset: the
    inner ops' outputs are unpartitioned outputs inside a partitioned run (run on a later day)."""
    partitions_def = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    result = (
        _graph_backed_defs(tmp_path, partitions_def)
        .get_job_def("a")
        .execute_in_process(partition_key="2024-01-15")
    )
    assert result.success

    assert len(handled_outputs(result)) == 4

    assert os.path.isfile(tmp_path / "the__cool__prefix__one_20240115.pkl.gz")
    assert read_cache("the__cool__prefix__one", "2024-01-15", str(tmp_path)) == 1

    loaded_input_events = loaded_inputs(result)
    assert len(loaded_input_events) == 3
    assert loaded_input_events[0].event_specific_data.upstream_step_key.endswith("one")

    assert os.path.isfile(tmp_path / "four_20240115.pkl.gz")
    assert read_cache("four", "2024-01-15", str(tmp_path)) == 4


@freeze_time(FROZEN)
def test_fs_io_manager_ops_in_a_partitioned_job(tmp_path: Path) -> None:
    """test_fs_io_manager.py::test_fs_io_manager's op job (define_job), run as a daily-partitioned
    job for a past day: op outputs are unpartitioned outputs inside a partitioned run."""
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    received: list[Any] = []

    @dg.op
    def op_a(_context):
        return [1, 2, 3]

    @dg.op
    def op_b(_context, _df):
        received.append(_df)
        return 1

    @dg.job(partitions_def=daily)
    def partitioned_op_job() -> None:
        op_b(op_a())

    defs = dg.Definitions(jobs=[partitioned_op_job], resources=resources(tmp_path))
    result = defs.get_job_def("partitioned_op_job").execute_in_process(partition_key="2024-01-15")
    assert result.success
    assert received == [[1, 2, 3]]
    assert result.output_for_node("op_b") == 1


def test_fs_io_manager_partitioned_self_dep(tmp_path: Path) -> None:
    """Ports test_fs_io_manager.py::test_fs_io_manager_partitioned_self_dep: the first partition of a
    self-dependent asset maps to no upstream partition and receives None."""

    @dg.asset(
        partitions_def=dg.DailyPartitionsDefinition(start_date="2020-01-01"),
        ins={
            "a": dg.AssetIn(partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1))
        },
    )
    def a(a: int | None) -> int:
        return 1 if a is None else a + 1

    result = dg.materialize([a], partition_key="2020-01-01", resources=resources(tmp_path))
    assert result.success
    assert result.output_for_node("a") == 1

    result2 = dg.materialize([a], partition_key="2020-01-02", resources=resources(tmp_path))
    assert result2.success
    assert result2.output_for_node("a") == 2


@freeze_time(FROZEN)
def test_fs_io_manager_none(tmp_path: Path) -> None:
    """Ports test_fs_io_manager.py::test_fs_io_manager_none (`-> None` assets: nothing stored).

    Adapted to dagster 1.13: a Nothing-typed output never reaches the IO manager, so there is no
    HANDLED_OUTPUT event at all (Dagster's older test saw two, each without metadata; fs_io_manager
    gives 0 events in 1.13 too).
    """

    @dg.asset
    def asset1() -> None:
        pass

    @dg.asset(deps=[asset1])
    def asset2() -> None:
        pass

    result = dg.materialize([asset1, asset2], resources=resources(tmp_path))

    assert cache_files(tmp_path) == []
    handled_output_events = handled_outputs(result)
    assert len(handled_output_events) == 0

    for event in handled_output_events:
        assert len(event.event_specific_data.metadata) == 0


@freeze_time(FROZEN)
def test_fs_io_manager_ops_none(tmp_path: Path) -> None:
    """Ports test_fs_io_manager.py::test_fs_io_manager_ops_none (dagster 1.13: no HANDLED_OUTPUT
    event for Nothing outputs, see test_fs_io_manager_none)."""

    @dg.op
    def op1() -> None:
        pass

    @dg.op(ins={"abc": dg.In(dg.Nothing)})
    def op2() -> None:
        pass

    @dg.job
    def job1() -> None:
        op2(op1())

    result = (
        dg.Definitions(jobs=[job1], resources=resources(tmp_path)).get_job_def("job1").execute_in_process()
    )

    assert result.success
    assert cache_files(tmp_path) == []
    handled_output_events = handled_outputs(result)
    assert len(handled_output_events) == 0

    for event in handled_output_events:
        assert len(event.event_specific_data.metadata) == 0


@freeze_time(FROZEN)
def test_multipartitions_fs_io_manager(tmp_path: Path) -> None:
    """Ports test_fs_io_manager.py::test_multipartitions_fs_io_manager."""
    multipartitions_def = dg.MultiPartitionsDefinition(
        {"a": dg.StaticPartitionsDefinition(["a", "b"]), "1": dg.StaticPartitionsDefinition(["1", "2"])}
    )

    @dg.asset(partitions_def=multipartitions_def)
    def asset1():
        return 1

    @dg.asset(partitions_def=multipartitions_def)
    def asset2(asset1):
        return asset1

    my_job = dg.Definitions(
        assets=[asset1, asset2], jobs=[dg.define_asset_job("my_job")], resources=resources(tmp_path)
    ).get_job_def("my_job")
    result = my_job.execute_in_process(partition_key=dg.MultiPartitionKey({"a": "a", "1": "1"}))
    assert len(handled_outputs(result)) == 2


def test_multipartitions_fs_io_manager_with_time_dimension(tmp_path: Path) -> None:
    """Variant of test_fs_io_manager.py::test_multipartitions_fs_io_manager with a daily dimension."""
    multipartitions_def = dg.MultiPartitionsDefinition(
        {"a": dg.StaticPartitionsDefinition(["a", "b"]), "date": dg.DailyPartitionsDefinition("2020-01-01")}
    )

    @dg.asset(partitions_def=multipartitions_def)
    def asset1(context: AssetExecutionContext):
        return str(context.partition_key)

    @dg.asset(partitions_def=multipartitions_def)
    def asset2(asset1):
        return asset1

    my_job = dg.Definitions(
        assets=[asset1, asset2], jobs=[dg.define_asset_job("my_job")], resources=resources(tmp_path)
    ).get_job_def("my_job")
    for a in ("b", "a"):
        result = my_job.execute_in_process(partition_key=dg.MultiPartitionKey({"a": a, "date": "2020-01-01"}))
        assert len(handled_outputs(result)) == 2
        assert result.output_for_node("asset2") == f"{a}|2020-01-01"
    assert read_cache("asset2__a", "2020-01-01", str(tmp_path)) == "a|2020-01-01"
    assert read_cache("asset2__b", "2020-01-01", str(tmp_path)) == "b|2020-01-01"


def test_backcompat_multipartitions_fs_io_manager(tmp_path: Path) -> None:
    """Ports test_fs_io_manager.py::test_backcompat_multipartitions_fs_io_manager (without the
    backcompat file: the upstream partition c|2020-04-22 is materialized instead)."""
    composite = dg.MultiPartitionsDefinition(
        {
            "abc": dg.StaticPartitionsDefinition(["a", "b", "c", "d", "e", "f"]),
            "date": dg.DailyPartitionsDefinition(start_date="2020-01-01"),
        }
    )

    @dg.asset(partitions_def=composite)
    def multipartitioned(context):
        return 1

    @dg.asset(partitions_def=composite)
    def downstream_of_multipartitioned(multipartitioned):
        return 1

    my_job = dg.Definitions(
        assets=[multipartitioned, downstream_of_multipartitioned],
        jobs=[dg.define_asset_job("my_job")],
        resources=resources(tmp_path),
    ).get_job_def("my_job")
    assert my_job.execute_in_process(
        partition_key=dg.MultiPartitionKey({"abc": "c", "date": "2020-04-22"}),
        asset_selection=[dg.AssetKey("multipartitioned")],
    ).success

    # Upstream partition was never materialized, so this run should error (Dagster: FileNotFoundError
    # matching "c/2020-04-21"; ours names the missing file).
    with pytest.raises((FileNotFoundError, RuntimeError), match="multipartitioned__c_20200421"):
        my_job.execute_in_process(
            partition_key=dg.MultiPartitionKey({"abc": "c", "date": "2020-04-21"}),
            asset_selection=[dg.AssetKey("downstream_of_multipartitioned")],
        )

    result = my_job.execute_in_process(
        partition_key=dg.MultiPartitionKey({"abc": "c", "date": "2020-04-22"}),
        asset_selection=[dg.AssetKey("downstream_of_multipartitioned")],
    )
    assert result.success

    result = my_job.execute_in_process(partition_key=dg.MultiPartitionKey({"abc": "c", "date": "2020-04-22"}))
    assert result.success
    materializations = result.asset_materializations_for_node("multipartitioned")
    assert len(materializations) == 1

    def get_path_metadata_entry(materialization: dg.AssetMaterialization) -> Any:
        return materialization.metadata["path"]

    assert "multipartitioned__c_20200422" in get_path_metadata_entry(materializations[0]).path

    materializations = result.asset_materializations_for_node("downstream_of_multipartitioned")
    assert len(materializations) == 1
    assert "downstream_of_multipartitioned__c_20200422" in get_path_metadata_entry(materializations[0]).path


# =================================================================================================
# asset_defs_tests/test_partitioned_assets.py
# =================================================================================================


@freeze_time(FROZEN)
def test_two_partitioned_assets_job(tmp_path: Path) -> None:
    """Ports test_partitioned_assets.py::test_two_partitioned_assets_job (materialize_to_memory ->
    our manager)."""

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b", "c", "d"]))
    def upstream():
        pass

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b", "c", "d"]))
    def downstream(upstream):
        assert upstream is None

    result = dg.materialize(assets=[upstream, downstream], partition_key="b", resources=resources(tmp_path))
    assert [m.partition for m in result.asset_materializations_for_node("upstream")] == ["b"]
    assert [m.partition for m in result.asset_materializations_for_node("downstream")] == ["b"]


def test_two_partitioned_assets_job_daily(tmp_path: Path) -> None:
    """Daily variant of test_partitioned_assets.py::test_two_partitioned_assets_job: an asset
    returning None, consumed downstream, gives the consumer None."""
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")

    @dg.asset(partitions_def=daily)
    def upstream():
        pass

    @dg.asset(partitions_def=daily)
    def downstream(upstream):
        assert upstream is None

    result = dg.materialize(
        assets=[upstream, downstream], partition_key="2024-01-02", resources=resources(tmp_path)
    )
    assert [m.partition for m in result.asset_materializations_for_node("upstream")] == ["2024-01-02"]
    assert [m.partition for m in result.asset_materializations_for_node("downstream")] == ["2024-01-02"]


def test_none_output_is_not_replaced_by_an_earlier_day(tmp_path: Path) -> None:
    """test_partitioned_assets.py::test_two_partitioned_assets_job's None output, after an earlier
    day stored a value: Dagster's pickling managers store None, so the consumer gets None, never the
    earlier day's data."""
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    received: dict[str, Any] = {}

    @dg.asset(partitions_def=daily)
    def upstream(context: AssetExecutionContext):
        return "value of 2024-01-01" if context.partition_key == "2024-01-01" else None

    @dg.asset(partitions_def=daily)
    def downstream(context: AssetExecutionContext, upstream):
        received[context.partition_key] = upstream

    for day in ("2024-01-01", "2024-01-02"):
        dg.materialize(assets=[upstream, downstream], partition_key=day, resources=resources(tmp_path))
    assert received == {"2024-01-01": "value of 2024-01-01", "2024-01-02": None}


def test_input_context_asset_partitions_time_window(tmp_path: Path) -> None:
    """Ports test_partitioned_assets.py::test_input_context_asset_partitions_time_window (the
    upstream returns None; the consumer receives None)."""
    partitions_def = dg.DailyPartitionsDefinition(start_date="2021-05-05")

    @dg.asset(partitions_def=partitions_def)
    def upstream_asset():
        pass

    @dg.asset(partitions_def=partitions_def)
    def downstream_asset(context, upstream_asset):
        assert context.asset_partitions_time_window_for_input("upstream_asset") == dg.TimeWindow(
            datetime(2021, 6, 6, tzinfo=dt.UTC), datetime(2021, 6, 7, tzinfo=dt.UTC)
        )
        assert upstream_asset is None

    assert dg.materialize(
        assets=[upstream_asset, downstream_asset],
        resources=resources(tmp_path),
        partition_key="2021-06-06",
    ).success

    assert dg.materialize(
        assets=[upstream_asset.to_source_asset(), downstream_asset],
        resources=resources(tmp_path),
        partition_key="2021-06-06",
    ).success


@NEVER_MATERIALIZED
def test_access_partition_keys_from_context_only_one_asset_partitioned(tmp_path: Path) -> None:
    """Ports test_partitioned_assets.py::
    test_access_partition_keys_from_context_only_one_asset_partitioned."""
    upstream_partitions_def = dg.StaticPartitionsDefinition(["a", "b", "c"])

    @dg.asset(partitions_def=upstream_partitions_def)
    def upstream_asset(context: AssetExecutionContext):
        assert context.partition_key == "b"

    @dg.asset
    def downstream_asset(upstream_asset):
        assert upstream_asset is None

    @dg.asset
    def double_downstream_asset(downstream_asset):
        assert downstream_asset is None

    result = dg.materialize(
        assets=[upstream_asset, downstream_asset, double_downstream_asset],
        resources=resources(tmp_path),
        partition_key="b",
    )
    assert [m.partition for m in result.asset_materializations_for_node("upstream_asset")] == ["b"]


@freeze_time(FROZEN)
def test_access_partition_keys_from_context_only_one_asset_partitioned_daily(tmp_path: Path) -> None:
    """Daily variant of test_partitioned_assets.py::test_access_partition_keys_from_context_only_one_
    asset_partitioned: unpartitioned assets inside a partitioned run (for a past day), then the same
    unpartitioned assets in an unpartitioned run."""
    upstream_partitions_def = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-04")
    all_days = {"2024-01-01": "2024-01-01", "2024-01-02": "2024-01-02", "2024-01-03": "2024-01-03"}
    received: list[Any] = []

    @dg.asset(partitions_def=upstream_partitions_def)
    def upstream_asset(context: AssetExecutionContext) -> str:
        return context.partition_key

    @dg.asset
    def downstream_asset(upstream_asset: dict[str, str]) -> dict[str, str]:
        assert upstream_asset == all_days
        return upstream_asset

    @dg.asset
    def double_downstream_asset(downstream_asset: dict[str, str]) -> int:
        received.append(downstream_asset)
        return len(downstream_asset)

    for day in ("2024-01-01", "2024-01-03"):
        assert dg.materialize([upstream_asset], partition_key=day, resources=resources(tmp_path)).success
    result = dg.materialize(
        assets=[upstream_asset, downstream_asset, double_downstream_asset],
        resources=resources(tmp_path),
        partition_key="2024-01-02",
    )
    assert [m.partition for m in result.asset_materializations_for_node("upstream_asset")] == ["2024-01-02"]
    assert received == [all_days]

    assert dg.materialize(
        assets=[upstream_asset.to_source_asset(), downstream_asset, double_downstream_asset],
        resources=resources(tmp_path),
    ).success
    assert received == [all_days, all_days]


def test_partition_range_single_run(tmp_path: Path) -> None:
    """Ports test_partitioned_assets.py::test_partition_range_single_run (`-> None` assets)."""
    partitions_def = dg.DailyPartitionsDefinition(start_date="2020-01-01")

    @dg.asset(partitions_def=partitions_def)
    def upstream_asset(context: AssetExecutionContext) -> None:
        key_range = dg.PartitionKeyRange(start="2020-01-01", end="2020-01-03")
        assert context.has_partition_key_range
        assert context.partition_key_range == key_range
        assert context.partition_keys == partitions_def.get_partition_keys_in_range(key_range)
        context.add_asset_metadata(metadata={"asset_unpartitioned": "yay"})
        context.add_output_metadata(metadata={"output_unpartitioned": "yay"})
        for i, key in enumerate(context.partition_keys):
            context.add_asset_metadata(partition_key=key, metadata={"index": i})

    @dg.asset(partitions_def=partitions_def, deps=["upstream_asset"])
    def downstream_asset(context: AssetExecutionContext) -> None:
        assert context.asset_partition_key_range_for_input("upstream_asset") == dg.PartitionKeyRange(
            start="2020-01-01", end="2020-01-03"
        )
        assert context.partition_key_range == dg.PartitionKeyRange(start="2020-01-01", end="2020-01-03")
        context.add_output_metadata(metadata={"unscoped": "yay"})

    the_job = dg.Definitions(
        assets=[upstream_asset, downstream_asset],
        jobs=[dg.define_asset_job("job")],
        resources=resources(tmp_path),
    ).get_job_def("job")

    result = the_job.execute_in_process(tags=range_tags("2020-01-01", "2020-01-03"))

    upstream_assets = result.asset_materializations_for_node("upstream_asset")
    downstream_assets = result.asset_materializations_for_node("downstream_asset")
    assert {m.partition for m in upstream_assets} == {"2020-01-01", "2020-01-02", "2020-01-03"}
    assert {m.partition for m in downstream_assets} == {"2020-01-01", "2020-01-02", "2020-01-03"}

    for i, mat in enumerate(upstream_assets):
        assert mat.metadata == {
            "asset_unpartitioned": dg.TextMetadataValue("yay"),
            "output_unpartitioned": dg.TextMetadataValue("yay"),
            "index": dg.IntMetadataValue(i),
        }
    for mat in downstream_assets:
        assert mat.metadata == {"unscoped": dg.TextMetadataValue("yay")}
    assert cache_files(tmp_path) == []


def test_multipartition_range_single_run(tmp_path: Path) -> None:
    """Ports test_partitioned_assets.py::test_multipartition_range_single_run."""
    partitions_def = dg.MultiPartitionsDefinition(
        {
            "date": dg.DailyPartitionsDefinition(start_date="2020-01-01"),
            "abc": dg.StaticPartitionsDefinition(["a", "b", "c"]),
        }
    )

    @dg.asset(partitions_def=partitions_def)
    def multipartitioned_asset(context: AssetExecutionContext) -> None:
        key_range = context.partition_key_range
        assert isinstance(key_range.start, dg.MultiPartitionKey)
        assert isinstance(key_range.end, dg.MultiPartitionKey)
        assert key_range.start == dg.MultiPartitionKey({"date": "2020-01-01", "abc": "a"})
        assert key_range.end == dg.MultiPartitionKey({"date": "2020-01-03", "abc": "a"})
        assert all(isinstance(key, dg.MultiPartitionKey) for key in context.partition_keys)

    the_job = dg.Definitions(
        assets=[multipartitioned_asset], jobs=[dg.define_asset_job("job")], resources=resources(tmp_path)
    ).get_job_def("job")

    result = the_job.execute_in_process(tags=range_tags("a|2020-01-01", "a|2020-01-03"))
    assert result.success
    assert {m.partition for m in result.asset_materializations_for_node("multipartitioned_asset")} == {
        dg.MultiPartitionKey({"date": "2020-01-01", "abc": "a"}),
        dg.MultiPartitionKey({"date": "2020-01-02", "abc": "a"}),
        dg.MultiPartitionKey({"date": "2020-01-03", "abc": "a"}),
    }


def test_multipartition_range_single_run_with_values(tmp_path: Path) -> None:
    """test_partitioned_assets.py::test_multipartition_range_single_run with stored values (one per
    partition) read back by a daily consumer of each region."""
    daily = dg.DailyPartitionsDefinition(start_date="2020-01-01")
    partitions_def = dg.MultiPartitionsDefinition(
        {"date": daily, "abc": dg.StaticPartitionsDefinition(["a", "b"])}
    )

    @dg.asset(partitions_def=partitions_def, backfill_policy=dg.BackfillPolicy.single_run())
    def multipartitioned_asset(context: AssetExecutionContext) -> dict[str, str]:
        return {str(key): f"value {key}" for key in context.partition_keys}

    job = dg.Definitions(
        assets=[multipartitioned_asset], jobs=[dg.define_asset_job("job")], resources=resources(tmp_path)
    ).get_job_def("job")
    assert job.execute_in_process(tags=range_tags("a|2020-01-01", "a|2020-01-03")).success
    for day in ("2020-01-01", "2020-01-02", "2020-01-03"):
        assert read_cache("multipartitioned_asset__a", day, str(tmp_path)) == f"value a|{day}"


@freeze_time(FROZEN)
def test_dynamic_partition_range_single_run(tmp_path: Path) -> None:
    """Ports test_partitioned_assets.py::test_dynamic_partition_range_single_run."""
    partitions_def = dg.DynamicPartitionsDefinition(name="yolo")

    @dg.asset(partitions_def=partitions_def)
    def dynamicpartitioned_asset(context: AssetExecutionContext) -> None:
        assert context.partition_key_range == dg.PartitionKeyRange("a", "c")
        assert len(context.partition_keys) == 3

    the_job = dg.Definitions(
        assets=[dynamicpartitioned_asset], jobs=[dg.define_asset_job("job")], resources=resources(tmp_path)
    ).get_job_def("job")
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("yolo", ["a", "b", "c"])
    result = the_job.execute_in_process(tags=range_tags("a", "c"), instance=instance)
    assert result.success
    assert {m.partition for m in result.asset_materializations_for_node("dynamicpartitioned_asset")} == {
        "a",
        "b",
        "c",
    }


@freeze_time(FROZEN)
def test_two_partitioned_multi_assets_job(tmp_path: Path) -> None:
    """Ports test_partitioned_assets.py::test_two_partitioned_multi_assets_job."""
    partitions_def = dg.StaticPartitionsDefinition(["a", "b", "c", "d"])
    _two_partitioned_multi_assets(tmp_path, partitions_def, "b")


def test_two_partitioned_multi_assets_job_daily(tmp_path: Path) -> None:
    """Daily variant of test_partitioned_assets.py::test_two_partitioned_multi_assets_job (two
    outputs of one multi-asset, each consumed by its own asset)."""
    partitions_def = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    _two_partitioned_multi_assets(tmp_path, partitions_def, "2024-01-15")


def _two_partitioned_multi_assets(tmp_path: Path, partitions_def: dg.PartitionsDefinition, key: str) -> None:
    received: dict[str, int] = {}

    @dg.multi_asset(
        outs={
            "out1": dg.AssetOut(key=dg.AssetKey("upstream_asset_1")),
            "out2": dg.AssetOut(key=dg.AssetKey("upstream_asset_2")),
        },
        partitions_def=partitions_def,
    )
    def upstream_asset():
        return (dg.Output(1, output_name="out1"), dg.Output(2, output_name="out2"))

    @dg.asset(partitions_def=partitions_def)
    def downstream_asset_1(upstream_asset_1: int) -> None:
        received["downstream_asset_1"] = upstream_asset_1

    @dg.asset(partitions_def=partitions_def)
    def downstream_asset_2(upstream_asset_2: int) -> None:
        received["downstream_asset_2"] = upstream_asset_2

    result = dg.materialize(
        assets=[upstream_asset, downstream_asset_1, downstream_asset_2],
        partition_key=key,
        resources=resources(tmp_path),
    )
    assert [(m.asset_key, m.partition) for m in result.asset_materializations_for_node("upstream_asset")] == [
        (dg.AssetKey(["upstream_asset_1"]), key),
        (dg.AssetKey(["upstream_asset_2"]), key),
    ]
    assert [m.partition for m in result.asset_materializations_for_node("downstream_asset_1")] == [key]
    assert [m.partition for m in result.asset_materializations_for_node("downstream_asset_2")] == [key]
    assert received == {"downstream_asset_1": 1, "downstream_asset_2": 2}


# =================================================================================================
# asset_defs_tests/partition_mapping_tests/test_asset_partition_mappings.py
# =================================================================================================


class TrailingWindowPartitionMapping(dg.PartitionMapping):
    """Maps each downstream partition to itself and the preceding partition (static "1".."3")."""

    def get_upstream_mapped_partitions_result_for_partitions(
        self,
        downstream_partitions_subset: Any,
        downstream_partitions_def: Any,
        upstream_partitions_def: dg.PartitionsDefinition,
        current_time: datetime | None = None,
        dynamic_partitions_store: Any = None,
    ) -> UpstreamPartitionsResult:
        assert downstream_partitions_subset
        partition_keys = list(downstream_partitions_subset.get_partition_keys())
        return UpstreamPartitionsResult(
            partitions_subset=upstream_partitions_def.empty_subset().with_partition_key_range(
                upstream_partitions_def,
                dg.PartitionKeyRange(str(max(1, int(partition_keys[0]) - 1)), partition_keys[-1]),
            ),
            required_but_nonexistent_subset=upstream_partitions_def.empty_subset(),
        )

    def get_downstream_partitions_for_partitions(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError()

    def validate_partition_mapping(
        self, upstream_partitions_def: Any, downstream_partitions_def: Any
    ) -> None:
        pass

    @property
    def description(self) -> str:
        return "trailing window"


@NEVER_MATERIALIZED
def test_access_partition_keys_from_context_non_identity_partition_mapping(tmp_path: Path) -> None:
    """Ports test_asset_partition_mappings.py::
    test_access_partition_keys_from_context_non_identity_partition_mapping."""
    upstream_partitions_def = dg.StaticPartitionsDefinition(["1", "2", "3"])
    downstream_partitions_def = dg.StaticPartitionsDefinition(["1", "2", "3"])

    @dg.asset(partitions_def=upstream_partitions_def)
    def upstream_asset(context):
        assert context.asset_partition_key_for_output() == "2"

    @dg.asset(
        partitions_def=downstream_partitions_def,
        ins={"upstream_asset": dg.AssetIn(partition_mapping=TrailingWindowPartitionMapping())},
    )
    def downstream_asset(context, upstream_asset):
        assert context.asset_partition_key_for_output() == "2"
        assert upstream_asset is None

    result = dg.materialize(
        [upstream_asset, downstream_asset], partition_key="2", resources=resources(tmp_path)
    )
    assert [m.partition for m in result.asset_materializations_for_node("downstream_asset")] == ["2"]


@freeze_time(FROZEN)
def test_from_graph(tmp_path: Path) -> None:
    """Ports test_asset_partition_mappings.py::test_from_graph."""
    _from_graph(tmp_path, dg.StaticPartitionsDefinition(["a", "b", "c", "d"]), "a")


def test_from_graph_daily(tmp_path: Path) -> None:
    """Daily variant of test_asset_partition_mappings.py::test_from_graph (graph-backed assets; the
    inner op returns its partition key instead of None so the value is checked)."""
    _from_graph(tmp_path, dg.DailyPartitionsDefinition(start_date="2024-01-01"), "2024-01-15")


def _from_graph(tmp_path: Path, partitions_def: dg.PartitionsDefinition, key: str) -> None:
    @dg.op
    def my_op(context):
        assert context.asset_partition_key_for_output() == key
        return f"upstream {key}"

    @dg.graph
    def upstream_asset():
        return my_op()

    @dg.op
    def my_op2(context, upstream_asset):
        assert context.asset_partition_key_for_input("upstream_asset") == key
        assert context.asset_partition_key_for_output() == key
        return upstream_asset

    @dg.graph
    def downstream_asset(upstream_asset):
        return my_op2(upstream_asset)

    defs = dg.Definitions(
        assets=[
            dg.AssetsDefinition.from_graph(upstream_asset, partitions_def=partitions_def),
            dg.AssetsDefinition.from_graph(
                downstream_asset,
                partitions_def=partitions_def,
                partition_mappings={"upstream_asset": dg.IdentityPartitionMapping()},
            ),
        ],
        jobs=[dg.define_asset_job("my_job")],
        resources=resources(tmp_path),
    )
    result = defs.get_job_def("my_job").execute_in_process(partition_key=key)
    assert result.success
    assert result.output_for_node("downstream_asset") == f"upstream {key}"


@NEVER_MATERIALIZED
def test_non_partitioned_depends_on_last_partition(tmp_path: Path) -> None:
    """Ports test_asset_partition_mappings.py::test_non_partitioned_depends_on_last_partition."""

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b", "c", "d"]))
    def upstream():
        pass

    @dg.asset(ins={"upstream": dg.AssetIn(partition_mapping=dg.LastPartitionMapping())})
    def downstream(upstream):
        assert upstream is None

    result = dg.materialize([upstream, downstream], partition_key="b", resources=resources(tmp_path))
    assert [m.partition for m in result.asset_materializations_for_node("upstream")] == ["b"]
    assert [m.partition for m in result.asset_materializations_for_node("downstream")] == [None]


DAYS_1_TO_4 = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-01-05")


def _upstream_of_days_1_to_4() -> dg.AssetsDefinition:
    @dg.asset(partitions_def=DAYS_1_TO_4)
    def upstream(context: AssetExecutionContext) -> str:
        return f"upstream {context.partition_key}"

    return upstream


@freeze_time(FROZEN)
def test_non_partitioned_depends_on_last_partition_daily(tmp_path: Path) -> None:
    """Daily variant of test_asset_partition_mappings.py::test_non_partitioned_depends_on_last_partition."""
    upstream = _upstream_of_days_1_to_4()
    received: list[Any] = []

    @dg.asset(ins={"upstream": dg.AssetIn(partition_mapping=dg.LastPartitionMapping())})
    def downstream(upstream):
        received.append(upstream)

    for day in ("2024-01-01", "2024-01-03", "2024-01-04"):
        assert dg.materialize([upstream], partition_key=day, resources=resources(tmp_path)).success
    result = dg.materialize([upstream, downstream], partition_key="2024-01-02", resources=resources(tmp_path))
    assert [m.partition for m in result.asset_materializations_for_node("upstream")] == ["2024-01-02"]
    assert [m.partition for m in result.asset_materializations_for_node("downstream")] == [None]
    assert received == ["upstream 2024-01-04"]


@NEVER_MATERIALIZED
def test_non_partitioned_depends_on_specific_partitions(tmp_path: Path) -> None:
    """Ports test_asset_partition_mappings.py::test_non_partitioned_depends_on_specific_partitions."""

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b", "c", "d"]))
    def upstream():
        pass

    @dg.asset(
        ins={"upstream": dg.AssetIn(partition_mapping=dg.SpecificPartitionsPartitionMapping(["a", "b"]))}
    )
    def downstream_a_b(upstream):
        assert upstream is None

    result = dg.materialize([upstream, downstream_a_b], partition_key="b", resources=resources(tmp_path))
    assert [m.partition for m in result.asset_materializations_for_node("upstream")] == ["b"]


@freeze_time(FROZEN)
def test_non_partitioned_depends_on_specific_partitions_daily(tmp_path: Path) -> None:
    """Daily variant of test_asset_partition_mappings.py::
    test_non_partitioned_depends_on_specific_partitions."""
    upstream = _upstream_of_days_1_to_4()
    received: list[Any] = []

    @dg.asset(
        ins={
            "upstream": dg.AssetIn(
                partition_mapping=dg.SpecificPartitionsPartitionMapping(["2024-01-01", "2024-01-03"])
            )
        }
    )
    def downstream_1_3(upstream):
        received.append(upstream)

    for day in ("2024-01-01", "2024-01-03", "2024-01-04"):
        assert dg.materialize([upstream], partition_key=day, resources=resources(tmp_path)).success
    result = dg.materialize(
        [upstream, downstream_1_3], partition_key="2024-01-02", resources=resources(tmp_path)
    )
    assert [m.partition for m in result.asset_materializations_for_node("upstream")] == ["2024-01-02"]
    assert received == [{"2024-01-01": "upstream 2024-01-01", "2024-01-03": "upstream 2024-01-03"}]


@NEVER_MATERIALIZED
def test_non_partitioned_depends_on_all_partitions(tmp_path: Path) -> None:
    """Ports test_asset_partition_mappings.py::test_non_partitioned_depends_on_all_partitions."""

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b", "c", "d"]))
    def upstream():
        pass

    @dg.asset(ins={"upstream": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
    def downstream(upstream):
        assert upstream is None

    result = dg.materialize([upstream, downstream], partition_key="b", resources=resources(tmp_path))
    assert [m.partition for m in result.asset_materializations_for_node("upstream")] == ["b"]


@freeze_time(FROZEN)
def test_non_partitioned_depends_on_all_partitions_daily(tmp_path: Path) -> None:
    """Daily variant of test_asset_partition_mappings.py::test_non_partitioned_depends_on_all_partitions
    (the unpartitioned consumer runs inside the partitioned run, as in Dagster's test)."""
    upstream = _upstream_of_days_1_to_4()
    received: list[Any] = []

    @dg.asset(ins={"upstream": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
    def downstream(upstream):
        received.append(upstream)

    for day in ("2024-01-01", "2024-01-03", "2024-01-04"):
        assert dg.materialize([upstream], partition_key=day, resources=resources(tmp_path)).success
    result = dg.materialize([upstream, downstream], partition_key="2024-01-02", resources=resources(tmp_path))
    assert [m.partition for m in result.asset_materializations_for_node("upstream")] == ["2024-01-02"]
    assert [m.partition for m in result.asset_materializations_for_node("downstream")] == [None]
    assert received == [{f"2024-01-0{d}": f"upstream 2024-01-0{d}" for d in range(1, 5)}]


def _daily_backfill(
    tmp_path: Path, first: str, last: str, prefix: list[str] | None = None
) -> dg.AssetsDefinition:
    """The daily `upstream` asset (value: its key), materialized first..last in one single-run backfill."""
    daily = dg.DailyPartitionsDefinition(start_date=first)

    @dg.asset(partitions_def=daily, key_prefix=prefix, backfill_policy=dg.BackfillPolicy.single_run())
    def upstream(context: AssetExecutionContext) -> dict[str, str]:
        return {key: key for key in context.partition_keys}

    assert dg.materialize([upstream], tags=range_tags(first, last), resources=resources(tmp_path)).success
    return upstream


def test_partition_keys_in_range(tmp_path: Path) -> None:
    """Ports test_asset_partition_mappings.py::test_partition_keys_in_range (daily -> weekly); the
    week's seven days are materialized (one backfill run) and the weekly asset is stored too."""
    daily_partition_keys_for_week_2022_09_11 = [
        "2022-09-11",
        "2022-09-12",
        "2022-09-13",
        "2022-09-14",
        "2022-09-15",
        "2022-09-16",
        "2022-09-17",
    ]
    upstream = _daily_backfill(tmp_path, "2022-09-11", "2022-09-17")

    @dg.asset(partitions_def=dg.WeeklyPartitionsDefinition(start_date="2022-09-11"))
    def downstream(context, upstream):
        assert context.asset_partition_keys_for_input("upstream") == daily_partition_keys_for_week_2022_09_11
        assert upstream == {key: key for key in daily_partition_keys_for_week_2022_09_11}
        return sorted(upstream.values())

    result = dg.materialize(
        [upstream.to_source_asset(), downstream], partition_key="2022-09-11", resources=resources(tmp_path)
    )
    assert result.success
    assert read_cache("downstream", "2022-09-11", str(tmp_path)) == daily_partition_keys_for_week_2022_09_11


def test_partition_keys_in_range_monthly(tmp_path: Path) -> None:
    """Monthly variant of test_asset_partition_mappings.py::test_partition_keys_in_range (daily ->
    monthly -> daily): a month file is dated the 1st, and a day reads its month."""
    upstream = _daily_backfill(tmp_path, "2022-09-01", "2022-09-30")
    september = [f"2022-09-{d:02d}" for d in range(1, 31)]
    received: list[Any] = []

    @dg.asset(partitions_def=dg.MonthlyPartitionsDefinition(start_date="2022-09-01"))
    def monthly(context, upstream):
        assert context.asset_partition_keys_for_input("upstream") == september
        assert upstream == {key: key for key in september}
        return len(upstream)

    @dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2022-09-01"))
    def daily_of_month(monthly):
        received.append(monthly)

    assert dg.materialize(
        [upstream.to_source_asset(), monthly], partition_key="2022-09-01", resources=resources(tmp_path)
    ).success
    assert read_cache("monthly", "2022-09-01", str(tmp_path)) == 30
    assert dg.materialize(
        [monthly.to_source_asset(), daily_of_month], partition_key="2022-09-17", resources=resources(tmp_path)
    ).success
    assert received == [30]


def test_dependency_resolution_partition_mapping(tmp_path: Path) -> None:
    """Ports test_asset_partition_mappings.py::test_dependency_resolution_partition_mapping (a
    two-day window; the earlier day is materialized first)."""

    @dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2020-01-01"), key_prefix=["staging"])
    def upstream(context):
        partition_date_str = context.partition_key
        return partition_date_str

    @dg.asset(
        partitions_def=dg.DailyPartitionsDefinition(start_date="2020-01-01"),
        key_prefix=["staging"],
        ins={
            "upstream": dg.AssetIn(
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=0),
            )
        },
    )
    def downstream(context, upstream):
        assert context.asset_partition_keys_for_input("upstream") == ["2020-01-01", "2020-01-02"]
        context.log.info(upstream)
        return upstream

    assert dg.materialize([upstream], partition_key="2020-01-01", resources=resources(tmp_path)).success
    result = dg.materialize([upstream, downstream], resources=resources(tmp_path), partition_key="2020-01-02")
    assert result.output_for_node("staging__downstream") == {
        "2020-01-01": "2020-01-01",
        "2020-01-02": "2020-01-02",
    }
    assert read_cache("staging__upstream", "2020-01-02", str(tmp_path)) == "2020-01-02"


@freeze_time(FROZEN)
def test_multipartitions_def_partition_mapping_infer_identity(tmp_path: Path) -> None:
    """Ports test_asset_partition_mappings.py::test_multipartitions_def_partition_mapping_infer_identity."""
    composite = dg.MultiPartitionsDefinition(
        {
            "abc": dg.StaticPartitionsDefinition(["a", "b", "c"]),
            "123": dg.StaticPartitionsDefinition(["1", "2", "3"]),
        }
    )

    @dg.asset(partitions_def=composite)
    def upstream(context):
        return 1

    @dg.asset(partitions_def=composite)
    def downstream(context, upstream):
        assert context.asset_partition_keys_for_input("upstream") == context.asset_partition_keys_for_output()
        return 1

    job = dg.Definitions(
        assets=[upstream, downstream], jobs=[dg.define_asset_job("foo")], resources=resources(tmp_path)
    ).get_job_def("foo")
    assert job.execute_in_process(partition_key=dg.MultiPartitionKey({"abc": "a", "123": "1"})).success


@freeze_time(FROZEN)
def test_multipartitions_def_partition_mapping_infer_single_dim_to_multi(tmp_path: Path) -> None:
    """Ports test_asset_partition_mappings.py::
    test_multipartitions_def_partition_mapping_infer_single_dim_to_multi."""
    abc_def = dg.StaticPartitionsDefinition(["a", "b", "c"])
    composite = dg.MultiPartitionsDefinition(
        {"abc": abc_def, "123": dg.StaticPartitionsDefinition(["1", "2", "3"])}
    )

    @dg.asset(partitions_def=abc_def)
    def upstream(context):
        return 1

    @dg.asset(partitions_def=composite)
    def downstream(context, upstream):
        assert context.asset_partition_keys_for_input("upstream") == ["a"]
        return 1

    dg.materialize([upstream], resources=resources(tmp_path), partition_key="a")
    dg.materialize(
        [downstream, upstream.to_source_asset()],
        resources=resources(tmp_path),
        partition_key=dg.MultiPartitionKey({"abc": "a", "123": "1"}),
    )


def test_multipartitions_def_partition_mapping_infer_single_dim_to_multi_daily(tmp_path: Path) -> None:
    """Time-dimension variant of test_asset_partition_mappings.py::test_multipartitions_def_partition_
    mapping_infer_single_dim_to_multi: daily -> daily x region."""
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    composite = dg.MultiPartitionsDefinition(
        {"date": daily, "region": dg.StaticPartitionsDefinition(["eu", "us"])}
    )

    @dg.asset(partitions_def=daily)
    def upstream(context):
        assert context.asset_partition_keys_for_output("result") == [context.partition_key]
        return f"upstream {context.partition_key}"

    @dg.asset(partitions_def=composite)
    def downstream(context, upstream):
        assert context.asset_partition_keys_for_input("upstream") == ["2024-01-02"]
        assert context.asset_partition_keys_for_output("result") == [
            dg.MultiPartitionKey({"date": "2024-01-02", "region": "eu"})
        ]
        return upstream

    assert (
        AssetGraph.from_assets([upstream, downstream]).get_partition_mapping(downstream.key, upstream.key)
        == dg.MultiToSingleDimensionPartitionMapping()
    )

    for day in ("2024-01-01", "2024-01-02", "2024-01-03"):
        dg.materialize([upstream], resources=resources(tmp_path), partition_key=day)
    result = dg.materialize(
        [downstream, upstream.to_source_asset()],
        resources=resources(tmp_path),
        partition_key=dg.MultiPartitionKey({"date": "2024-01-02", "region": "eu"}),
    )
    assert result.output_for_node("downstream") == "upstream 2024-01-02"
    assert read_cache("downstream__eu", "2024-01-02", str(tmp_path)) == "upstream 2024-01-02"


@freeze_time(FROZEN)
def test_multipartitions_def_partition_mapping_infer_multi_to_single_dim(tmp_path: Path) -> None:
    """Ports test_asset_partition_mappings.py::
    test_multipartitions_def_partition_mapping_infer_multi_to_single_dim."""
    abc_def = dg.StaticPartitionsDefinition(["a", "b", "c"])
    composite = dg.MultiPartitionsDefinition(
        {"abc": abc_def, "123": dg.StaticPartitionsDefinition(["1", "2", "3"])}
    )
    a_multipartition_keys = {
        dg.MultiPartitionKey(kv)
        for kv in [{"abc": "a", "123": "1"}, {"abc": "a", "123": "2"}, {"abc": "a", "123": "3"}]
    }

    @dg.asset(partitions_def=composite)
    def upstream(context):
        return 1

    @dg.asset(partitions_def=abc_def)
    def downstream(context, upstream):
        assert set(context.asset_partition_keys_for_input("upstream")) == a_multipartition_keys
        return 1

    for pk in a_multipartition_keys:
        dg.materialize([upstream], resources=resources(tmp_path), partition_key=pk)
    dg.materialize([downstream, upstream.to_source_asset()], resources=resources(tmp_path), partition_key="a")


def test_multipartitions_def_partition_mapping_infer_multi_to_single_dim_daily(tmp_path: Path) -> None:
    """Time-dimension variant of test_asset_partition_mappings.py::test_multipartitions_def_partition_
    mapping_infer_multi_to_single_dim: daily x region -> daily gets every region of its day."""
    daily = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    composite = dg.MultiPartitionsDefinition(
        {"date": daily, "region": dg.StaticPartitionsDefinition(["eu", "us"])}
    )
    day_keys = {dg.MultiPartitionKey({"date": "2024-01-02", "region": r}) for r in ("eu", "us")}

    @dg.asset(partitions_def=composite)
    def upstream(context):
        return f"upstream {context.partition_key}"

    @dg.asset(partitions_def=daily)
    def downstream(context, upstream):
        assert set(context.asset_partition_keys_for_input("upstream")) == day_keys
        return upstream

    for day in ("2024-01-01", "2024-01-02"):
        for region in ("eu", "us"):
            pk = dg.MultiPartitionKey({"date": day, "region": region})
            assert dg.materialize([upstream], resources=resources(tmp_path), partition_key=pk).success
    result = dg.materialize(
        [downstream, upstream.to_source_asset()], resources=resources(tmp_path), partition_key="2024-01-02"
    )
    assert result.output_for_node("downstream") == {
        "2024-01-02|eu": "upstream 2024-01-02|eu",
        "2024-01-02|us": "upstream 2024-01-02|us",
    }


def test_partition_mapping_with_asset_deps(tmp_path: Path) -> None:
    """Ports test_asset_partition_mappings.py::test_partition_mapping_with_asset_deps (None outputs,
    deps without loading)."""
    partitions_def = dg.DailyPartitionsDefinition(start_date="2023-08-15")

    @dg.asset(partitions_def=partitions_def)
    def upstream():
        return

    @dg.asset(
        partitions_def=partitions_def,
        deps=[
            dg.AssetDep(
                upstream, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
            )
        ],
    )
    def downstream(context: AssetExecutionContext) -> None:
        upstream_key = datetime.strptime(context.asset_partition_key_for_input("upstream"), "%Y-%m-%d")
        current_partition_key = datetime.strptime(context.partition_key, "%Y-%m-%d")
        assert current_partition_key - upstream_key == timedelta(days=1)

    assert dg.materialize(
        [upstream, downstream], partition_key="2023-08-20", resources=resources(tmp_path)
    ).success

    asset_1 = dg.AssetSpec(key="asset_1")
    asset_2 = dg.AssetSpec(key="asset_2")
    asset_1_partition_mapping = dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1)
    asset_2_partition_mapping = dg.TimeWindowPartitionMapping(start_offset=-2, end_offset=-2)
    deps = [
        dg.AssetDep(asset=asset_1, partition_mapping=asset_1_partition_mapping),
        dg.AssetDep(asset=asset_2, partition_mapping=asset_2_partition_mapping),
    ]
    asset_3 = dg.AssetSpec(key="asset_3", deps=deps)
    asset_4 = dg.AssetSpec(key="asset_4", deps=deps)

    @dg.multi_asset(specs=[asset_1, asset_2], partitions_def=partitions_def)
    def multi_asset_1():
        return

    @dg.multi_asset(specs=[asset_3, asset_4], partitions_def=partitions_def)
    def multi_asset_2(context: AssetExecutionContext):
        asset_1_key = datetime.strptime(context.asset_partition_key_for_input("asset_1"), "%Y-%m-%d")
        asset_2_key = datetime.strptime(context.asset_partition_key_for_input("asset_2"), "%Y-%m-%d")
        current_partition_key = datetime.strptime(context.partition_key, "%Y-%m-%d")
        assert current_partition_key - asset_1_key == timedelta(days=1)
        assert current_partition_key - asset_2_key == timedelta(days=2)
        return

    assert dg.materialize(
        [multi_asset_1, multi_asset_2], partition_key="2023-08-20", resources=resources(tmp_path)
    ).success


def test_self_dependent_partition_mapping_with_asset_deps(tmp_path: Path) -> None:
    """Ports test_asset_partition_mappings.py::test_self_dependent_partition_mapping_with_asset_deps."""
    partitions_def = dg.DailyPartitionsDefinition(start_date="2023-08-15")

    @dg.asset(
        partitions_def=partitions_def,
        deps=[
            dg.AssetDep(
                "self_dependent",
                partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1),
            )
        ],
    )
    def self_dependent(context: AssetExecutionContext) -> None:
        upstream_key = datetime.strptime(context.asset_partition_key_for_input("self_dependent"), "%Y-%m-%d")
        current_partition_key = datetime.strptime(context.partition_key, "%Y-%m-%d")
        assert current_partition_key - upstream_key == timedelta(days=1)

    assert dg.materialize([self_dependent], partition_key="2023-08-20", resources=resources(tmp_path)).success


# =================================================================================================
# execution_tests/dynamic_tests/test_dynamic_execution.py
# =================================================================================================


@dg.op(tags={"third": "3"})
def multiply_by_two(context, y):
    context.log.info("multiply_by_two is returning " + str(y * 2))
    return y * 2


@dg.op(tags={"second": "2"})
def multiply_inputs(context, y, ten):
    context.log.info("multiply_inputs is returning " + str(y * ten))
    return y * ten


@dg.op
def emit_ten(_):
    return 10


@dg.op
def echo(_, x: int) -> int:
    return x


@dg.op(config_schema={"range": dg.Field(int, is_required=False, default_value=3)})
def num_range(context) -> int:
    return context.op_config["range"]


@dg.op(
    out=dg.DynamicOut(),
    config_schema={"fail": dg.Field(bool, is_required=False, default_value=False)},
    tags={"first": "1"},
)
def emit(context, num: int = 3):
    if context.op_config["fail"]:
        raise Exception("FAILURE")

    for i in range(num):
        yield dg.DynamicOutput(value=i, mapping_key=str(i))


@dg.op
def sum_numbers(_, nums):
    return sum(nums)


@dg.op(out=dg.DynamicOut())
def dynamic_echo(_, nums):
    for x in nums:
        yield dg.DynamicOutput(value=x, mapping_key=str(x))


@dg.job
def dynamic_pipeline() -> None:
    numbers = emit(num_range())
    dynamic = numbers.map(lambda num: multiply_by_two(multiply_inputs(num, emit_ten())))
    n = multiply_by_two.alias("double_total")(sum_numbers(dynamic.collect()))
    echo(n)  # test transitive downstream of collect


@dg.job
def fan_repeat() -> None:
    one = emit(num_range()).map(multiply_by_two)
    two = dynamic_echo(one.collect()).map(multiply_by_two).map(echo)
    three = dynamic_echo(two.collect()).map(multiply_by_two)
    sum_numbers(three.collect())


def _step_keys_from_result(result: Any) -> set[str]:
    return {event.step_key for event in result.all_events if event.step_key is not None}


def _in_proc_cfg() -> dict[str, Any]:
    return {"execution": {"config": {"in_process": {}}}}


def _defs_with(tmp_path: Path, *jobs: dg.JobDefinition) -> dg.Definitions:
    return dg.Definitions(jobs=list(jobs), resources=resources(tmp_path))


@freeze_time(FROZEN)
def test_map(tmp_path: Path) -> None:
    """Ports test_dynamic_execution.py::test_map (in-process run config)."""
    job = _defs_with(tmp_path, dynamic_pipeline).get_job_def("dynamic_pipeline")
    result = job.execute_in_process(run_config=_in_proc_cfg())
    assert result.success
    keys = _step_keys_from_result(result)
    assert "multiply_inputs[0]" in keys
    assert "multiply_inputs[1]" in keys
    assert "multiply_inputs[2]" in keys
    assert result.output_for_node("multiply_inputs") == {"0": 0, "1": 10, "2": 20}
    assert result.output_for_node("multiply_by_two") == {"0": 0, "1": 20, "2": 40}
    assert result.output_for_node("sum_numbers") == 60
    assert result.output_for_node("double_total") == 120
    assert result.output_for_node("echo") == 120


@freeze_time(FROZEN)
def test_map_empty(tmp_path: Path) -> None:
    """Ports test_dynamic_execution.py::test_map_empty."""
    job = _defs_with(tmp_path, dynamic_pipeline).get_job_def("dynamic_pipeline")
    result = job.execute_in_process(run_config={"ops": {"num_range": {"config": {"range": 0}}}})
    assert result.success
    assert result.output_for_node("double_total") == 0


@freeze_time(FROZEN)
def test_map_selection(tmp_path: Path) -> None:
    """Ports test_dynamic_execution.py::test_map_selection."""
    job = _defs_with(tmp_path, dynamic_pipeline).get_job_def("dynamic_pipeline")
    result = job.execute_in_process(
        run_config={"ops": {"emit": {"inputs": {"num": 2}}}}, op_selection=["emit*", "emit_ten"]
    )
    assert result.success
    assert result.output_for_node("double_total") == 40


@freeze_time(FROZEN)
def test_composite_wrapping(tmp_path: Path) -> None:
    """Ports test_dynamic_execution.py::test_composite_wrapping (graphs mapped over a dynamic output)."""

    @dg.graph
    def do_multiple_steps(z):
        output = echo(z)
        return echo(output)

    @dg.job
    def shallow() -> None:
        emit().map(do_multiple_steps)

    result = _defs_with(tmp_path, shallow).get_job_def("shallow").execute_in_process()
    assert result.success
    assert result.output_for_node("do_multiple_steps") == {"0": 0, "1": 1, "2": 2}

    @dg.graph
    def inner(x):
        return echo(x)

    @dg.graph
    def middle(y):
        return inner(y)

    @dg.graph
    def outer(z):
        return middle(z)

    @dg.job
    def deep() -> None:
        emit().map(outer)

    result = _defs_with(tmp_path, deep).get_job_def("deep").execute_in_process()
    assert result.success
    assert result.output_for_node("outer") == {"0": 0, "1": 1, "2": 2}


@freeze_time(FROZEN)
def test_fan_out_in_out_in(tmp_path: Path) -> None:
    """Ports test_dynamic_execution.py::test_fan_out_in_out_in (in-process run config)."""
    job = _defs_with(tmp_path, fan_repeat).get_job_def("fan_repeat")
    result = job.execute_in_process(run_config=_in_proc_cfg())
    assert result.success
    assert result.output_for_node("sum_numbers") == 24  # (0, 1, 2) x 2 x 2 x 2 = (0, 8, 16)

    empty_result = job.execute_in_process(run_config={"ops": {"num_range": {"config": {"range": 0}}}})
    assert empty_result.success
    assert empty_result.output_for_node("sum_numbers") == 0


@freeze_time(FROZEN)
def test_multi_collect(tmp_path: Path) -> None:
    """Ports test_dynamic_execution.py::test_multi_collect."""

    @dg.op
    def fan_in(_, x, y):
        return x + y

    @dg.job
    def double() -> None:
        nums_1 = emit()
        nums_2 = emit()
        fan_in(nums_1.collect(), nums_2.collect())

    result = _defs_with(tmp_path, double).get_job_def("double").execute_in_process()
    assert result.success
    assert result.output_for_node("fan_in") == [0, 1, 2, 0, 1, 2]


@freeze_time(FROZEN)
def test_fan_in_skips(tmp_path: Path) -> None:
    """Ports test_dynamic_execution.py::test_fan_in_skips (dagster 1.13 skips `skip_total`, which
    Dagster's older test said "arguably should skip"; fs_io_manager behaves the same)."""

    @dg.op(out={"nums": dg.Out(), "empty": dg.Out(), "skip": dg.Out(is_required=False)})
    def fork_logic() -> Iterator[dg.Output]:
        yield dg.Output([1, 2, 3], output_name="nums")
        yield dg.Output([], output_name="empty")

    @dg.op(out=dg.DynamicOut(int))
    def emit_dyn(vector):
        for i in vector:
            yield dg.DynamicOutput(value=i, mapping_key=f"input_{i}")

    @dg.op
    def total(items):
        return sum(items)

    @dg.job
    def dyn_fork() -> None:
        nums, empty, skip = fork_logic()
        total.alias("grand_total")(
            [
                total.alias("nums_total")(emit_dyn(nums).map(echo).collect()),
                total.alias("empty_total")(emit_dyn(empty).map(echo).collect()),
                total.alias("skip_total")(emit_dyn(skip).map(echo).collect()),
            ]
        )

    result = _defs_with(tmp_path, dyn_fork).get_job_def("dyn_fork").execute_in_process()
    assert result.success

    assert result.output_for_node("nums_total")
    assert result.output_for_node("empty_total") == 0

    # dagster 1.13 skips it (the older test saw 0 and said "arguably should skip")
    assert "skip_total" in {evt.step_key for evt in result.all_events if evt.is_step_skipped}

    assert result.output_for_node("grand_total") == 6


REEXECUTION_DIR_ENV = "DAGSTER_PORTED_TEST_CACHE_DIR"


def define_dynamic_job_for_reexecution() -> dg.JobDefinition:
    """dynamic_pipeline with our manager, for execute_job(reconstructable(...)): the directory comes
    from the environment so the job can be rebuilt from this module."""
    io = DatedCacheIOManager(directory=dg.EnvVar(REEXECUTION_DIR_ENV))
    return dg.Definitions(jobs=[dynamic_pipeline], resources={"io_manager": io}).get_job_def(
        "dynamic_pipeline"
    )


@pytest.mark.integration  # a multi-second Dagster scenario (several runs on one instance)
@freeze_time(FROZEN)
def test_partial_reexecute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ports test_dynamic_execution.py::test_partial_reexecute (in-process run config): re-executed
    steps load the parent run's outputs through the IO manager."""
    monkeypatch.setenv(REEXECUTION_DIR_ENV, str(tmp_path))
    with dg.instance_for_test() as instance:
        result_1 = dg.execute_job(
            dg.reconstructable(define_dynamic_job_for_reexecution),
            instance=instance,
            run_config=_in_proc_cfg(),
        )
        assert result_1.success

        with dg.execute_job(
            dg.reconstructable(define_dynamic_job_for_reexecution),
            instance=instance,
            run_config=_in_proc_cfg(),
            reexecution_options=dg.ReexecutionOptions(
                parent_run_id=result_1.run_id, step_selection=["sum_numbers*"]
            ),
        ) as result_2:
            assert result_2.success
            assert result_2.output_for_node("double_total") == 120

        with dg.execute_job(
            dg.reconstructable(define_dynamic_job_for_reexecution),
            instance=instance,
            run_config=_in_proc_cfg(),
            reexecution_options=dg.ReexecutionOptions(
                parent_run_id=result_1.run_id, step_selection=["multiply_by_two[1]*"]
            ),
        ) as result_3:
            assert result_3.success
            assert result_3.output_for_node("double_total") == 120


# =================================================================================================
# core_tests/test_multiple_outputs.py
# =================================================================================================


@freeze_time(FROZEN)
def test_multiple_outputs(tmp_path: Path) -> None:
    """Ports test_multiple_outputs.py::test_multiple_outputs, plus consumers of each output."""
    received: dict[str, Any] = {}

    @dg.op(name="multiple_outputs", ins={}, out={"output_one": dg.Out(), "output_two": dg.Out()})
    def multiple_outputs(_):
        yield dg.Output(output_name="output_one", value="foo")
        yield dg.Output(output_name="output_two", value="bar")

    @dg.op
    def consume_one(value):
        received["one"] = value

    @dg.op
    def consume_two(value):
        received["two"] = value

    @dg.job
    def multiple_outputs_job() -> None:
        one, two = multiple_outputs()
        consume_one(one)
        consume_two(two)

    result = (
        _defs_with(tmp_path, multiple_outputs_job).get_job_def("multiple_outputs_job").execute_in_process()
    )
    assert result.output_for_node("multiple_outputs", output_name="output_one") == "foo"
    assert result.output_for_node("multiple_outputs", output_name="output_two") == "bar"

    with pytest.raises(dg.DagsterInvariantViolationError):
        result.output_for_node("multiple_outputs", "not_defined")

    assert received == {"one": "foo", "two": "bar"}


@freeze_time(FROZEN)
def test_multiple_outputs_only_emit_one(tmp_path: Path) -> None:
    """Ports test_multiple_outputs.py::test_multiple_outputs_only_emit_one."""
    received: list[Any] = []

    @dg.op(
        name="multiple_outputs", ins={}, out={"output_one": dg.Out(), "output_two": dg.Out(is_required=False)}
    )
    def multiple_outputs(_):
        yield dg.Output(output_name="output_one", value="foo")

    @dg.op(name="downstream_one", ins={"some_input": dg.In()}, out={})
    def downstream_one(_, some_input):
        received.append(some_input)

    @dg.op
    def downstream_two(_, some_input):
        del some_input
        raise Exception("do not call me")

    @dg.job
    def multiple_outputs_only_emit_one_job() -> None:
        output_one, output_two = multiple_outputs()
        downstream_one(output_one)
        downstream_two(output_two)

    result = (
        _defs_with(tmp_path, multiple_outputs_only_emit_one_job)
        .get_job_def("multiple_outputs_only_emit_one_job")
        .execute_in_process()
    )
    assert result.success

    output_events = result.filter_events(
        lambda evt: evt.step_key == "multiple_outputs" and evt.is_successful_output
    )
    assert len(output_events) == 1
    assert output_events[0].event_specific_data.step_output_handle.output_name == "output_one"

    with pytest.raises(dg.DagsterInvariantViolationError):
        result.output_for_node("not_present")

    step_skipped_events = result.filter_events(lambda evt: evt.is_step_skipped)
    assert len(step_skipped_events) == 1
    assert step_skipped_events[0].step_key == "downstream_two"
    assert received == ["foo"]


# =================================================================================================
# Prefix collisions: two assets of one Definitions must never share a cache file.
# =================================================================================================

COLLISION_DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01")
SALES_BY_REGION = dg.MultiPartitionsDefinition(
    {"date": COLLISION_DAILY, "region": dg.StaticPartitionsDefinition(["eu", "us"])}
)


def _collision_defs(tmp_path: Path) -> dg.Definitions:
    """`sales` (daily x region) and `sales/eu` (daily): both map to the prefix `sales__eu`; and
    `sales__eu` (one key part) maps there too."""

    @dg.asset(partitions_def=SALES_BY_REGION)
    def sales(context: AssetExecutionContext) -> str:
        by_dim = context.partition_key.keys_by_dimension
        return f"sales[{by_dim['region']}] {by_dim['date']}"

    @dg.asset(key=["sales", "eu"], partitions_def=COLLISION_DAILY)
    def sales_eu(context: AssetExecutionContext) -> str:
        return f"sales/eu {context.partition_key}"

    @dg.multi_asset(
        outs={"out": dg.AssetOut(key=dg.AssetKey("sales__eu"))},
        partitions_def=COLLISION_DAILY,
        name="flat_sales_eu",
    )
    def flat_sales_eu(context: AssetExecutionContext) -> str:
        return f"sales__eu {context.partition_key}"

    return dg.Definitions(
        assets=[sales, sales_eu, flat_sales_eu],
        jobs=[
            dg.define_asset_job("sales_job", selection=[dg.AssetKey("sales")]),
            dg.define_asset_job("sales_eu_job", selection=[dg.AssetKey(["sales", "eu"])]),
            dg.define_asset_job("flat_sales_eu_job", selection=[dg.AssetKey("sales__eu")]),
        ],
        resources=resources(tmp_path),
    )


SALES = dg.AssetKey("sales")
SALES_EU = dg.AssetKey(["sales", "eu"])
FLAT_SALES_EU = dg.AssetKey("sales__eu")
JOB_OF = {SALES: "sales_job", SALES_EU: "sales_eu_job", FLAT_SALES_EU: "flat_sales_eu_job"}


def _partition(key: dg.AssetKey, day: str) -> str | dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"date": day, "region": "eu"}) if key == SALES else day


def _expected_value(key: dg.AssetKey, day: str) -> str:
    return {SALES: f"sales[eu] {day}", SALES_EU: f"sales/eu {day}", FLAT_SALES_EU: f"sales__eu {day}"}[key]


def _error_text(error: BaseException) -> str:
    """The messages of an exception and its causes (no tracebacks: they quote test source)."""
    texts, seen = [], set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(texts)


def _key_forms(key: dg.AssetKey) -> list[str]:
    return [key.to_user_string(), str(key.path), repr(key), "/".join(key.path)]


def _names_asset(text: str, key: dg.AssetKey, others: list[dg.AssetKey]) -> bool:
    """Whether `text` names `key` (as sales/eu, ['sales', 'eu'], AssetKey(...)) and not merely as
    part of another key or of a file name (sales__eu_20240101)."""
    for other in others:
        if other != key and len(other.path) > len(key.path):
            for form in _key_forms(other):
                text = text.replace(form, " ")
    if len(key.path) > 1:
        return any(form in text for form in _key_forms(key))
    return re.search(rf"(?<![\w/]){re.escape(key.path[0])}(?![\w/])", text) is not None


def _materialize(defs: dg.Definitions, key: dg.AssetKey, day: str) -> str | None:
    """None if the materialization succeeded, else its error text."""
    try:
        result = defs.get_job_def(JOB_OF[key]).execute_in_process(partition_key=_partition(key, day))
    except Exception as e:  # any refusal is acceptable if it names both assets
        return _error_text(e)
    assert result.success
    return None


def _assert_never_shared(
    defs: dg.Definitions, steps: list[tuple[dg.AssetKey, str]], reads: list[tuple[dg.AssetKey, str, str]]
) -> None:
    """Materialize `steps` in order. Each either succeeds, or fails with an error naming both
    colliding assets. Then every read (key, day, wanted value) of an asset whose materialization of
    that value succeeded gives exactly that value: never the other asset's data."""
    keys = sorted({key for key, _day in steps}, key=lambda k: k.path)
    succeeded: set[tuple[dg.AssetKey, str]] = set()
    for key, day in steps:
        error = _materialize(defs, key, day)
        if error is None:
            succeeded.add((key, day))
            continue
        for named in keys:
            assert _names_asset(error, named, keys), (
                f"materializing {key.to_user_string()} failed without naming "
                f"{named.to_user_string()}:\n{error}"
            )
    for key, day, wanted in reads:
        source_day = wanted.rsplit(" ", 1)[-1]
        if (key, source_day) not in succeeded:
            continue
        value = defs.load_asset_value(key, partition_key=str(_partition(key, day)))
        assert value == wanted, f"{key.to_user_string()} {day}: got {value!r}, want {wanted!r}"


def test_collision_multi_partition_region_then_nested_key_same_day(tmp_path: Path) -> None:
    """`sales` eu|2024-01-01, then `sales/eu` 2024-01-01: never one file for both."""
    defs = _collision_defs(tmp_path)
    day = "2024-01-01"
    _assert_never_shared(
        defs,
        steps=[(SALES, day), (SALES_EU, day)],
        reads=[(SALES, day, _expected_value(SALES, day)), (SALES_EU, day, _expected_value(SALES_EU, day))],
    )


def test_collision_nested_key_then_multi_partition_region_same_day(tmp_path: Path) -> None:
    """`sales/eu` 2024-01-01, then `sales` eu|2024-01-01: never one file for both."""
    defs = _collision_defs(tmp_path)
    day = "2024-01-01"
    _assert_never_shared(
        defs,
        steps=[(SALES_EU, day), (SALES, day)],
        reads=[(SALES, day, _expected_value(SALES, day)), (SALES_EU, day, _expected_value(SALES_EU, day))],
    )


def test_collision_fallback_never_reads_the_other_assets_file(tmp_path: Path) -> None:
    """`sales/eu` on the 1st, `sales` eu on the 2nd: a read of `sales/eu` for the 3rd falls back to
    its own 1st, never to `sales`' 2nd (and `sales` eu for the 3rd to its own 2nd)."""
    defs = _collision_defs(tmp_path)
    _assert_never_shared(
        defs,
        steps=[(SALES_EU, "2024-01-01"), (SALES, "2024-01-02")],
        reads=[
            (SALES_EU, "2024-01-01", _expected_value(SALES_EU, "2024-01-01")),
            (SALES, "2024-01-02", _expected_value(SALES, "2024-01-02")),
            (SALES_EU, "2024-01-03", _expected_value(SALES_EU, "2024-01-01")),
            (SALES, "2024-01-03", _expected_value(SALES, "2024-01-02")),
        ],
    )


def test_collision_double_underscore_key_and_nested_key_same_day(tmp_path: Path) -> None:
    """`sales__eu` (one key part) and `sales/eu` on the same day: never one file for both."""
    defs = _collision_defs(tmp_path)
    day = "2024-01-01"
    _assert_never_shared(
        defs,
        steps=[(FLAT_SALES_EU, day), (SALES_EU, day)],
        reads=[
            (FLAT_SALES_EU, day, _expected_value(FLAT_SALES_EU, day)),
            (SALES_EU, day, _expected_value(SALES_EU, day)),
        ],
    )
