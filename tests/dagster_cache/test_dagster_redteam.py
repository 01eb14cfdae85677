"""Red-team findings for DatedCacheIOManager: each scenario once gave a consumer wrong data (or
overwrote a file silently) where Dagster's own FilesystemIOManager, run in the same scenario
(inline, as a control), is right. Each test failed before its fix."""

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

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)


def ours(tmp_path: Path) -> DatedCacheIOManager:
    return DatedCacheIOManager(directory=str(tmp_path / "ours"))


def dagsters(tmp_path: Path) -> dg.FilesystemIOManager:
    return dg.FilesystemIOManager(base_dir=str(tmp_path / "fs"))


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


# --- 3. op outputs are not scoped to their run ----------------------------------------------------

REGIONS = dg.StaticPartitionsDefinition(["eu", "us"])
NESTED: dict[str, Any] = {}


@dg.op
def extract(context: dg.OpExecutionContext) -> str:
    return f"rows of {context.partition_key}"


@dg.op
def meanwhile(context: dg.OpExecutionContext, rows: str) -> int:
    """While the eu run is between its steps, the us run of the same job runs (as two concurrent
    runs launched by a backfill or a sensor would)."""
    if context.partition_key == "eu":
        assert regional.execute_in_process(partition_key="us", resources={"io_manager": NESTED["io"]}).success
    return 0


@dg.op
def publish(rows: str, _after: int) -> str:
    return rows


@dg.job(partitions_def=REGIONS)
def regional() -> None:
    rows = extract()
    publish(rows, meanwhile(rows))


@freeze_time("2024-01-15 12:00:00")
def test_concurrent_runs_of_one_op_job_never_read_each_others_intermediates(tmp_path: Path) -> None:
    """Op outputs are `<node>__<output>_<day>`: two runs of one job on one day (here the eu and us
    partitions of a static-partitioned job) write the same file, so eu publishes us's rows."""
    for manager in (dagsters(tmp_path), ours(tmp_path)):
        NESTED["io"] = manager
        result = regional.execute_in_process(partition_key="eu", resources={"io_manager": manager})
        assert result.output_for_node("publish") == "rows of eu", type(manager).__name__


# --- 4. re-execution of a failed run loads another run's op output ------------------------------

DIR_ENV = "DAGSTER_REDTEAM_CACHE_DIR"
FLAKY = {"fail": True}


@dg.op(config_schema={"x": int})
def load_x(context: dg.OpExecutionContext) -> int:
    return context.op_config["x"]


@dg.op
def times_ten(load_x: int) -> int:
    if FLAKY["fail"]:
        raise RuntimeError("transient failure")
    return load_x * 10


@dg.job
def flaky_job() -> None:
    times_ten(load_x())


def define_flaky_job_ours() -> dg.JobDefinition:
    io = DatedCacheIOManager(directory=os.environ[DIR_ENV])
    return dg.Definitions(jobs=[flaky_job], resources={"io_manager": io}).get_job_def("flaky_job")


def define_flaky_job_fs() -> dg.JobDefinition:
    io = dg.FilesystemIOManager(base_dir=os.environ[DIR_ENV])
    return dg.Definitions(jobs=[flaky_job], resources={"io_manager": io}).get_job_def("flaky_job")


def _run_config(x: int) -> dict:
    return {"ops": {"load_x": {"config": {"x": x}}}, "execution": {"config": {"in_process": {}}}}


@pytest.mark.integration  # a multi-second Dagster scenario (several runs on one instance)
@freeze_time("2024-01-15 12:00:00")
def test_reexecution_from_failure_loads_the_parent_runs_op_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run 1 (x=1) fails in times_ten; run 2 (x=2) succeeds the same day; re-executing run 1 from
    failure must compute 1 * 10 from run 1's load_x output. Ours reads run 2's file: 20."""
    for define in (define_flaky_job_fs, define_flaky_job_ours):
        monkeypatch.setenv(DIR_ENV, str(tmp_path / define.__name__))
        job = dg.reconstructable(define)
        with dg.instance_for_test() as instance:
            FLAKY["fail"] = True
            first = dg.execute_job(job, instance=instance, run_config=_run_config(1))
            assert not first.success
            FLAKY["fail"] = False
            with dg.execute_job(job, instance=instance, run_config=_run_config(2)) as second:
                assert second.output_for_node("times_ten") == 20
            options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
            with dg.execute_job(
                job, instance=instance, run_config=_run_config(1), reexecution_options=options
            ) as again:
                assert again.success
                assert again.output_for_node("times_ten") == 10, define.__name__


# --- 5. the clash check misses op outputs ---------------------------------------------------------


@dg.asset(key=["load", "result"])
def load_result_asset() -> str:
    return "asset value"


@dg.asset(ins={"upstream": dg.AssetIn(key=["load", "result"])})
def load_result_reader(upstream: str) -> str:
    return upstream


@dg.op(name="load")
def load_op() -> str:
    return "op value"


@dg.op
def show(value: str) -> str:
    return value


@dg.job
def op_job() -> None:
    show(load_op())


@pytest.mark.integration  # a multi-second Dagster scenario (several runs on one instance)
@freeze_time("2024-01-15 12:00:00")
def test_an_op_output_never_overwrites_an_assets_file(tmp_path: Path) -> None:
    """Op `load`'s output `result` and asset ["load", "result"] of the same code location, bound to
    the same IO manager key, both write `load__result_<day>`: no clash error, and the asset's
    consumer receives the op's value."""
    for manager in (dagsters(tmp_path), ours(tmp_path)):
        defs = dg.Definitions(
            assets=[load_result_asset, load_result_reader],
            jobs=[
                op_job,
                dg.define_asset_job("write", selection=[load_result_asset]),
                dg.define_asset_job("read", selection=[load_result_reader]),
            ],
            resources={"io_manager": manager},
        )
        with dg.instance_for_test() as instance:
            assert defs.get_job_def("write").execute_in_process(instance=instance).success
            ran = defs.get_job_def("op_job").execute_in_process(instance=instance, raise_on_error=False)
            if ran.success:  # a clash error here would be fine too
                result = defs.get_job_def("read").execute_in_process(instance=instance)
                assert result.output_for_node("load_result_reader") == "asset value", type(manager).__name__


# --- 6. the same manager bound under two IO manager keys: clash not seen -------------------------

MULTI = dg.MultiPartitionsDefinition({"date": DAILY, "region": dg.StaticPartitionsDefinition(["eu"])})


@dg.asset(partitions_def=MULTI, key="sales")
def sales_by_region(context: dg.AssetExecutionContext) -> str:
    return "sales by region"


@dg.asset(partitions_def=DAILY, key=["sales", "eu"], io_manager_key="cache_io_manager")
def sales_eu() -> str:
    return "sales eu"


@dg.asset(partitions_def=DAILY, ins={"sales_eu": dg.AssetIn(key=["sales", "eu"])})
def sales_eu_reader(sales_eu: str) -> str:
    return sales_eu


def test_one_directory_under_two_io_manager_keys_still_refuses_a_clash(tmp_path: Path) -> None:
    """The clash check compares IO manager *keys*, not where they write: the same manager (the
    example code location's `cache_io_manager` beside a default `io_manager` on one directory) lets
    `sales` (region eu) overwrite `sales__eu` silently."""
    for manager in (dagsters(tmp_path), ours(tmp_path)):
        defs = dg.Definitions(
            assets=[sales_by_region, sales_eu, sales_eu_reader],
            resources={"io_manager": manager, "cache_io_manager": manager},
        )
        job = defs.resolve_implicit_global_asset_job_def()
        first = job.execute_in_process(
            asset_selection=[dg.AssetKey(["sales", "eu"])], partition_key="2024-01-03", raise_on_error=False
        )
        if not first.success:  # refused up front: fine, when the error names both assets
            [failure] = [e for e in first.all_events if e.event_type_value == "STEP_FAILURE"]
            message = str(failure.step_failure_data.error)
            assert "asset sales/eu and asset sales would both write" in message, message
            continue
        key = dg.MultiPartitionKey({"date": "2024-01-03", "region": "eu"})
        wrote = job.execute_in_process(
            asset_selection=[dg.AssetKey("sales")], partition_key=key, raise_on_error=False
        )
        if wrote.success:  # refusing it would be fine too
            result = job.execute_in_process(
                asset_selection=[dg.AssetKey("sales_eu_reader")], partition_key="2024-01-03"
            )
            assert result.output_for_node("sales_eu_reader") == "sales eu", type(manager).__name__


# --- 7. an unpartitioned asset written by today's partition in an eastern zone -------------------

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


# --- 8. README rules on single-run backfills -----------------------------------------------------


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
