"""A fallback never makes the missing upstream partition look fresh; the consumer shows it instead.

Red-team history (issue 19, item 5): when a consumer fell back to yesterday's file, the IO manager
recorded input metadata, which Dagster stores as an observation of the upstream's *wanted*
partition; Dagster's time-partition freshness check then said "fresh, partition <today> has been
observed" although today's file did not exist.
"""

from pathlib import Path
from typing import Any

import dagster as dg
import pandas  # noqa: F401 - imported before the first freeze_time (pandas 3 segfaults otherwise)
import pytest
from freezegun import freeze_time

from dagster_cache import (
    DatedCacheIOManager,
    build_cache_checks,
    build_inputs_current_checks,
    build_stale_inputs_sensor,
)

LONDON = "Europe/London"  # on UTC in March
def _io(tmp_path: Path) -> dict[str, DatedCacheIOManager]:
    return {"io_manager": DatedCacheIOManager(directory=str(tmp_path), timezone=LONDON)}


DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1, timezone=LONDON)


@dg.asset(partitions_def=DAILY)
def sales(context: dg.AssetExecutionContext) -> dict:
    return {"day": context.partition_key}


@dg.asset(partitions_def=DAILY)
def report(sales: dict) -> dict:
    return {"from": sales["day"]}


@dg.asset
def rates() -> dict:
    return {"r": 1}


# Rebuilt when one of its checks fails: automation conditions see `inputs_current`.
@dg.asset(automation_condition=dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed()))
def summary(rates: dict) -> dict:
    return dict(rates)


ASSETS = [sales, report, rates, summary]


def _checks() -> dg.Definitions:
    return build_cache_checks(assets=[sales, rates], cb_time="06:30", timezone=LONDON,
                              consumers=[report, summary], error_after_days=2)


def _materialize(tmp_path: Path, instance: dg.DagsterInstance, asset: dg.AssetsDefinition,
                 partition: str | None = None) -> dg.ExecuteInProcessResult:
    """`asset` and its own checks (inputs_current for a consumer), as a UI launch would."""
    checks = _checks()
    selection = dg.AssetSelection.assets(asset)
    return dg.materialize([*ASSETS, *checks.asset_checks], partition_key=partition, instance=instance,
                          selection=selection,
                          resources=_io(tmp_path))


def _run_checks(tmp_path: Path, instance: dg.DagsterInstance,
                names: set[str]) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    checks = _checks()
    keys = [k for c in checks.asset_checks for k in c.check_keys if k.name in names]
    result = dg.materialize([*ASSETS, *checks.asset_checks], instance=instance,
                            selection=dg.AssetSelection.checks(*keys),
                            resources=_io(tmp_path))
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


def _inputs_current(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == "inputs_current"]
    return evaluation


def test_fallback_leaves_the_upstream_stale_and_fails_the_consumers_inputs_current(tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    with freeze_time("2024-03-05 06:40:00"):  # after cb_time; sales for 03-05 never arrives
        _materialize(tmp_path, instance, sales, "2024-03-04")
        consumer = _materialize(tmp_path, instance, report, "2024-03-05")  # falls back to 03-04
        assert consumer.output_for_node("report") == {"from": "2024-03-04"}
        # Nothing claims that sales' 2024-03-05 partition exists...
        observed = instance.fetch_observations(
            dg.AssetRecordsFilter(asset_key=sales.key, asset_partitions=["2024-03-05"]), limit=5).records
        assert observed == []
        # ...so Dagster's freshness check (from build_cache_checks) says it is overdue.
        got = _run_checks(tmp_path, instance, {"freshness_check"})
        assert got[("sales", "freshness_check")].passed is False
        # The consumer says it was built from older data, as a WARN.
        warned = _inputs_current(consumer)
        assert (warned.passed, warned.severity) == (False, dg.AssetCheckSeverity.WARN)
        assert "sales: wanted 2024-03-05, used 2024-03-04 (1 day(s) old)" in (warned.description or "")
        # Launched alone from the UI, the check judges the latest materialization the same way.
        alone = _run_checks(tmp_path, instance, {"inputs_current"})[("report", "inputs_current")]
        assert (alone.passed, alone.severity) == (False, dg.AssetCheckSeverity.WARN)

    with freeze_time("2024-03-08 07:00:00"):  # three days without sales: past error_after_days=2
        errored = _inputs_current(_materialize(tmp_path, instance, report, "2024-03-08"))
        assert (errored.passed, errored.severity) == (False, dg.AssetCheckSeverity.ERROR)
        assert errored.metadata["max_stale_days"].value == 4
        # The data arrives; the consumer is rebuilt from it and its check passes again.
        _materialize(tmp_path, instance, sales, "2024-03-08")
        assert _inputs_current(_materialize(tmp_path, instance, report, "2024-03-08")).passed
        got = _run_checks(tmp_path, instance, {"freshness_check", "inputs_current"})
        assert got[("sales", "freshness_check")].passed
        assert got[("report", "inputs_current")].passed


def test_unpartitioned_fallback_shows_on_the_consumer_not_as_an_upstream_update(tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()

    def requested() -> int:
        return dg.evaluate_automation_conditions(defs=[*ASSETS, *_checks().asset_checks],
                                                 instance=instance).total_requested

    with freeze_time("2024-03-04 08:00:00"):
        _materialize(tmp_path, instance, rates)
        _materialize(tmp_path, instance, summary)
        assert requested() == 0  # inputs current: nothing to do
    with freeze_time("2024-03-05 06:40:00"):
        consumer = _materialize(tmp_path, instance, summary)
        assert requested() == 1  # the failed inputs_current check is seen by the condition
        assert instance.fetch_observations(dg.AssetRecordsFilter(asset_key=rates.key), limit=5).records == []
        got = _run_checks(tmp_path, instance, {"freshness_check"})
        assert got[("rates", "freshness_check")].passed is False
        warned = _inputs_current(consumer)
        assert (warned.passed, warned.severity) == (False, dg.AssetCheckSeverity.WARN)


def test_a_fallback_re_runs_the_upstreams_file_checks(tmp_path: Path) -> None:
    instance = dg.DagsterInstance.ephemeral()
    checks = _checks()
    [freshness_sensor, stale_sensor] = checks.sensors
    defs = dg.Definitions(assets=ASSETS, asset_checks=checks.asset_checks, sensors=checks.sensors,
                          resources=_io(tmp_path))
    repository = defs.get_repository_def()

    def tick(cursor: str | None) -> Any:
        return stale_sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor,
                                                                  repository_def=repository))

    with freeze_time("2024-03-05 06:40:00"):
        _materialize(tmp_path, instance, sales, "2024-03-04")
        _materialize(tmp_path, instance, report, "2024-03-04")  # current: nothing to re-check
        first = tick(None)
        assert first.run_requests == []
        _materialize(tmp_path, instance, report, "2024-03-05")  # falls back
        data = tick(first.cursor)
        [request] = data.run_requests
        assert {(k.asset_key.to_user_string(), k.name) for k in request.asset_check_keys or []} == {
            ("sales", "cache_file_exists"), ("sales", "cache_file_verifies"), ("sales", "cache_file_age")}
        # Run as the sensor asks, the exists check reports the missing file.
        result = dg.materialize([*ASSETS, *checks.asset_checks], instance=instance,
                                selection=dg.AssetSelection.checks(*request.asset_check_keys),
                                resources=_io(tmp_path))
        exists = [e for e in result.get_asset_check_evaluations() if e.check_name == "cache_file_exists"]
        assert [e.passed for e in exists] == [False]
        assert tick(data.cursor).run_requests == []  # each fallback once


def test_bad_arguments_are_named() -> None:
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="error_after_days.*-1"):
        build_inputs_current_checks(assets=[report], error_after_days=-1)
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="at least one asset"):
        build_inputs_current_checks(assets=[])
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="at least one consumer"):
        build_stale_inputs_sensor(consumers=[], file_checks=[])
