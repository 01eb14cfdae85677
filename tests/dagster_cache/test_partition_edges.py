"""Partition edge cases: the repeated DST hour, dict-valued partitions, an unpartitioned asset
written from an eastern zone, single-run backfills.

Each scenario runs Dagster's own FilesystemIOManager beside DatedCacheIOManager as a control;
each once gave a consumer wrong data with no error, overwrote a file silently or refused a
legitimate definition, where the control was right (found by two red-team rounds on the IO
manager; each test failed before its fix)."""

import os
import threading
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest
from freezegun import freeze_time

from cache_utils import read_cache
from dagster_cache import DatedCacheIOManager
from tests.support.controls import dagsters, ours

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)




# --- 1. hourly partitions: the repeated hour of a DST fall-back ----------------------------------

NY_HOURLY = dg.HourlyPartitionsDefinition(
    start_date="2024-11-02-00:00", end_date="2024-11-04-00:00", timezone="America/New_York"
)
REPEATED_HOUR = ("2024-11-03-01:00", "2024-11-03-01:00-0500")  # Dagster's two keys: EDT, then EST


@dg.asset(partitions_def=NY_HOURLY)
def meter(context: dg.AssetExecutionContext) -> str:
    return context.partition_key


@dg.asset(partitions_def=NY_HOURLY)
def meter_echo(meter: str) -> str:
    return meter


def test_the_two_windows_of_the_repeated_dst_hour_do_not_share_a_file(tmp_path: Path) -> None:
    """Both 01:00 windows of 2024-11-03 in New York get slot `0100`: the EST hour overwrites the EDT
    hour and the EDT partition's consumer silently receives the EST value."""
    for manager in (dagsters(tmp_path), ours(tmp_path)):
        for key in REPEATED_HOUR:
            assert dg.materialize([meter], partition_key=key, resources={"io_manager": manager}).success
        for key in REPEATED_HOUR:
            result = dg.materialize(
                [meter.to_source_asset(), meter_echo], partition_key=key, resources={"io_manager": manager}
            )
            assert result.output_for_node("meter_echo") == key, type(manager).__name__


# --- 2. a `dict` annotation on a one-partition (identity-mapped) input --------------------------


@dg.asset(partitions_def=DAILY)
def rates() -> dict:
    return {"EURUSD": 1.08, "GBPUSD": 1.27}


@dg.asset(partitions_def=DAILY)
def pair_count(rates: dict) -> int:
    return len(rates)


@dg.asset(partitions_def=DAILY)
def eurusd(rates: dict) -> float:
    return rates.get("EURUSD", 0.0)


def test_a_dict_valued_partition_is_not_wrapped_in_a_partition_dict(tmp_path: Path) -> None:
    """Daily -> daily, identity mapping, the value is a dict and the input says `dict`: Dagster gives
    the value; ours gives {"2024-01-15": value}, so len() is 1 and .get() silently returns 0.0."""
    for manager in (dagsters(tmp_path), ours(tmp_path)):
        result = dg.materialize(
            [rates, pair_count, eurusd], partition_key="2024-01-15", resources={"io_manager": manager}
        )
        assert result.output_for_node("pair_count") == 2, type(manager).__name__
        assert result.output_for_node("eurusd") == 1.08, type(manager).__name__


# --- 3. an unpartitioned asset written by today's partition in an eastern zone -------------------

TOKYO = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1, timezone="Asia/Tokyo")


@dg.asset(partitions_def=TOKYO)
def tokyo_prices(context: dg.AssetExecutionContext) -> str:
    return context.partition_key


@dg.asset(deps=[tokyo_prices])
def snapshot(context: dg.AssetExecutionContext) -> str:
    return f"built in the run for {context.run.tags['dagster/partition']}"


@dg.asset
def snapshot_reader(snapshot: str) -> str:
    return snapshot


@freeze_time("2024-01-15 20:00:00")  # 2024-01-16 05:00 in Tokyo: today's Tokyo partition is the 16th
def test_the_newest_materialization_of_an_unpartitioned_asset_is_not_ignored(tmp_path: Path) -> None:
    """`snapshot` (unpartitioned) is written under the run's partition day, 2024-01-16. With the
    manager in the partitions' zone the reader gets it, as from Dagster's manager; in another zone
    (UTC: still the 15th) the writer warns that readers there will not see it until their tomorrow."""
    tokyo = DatedCacheIOManager(directory=str(tmp_path / "ours"), timezone="Asia/Tokyo")
    for manager in (dagsters(tmp_path), tokyo):
        for key in ("2024-01-15", "2024-01-16"):
            assert dg.materialize(
                [tokyo_prices, snapshot], partition_key=key, resources={"io_manager": manager}
            ).success
        result = dg.materialize(
            [snapshot.to_source_asset(), snapshot_reader], resources={"io_manager": manager}
        )
        assert result.output_for_node("snapshot_reader") == "built in the run for 2024-01-16", type(
            manager
        ).__name__
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([tokyo_prices, snapshot], partition_key="2024-01-16", instance=instance,
                            resources={"io_manager": ours(tmp_path)})
    warnings = [e.user_message for e in instance.all_logs(result.run_id) if e.level >= 30]
    assert any("under 2024-01-16 (the run's partition 2024-01-16), after today (2024-01-15) in timezone 'UTC'"
               in w for w in warnings), warnings


# --- 4. README rules on single-run backfills -----------------------------------------------------


@dg.asset(partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
def prices(context: dg.AssetExecutionContext) -> dict:  # the README's own example
    return {key: 100 + i for i, key in enumerate(context.partition_keys)}


def test_a_single_run_asset_run_for_one_partition_writes_its_value_not_the_dict(tmp_path: Path) -> None:
    """README: an asset with BackfillPolicy.single_run() returns {partition_key: value} and gets one
    file per day. Run for one partition (the daily schedule's run), the file holds the whole dict,
    while a range run of the same asset writes the value: one asset, two shapes of file."""
    manager = ours(tmp_path)
    run_range = {
        "dagster/asset_partition_range_start": "2024-01-01",
        "dagster/asset_partition_range_end": "2024-01-02",
    }
    assert dg.materialize([prices], tags=run_range, resources={"io_manager": manager}).success
    assert read_cache("prices", "2024-01-02", str(tmp_path / "ours")) == 101
    assert dg.materialize([prices], partition_key="2024-01-03", resources={"io_manager": manager}).success
    assert read_cache("prices", "2024-01-03", str(tmp_path / "ours")) == 100


@dg.asset(partitions_def=DAILY, backfill_policy=dg.BackfillPolicy.single_run())
def half_picklable(context: dg.AssetExecutionContext) -> dict:
    values: dict[str, Any] = {key: f"new {key}" for key in context.partition_keys}
    values[context.partition_keys[-1]] = threading.Lock()
    return values


def test_an_unpicklable_value_in_a_single_run_backfill_writes_nothing(tmp_path: Path) -> None:
    """README: an unpicklable output fails the step and nothing is written. In a single-run backfill
    the days before the unpicklable one are already written (over any previous files), although
    the step fails and no materialization is recorded."""
    run_range = {
        "dagster/asset_partition_range_start": "2024-01-01",
        "dagster/asset_partition_range_end": "2024-01-03",
    }
    with pytest.raises(dg.DagsterInvariantViolationError, match="not picklable"):
        dg.materialize([half_picklable], tags=run_range, resources={"io_manager": ours(tmp_path)})
    assert not (tmp_path / "ours").exists() or os.listdir(tmp_path / "ours") == []
