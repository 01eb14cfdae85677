"""DatedCacheIOManager never hands a consumer wrong data where Dagster's own IO managers are right:
sub-daily partitions, op outputs in partitioned runs, dynamic outputs, None, unmapped inputs,
asset clashes, unpicklable outputs and staleness shown on the consumer."""

import threading
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest

from cache_utils import CacheNotFoundError, read_cache, save_cache
from dagster_cache import CachePartitionError, DatedCacheIOManager
from dagster_cache.prefixes import op_output_prefix

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)
HOURLY = dg.HourlyPartitionsDefinition(start_date="2024-01-01-00:00")


def io(tmp_path: Path, **kw: Any) -> DatedCacheIOManager:
    return DatedCacheIOManager(directory=str(tmp_path), **kw)


def files(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))


# --- sub-daily partitions: one file per window ----------------------------------------------


@dg.asset(partitions_def=HOURLY)
def hourly_reading(context: dg.AssetExecutionContext) -> int:
    return context.partition_time_window.start.hour


@dg.asset(partitions_def=DAILY,
          ins={"hourly_reading": dg.AssetIn(partition_mapping=dg.TimeWindowPartitionMapping())})
def daily_readings(hourly_reading: dict[str, int]) -> list[int]:
    return [hourly_reading[k] for k in sorted(hourly_reading)]


@pytest.mark.integration  # a multi-second Dagster scenario (several runs on one instance)
def test_hourly_partitions_get_a_file_each_and_a_daily_downstream_sees_every_hour(tmp_path: Path) -> None:
    for hour in range(24):
        assert dg.materialize([hourly_reading], partition_key=f"2024-01-15-{hour:02d}:00",
                              resources={"io_manager": io(tmp_path)}).success
    assert len(files(tmp_path)) == 24
    assert "hourly_reading__1300_20240115.pkl.gz" in files(tmp_path)
    assert read_cache("hourly_reading__1300", "2024-01-15", str(tmp_path)) == 13  # plain cache_utils
    result = dg.materialize([hourly_reading.to_source_asset(), daily_readings], partition_key="2024-01-15",
                            resources={"io_manager": io(tmp_path)})
    assert result.output_for_node("daily_readings") == list(range(24))


def test_twice_a_day_and_fifteen_minute_crons_are_sub_daily_too(tmp_path: Path) -> None:
    half_day = dg.TimeWindowPartitionsDefinition(cron_schedule="0 0,12 * * *", start="2024-01-01-00:00",
                                                 fmt="%Y-%m-%d-%H:%M")
    quarter = dg.TimeWindowPartitionsDefinition(cron_schedule="*/15 * * * *", start="2024-01-01-00:00",
                                                fmt="%Y-%m-%d-%H:%M")
    manager = io(tmp_path)
    for name, pdef, keys in (("half", half_day, ["2024-01-15-00:00", "2024-01-15-12:00"]),
                             ("quarter", quarter, ["2024-01-15-00:00", "2024-01-15-00:15"])):
        for key in keys:
            manager.handle_output(dg.build_output_context(asset_key=name, partition_key=key,
                                                          asset_partitions_def=pdef), key)
    assert files(tmp_path) == ["half__0000_20240115.pkl.gz", "half__1200_20240115.pkl.gz",
                               "quarter__0000_20240115.pkl.gz", "quarter__0015_20240115.pkl.gz"]


def test_weekly_and_monthly_partitions_keep_one_file_per_window_dated_by_its_start(tmp_path: Path) -> None:
    weekly = dg.WeeklyPartitionsDefinition(start_date="2024-01-07")
    monthly = dg.MonthlyPartitionsDefinition(start_date="2024-01-01")
    manager = io(tmp_path)
    manager.handle_output(dg.build_output_context(asset_key="w", partition_key="2024-01-14",
                                                  asset_partitions_def=weekly), "week")
    manager.handle_output(dg.build_output_context(asset_key="m", partition_key="2024-02-01",
                                                  asset_partitions_def=monthly), "month")
    assert files(tmp_path) == ["m_20240201.pkl.gz", "w_20240114.pkl.gz"]


# --- unpartitioned outputs inside a partitioned run -----------------------------------------


@dg.op
def inner_rows(context: dg.OpExecutionContext) -> list[str]:
    return [context.partition_key]


@dg.op
def inner_count(rows: list[str]) -> str:
    return f"{len(rows)}:{rows[0]}"


@dg.graph_asset(partitions_def=DAILY)
def graph_backed() -> str:
    return inner_count(inner_rows())


def test_graph_backed_partitioned_asset_backfills_a_past_day(tmp_path: Path) -> None:
    """Inner op outputs are written and read under the run's partition day, not today."""
    result = dg.materialize([graph_backed], partition_key="2024-01-03",
                            resources={"io_manager": io(tmp_path)})
    assert result.success
    assert read_cache("graph_backed", "2024-01-03", str(tmp_path)) == "1:2024-01-03"
    assert f"graph_backed.inner_rows.result@{result.run_id}_20240103.pkl.gz" in files(tmp_path)


@dg.job(partitions_def=dg.MultiPartitionsDefinition(
    {"date": DAILY, "region": dg.StaticPartitionsDefinition(["eu", "us"])}))
def regional_job() -> None:
    inner_count(inner_rows())


def test_op_outputs_of_concurrent_partition_runs_of_one_day_never_share_a_file(tmp_path: Path) -> None:
    for region in ("eu", "us"):
        key = dg.MultiPartitionKey({"date": "2024-01-03", "region": region})
        result = regional_job.execute_in_process(partition_key=key, resources={"io_manager": io(tmp_path)})
        assert result.output_for_node("inner_count") == f"1:{key}"
        prefix = f"inner_rows.result@{result.run_id}__{region}"
        assert read_cache(prefix, "2024-01-03", str(tmp_path)) == [f"2024-01-03|{region}"]


@dg.asset
def lookup() -> dict[str, int]:
    return {"x": 1}


@dg.asset(partitions_def=DAILY)
def enriched(lookup: dict[str, int]) -> int:
    return lookup["x"] + 1


def test_unpartitioned_asset_in_a_daily_run_is_written_and_read_under_its_day(tmp_path: Path) -> None:
    result = dg.materialize([lookup, enriched], partition_key="2024-01-03",
                            resources={"io_manager": io(tmp_path)})
    assert result.success
    assert files(tmp_path) == ["enriched_20240103.pkl.gz", "lookup_20240103.pkl.gz"]


# --- dynamic outputs ------------------------------------------------------------------------


@dg.op(out=dg.DynamicOut())
def emit() -> Any:
    for i in range(3):
        yield dg.DynamicOutput(i, mapping_key=f"k{i}")


@dg.op
def multiply_inputs(value: int) -> int:
    return value * 10


@dg.op
def gather(values: list[int]) -> list[int]:
    return sorted(values)


@dg.job
def dynamic_job() -> None:
    gather(emit().map(multiply_inputs).collect())


def test_dynamic_outputs_each_get_a_file_and_collect_sees_every_value(tmp_path: Path) -> None:
    result = dynamic_job.execute_in_process(resources={"io_manager": io(tmp_path)})
    assert result.output_for_node("gather") == [0, 10, 20]
    stamps = {name.rsplit("_", 1)[0] for name in files(tmp_path)}
    run = result.run_id
    assert {f"emit.result@k0@{run}", f"emit.result@k2@{run}", f"multiply_inputs.result@k1@{run}",
            f"gather.result@{run}"} <= stamps
    assert len(files(tmp_path)) == 3 + 3 + 1


def test_mapping_key_encoding_is_reversible() -> None:
    run = "0b3c2d1e-aaaa-4bbb-8ccc-123456789abc"
    prefix = op_output_prefix("graph.double[a_1]", "out", None, run_id=run)
    assert prefix == f"graph.double.out@a_1@{run}"
    assert op_output_prefix("emit", "result", "k_2") == "emit.result@k_2"
    assert prefix.split("@") == ["graph.double.out", "a_1", run]
    # A cache_prefix makes it a shared daily cache: no run, the mapping key still kept apart.
    assert op_output_prefix("emit", "result", "k_2", {"cache_prefix": "rates"}, run) == "rates@k_2"


# --- None outputs ---------------------------------------------------------------------------


@dg.asset(partitions_def=DAILY)
def maybe_nothing(context: dg.AssetExecutionContext) -> int | None:
    return None if context.partition_key == "2024-01-05" else 7


@dg.asset(partitions_def=DAILY)
def sees_none(maybe_nothing: int | None) -> str:
    return repr(maybe_nothing)


def test_a_none_output_reaches_the_consumer_and_never_an_older_day(tmp_path: Path) -> None:
    resources = {"io_manager": io(tmp_path)}
    assert dg.materialize([maybe_nothing], partition_key="2024-01-04", resources=resources).success
    result = dg.materialize([maybe_nothing, sees_none], partition_key="2024-01-05", resources=resources)
    assert result.output_for_node("sees_none") == "None"


@dg.asset
def side_effect_only() -> None:
    return None


def test_nothing_typed_output_writes_no_file(tmp_path: Path) -> None:
    assert dg.materialize([side_effect_only], resources={"io_manager": io(tmp_path)}).success
    assert files(tmp_path) == []


# --- an input mapped to no upstream partition -----------------------------------------------


@dg.asset(partitions_def=DAILY, ins={"running": dg.AssetIn(
    "running", partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1))})
def running(context: dg.AssetExecutionContext, running: int | None) -> int:
    return (running or 0) + 1


def test_first_partition_of_a_self_dependent_asset_gets_none_like_dagster(tmp_path: Path) -> None:
    resources = {"io_manager": io(tmp_path)}
    instance = dg.DagsterInstance.ephemeral()
    first = dg.materialize([running], partition_key="2024-01-01", resources=resources, instance=instance)
    assert first.output_for_node("running") == 1
    logs = [e.user_message for e in instance.all_logs(first.run_id)]
    assert "input 'running': no partition of running maps to this run; loading None" in logs
    assert dg.materialize([running], partition_key="2024-01-02", resources=resources).output_for_node(
        "running") == 2


# --- range loads ----------------------------------------------------------------------------


@dg.asset(partitions_def=DAILY)
def daily_sales(context: dg.AssetExecutionContext) -> int:
    return 100


@dg.asset(partitions_def=dg.WeeklyPartitionsDefinition(start_date="2024-01-07"),
          ins={"daily_sales": dg.AssetIn(partition_mapping=dg.TimeWindowPartitionMapping())})
def weekly_total(daily_sales: dict[str, int]) -> int:
    return sum(daily_sales.values())


def test_a_weekly_sum_never_double_counts_a_missing_day(tmp_path: Path) -> None:
    for day in (7, 8, 9, 11, 12, 13):  # the 10th is missing
        save_cache(100, "daily_sales", f"2024-01-{day:02d}", str(tmp_path))
    with pytest.raises(CacheNotFoundError, match="2024-01-10"):
        dg.materialize([daily_sales.to_source_asset(), weekly_total], partition_key="2024-01-07",
                       resources={"io_manager": io(tmp_path)})
    result = dg.materialize([daily_sales.to_source_asset(), weekly_total], partition_key="2024-01-07",
                            resources={"io_manager": io(tmp_path, fill_missing_partitions=True)})
    assert result.output_for_node("weekly_total") == 700  # opted in: the 10th counts the 9th's data


# --- two assets never share a file ----------------------------------------------------------


REGIONS = dg.StaticPartitionsDefinition(["eu", "us"])
REGIONAL = dg.MultiPartitionsDefinition({"date": DAILY, "region": REGIONS})


@dg.asset(partitions_def=REGIONAL, name="sales")
def sales_by_region() -> str:
    return "multi"


@dg.asset(partitions_def=DAILY, key=["sales", "eu"])
def sales_eu() -> str:
    return "keyed"


@dg.asset(partitions_def=DAILY, key=["sales", "summary"])
def sales_summary() -> str:
    return "summary"


def test_an_asset_whose_files_another_asset_writes_is_refused_naming_both(tmp_path: Path) -> None:
    defs = dg.Definitions(assets=[sales_by_region, sales_eu, sales_summary],
                          resources={"io_manager": io(tmp_path)})
    job = defs.resolve_implicit_global_asset_job_def()
    with pytest.raises(CachePartitionError, match=r"sales/eu.*sales|sales.*sales/eu"):
        job.execute_in_process(asset_selection=[dg.AssetKey(["sales", "eu"])], partition_key="2024-01-03")
    assert files(tmp_path) == []
    # A prefix that merely starts like another asset's is no clash: sales__summary is not a region.
    result = job.execute_in_process(asset_selection=[dg.AssetKey(["sales", "summary"])],
                                    partition_key="2024-01-03")
    assert result.success and files(tmp_path) == ["sales__summary_20240103.pkl.gz"]


def test_an_asset_bound_to_another_io_manager_does_not_clash(tmp_path: Path) -> None:
    other = dg.asset(partitions_def=DAILY, key=["sales", "eu"], io_manager_key="elsewhere")(lambda: "x")
    defs = dg.Definitions(assets=[sales_by_region, other],
                          resources={"io_manager": io(tmp_path), "elsewhere": dg.InMemoryIOManager()})
    job = defs.resolve_implicit_global_asset_job_def()
    key = dg.MultiPartitionKey({"date": "2024-01-03", "region": "eu"})
    assert job.execute_in_process(asset_selection=[dg.AssetKey("sales")], partition_key=key).success


# --- unpicklable outputs --------------------------------------------------------------------


@dg.asset
def holds_a_lock() -> Any:
    return {"lock": threading.Lock()}


def test_unpicklable_output_names_the_asset_and_type_and_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(dg.DagsterInvariantViolationError,
                       match=r"builtins\.dict returned by asset holds_a_lock is not picklable.*lock"):
        dg.materialize([holds_a_lock], resources={"io_manager": io(tmp_path)})
    assert list(tmp_path.iterdir()) == []  # no temp file either


# --- staleness on the consumer's own materialization ----------------------------------------


@dg.asset(partitions_def=DAILY)
def upstream_prices() -> int:
    return 1


@dg.asset(partitions_def=DAILY)
def priced(upstream_prices: int) -> int:
    return upstream_prices * 2


def test_consumer_materialization_and_run_say_which_upstream_day_was_used(tmp_path: Path) -> None:
    save_cache(5, "upstream_prices", "2024-01-08", str(tmp_path))
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([upstream_prices.to_source_asset(), priced], partition_key="2024-01-10",
                            resources={"io_manager": io(tmp_path)}, instance=instance)
    [mat] = result.asset_materializations_for_node("priced")
    stale = mat.metadata["dagster_cache/stale_inputs"].value
    assert stale == {"upstream_prices": {"used": str(tmp_path / "upstream_prices_20240108.pkl.gz"),
                                         "date_used": "2024-01-08", "date_wanted": "2024-01-10",
                                         "stale_days": 2, "asset": "upstream_prices"}}
    run = instance.get_run_by_id(result.run_id)
    assert run.tags["dagster_cache/stale_inputs"] == "upstream_prices from 2024-01-08 (2d)"
    # A fresh input leaves no such mark.
    save_cache(6, "upstream_prices", "2024-01-10", str(tmp_path))
    fresh = dg.materialize([upstream_prices.to_source_asset(), priced], partition_key="2024-01-10",
                           resources={"io_manager": io(tmp_path)}, instance=instance)
    [mat] = fresh.asset_materializations_for_node("priced")
    assert "dagster_cache/stale_inputs" not in mat.metadata
    assert "dagster_cache/stale_inputs" not in instance.get_run_by_id(fresh.run_id).tags
