"""Freshness: the current FreshnessPolicy for unpartitioned caches, and the superseded per-partition
check kept behind dagster_cache.freshness.superseded_freshness, still working, in our words."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pandas as pd  # noqa: F401 - before any freeze_time (pandas 3)
from freezegun import freeze_time

from dagster_cache import build_cache_freshness_checks, cache_freshness_policy
from dagster_cache.freshness import PARTITION_FRESHNESS_TEXT

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1, timezone="Europe/London")


@dg.asset(partitions_def=DAILY)
def sales() -> int:
    return 1


def test_policy_is_a_daily_deadline_with_a_window_since_midnight() -> None:
    policy = cache_freshness_policy("06:30", "Europe/London")
    assert isinstance(policy, dg.FreshnessPolicy)
    assert policy.deadline_cron == "30 6 * * *"
    assert policy.timezone == "Europe/London"
    assert policy.lower_bound_delta == dt.timedelta(hours=6, minutes=30)
    assert cache_freshness_policy("00:00").lower_bound_delta == dt.timedelta(days=1)


def test_policy_shows_on_the_asset() -> None:
    @dg.asset(freshness_policy=cache_freshness_policy("06:30"))
    def rates() -> int:
        return 1

    assert dg.Definitions(assets=[rates]).resolve_asset_graph().get(dg.AssetKey("rates")).freshness_policy


def test_partition_check_has_our_description_and_still_works() -> None:
    checks = build_cache_freshness_checks(assets=[sales], cb_time="06:30", timezone="Europe/London")
    specs = [s for c in checks for s in c.check_specs]
    assert [s.description for s in specs] == [PARTITION_FRESHNESS_TEXT.format(deadline="06:30 Europe/London")]
    assert "Evaluates freshness" not in specs[0].description
    instance = dg.DagsterInstance.ephemeral()
    only_checks = dg.AssetSelection.checks_for_assets(sales)
    with freeze_time(dt.datetime(2024, 3, 5, 9, 0, tzinfo=dt.UTC)):
        missing = dg.materialize([sales], instance=instance, partition_key="2024-03-04", selection=[sales])
        assert missing.success
        result = dg.materialize([sales, *checks], instance=instance, selection=only_checks)
        (evaluation,) = result.get_asset_check_evaluations()
        assert not evaluation.passed and "2024-03-05" in (evaluation.description or "")
        dg.materialize([sales], instance=instance, partition_key="2024-03-05")
        result = dg.materialize([sales, *checks], instance=instance, selection=only_checks)
        (evaluation,) = result.get_asset_check_evaluations()
        assert evaluation.passed


def test_freshness_sensor_targets_a_named_job_not_a_python_repr() -> None:
    from dagster_cache import build_cache_checks

    built = build_cache_checks(assets=[sales], cb_time="06:30", timezone="Europe/London")
    (sensor,) = built.sensors
    assert sensor.asset_selection is None  # the UI printed AssetCheckKeysSelection(...) for it
    assert sensor.job_name == "cache_freshness_checks_sensor_job"
    assert "freshness checks of sales" in (sensor.description or "")
    defs = dg.Definitions(assets=[sales], asset_checks=built.asset_checks, sensors=built.sensors)
    repo = defs.get_repository_def()
    instance = dg.DagsterInstance.ephemeral()
    with freeze_time(dt.datetime(2024, 3, 5, 9, 0, tzinfo=dt.UTC)):
        with dg.build_sensor_context(instance=instance, repository_def=repo) as context:
            (request,) = sensor.evaluate_tick(context).run_requests
        result = repo.get_job(sensor.job_name).execute_in_process(instance=instance)
    assert [k.name for k in request.asset_check_keys] == ["freshness_check"]
    assert [e.asset_check_key.name for e in result.get_asset_check_evaluations()] == ["freshness_check"]


def test_last_update_check_speaks_in_words_not_seconds() -> None:
    @dg.asset
    def rates() -> int:
        return 1

    checks = build_cache_freshness_checks(assets=[rates], cb_time="06:30", timezone="UTC")
    instance = dg.DagsterInstance.ephemeral()
    with freeze_time(dt.datetime(2024, 3, 4, 8, 0, tzinfo=dt.UTC)):
        dg.materialize([rates], instance=instance)
    with freeze_time(dt.datetime(2024, 3, 5, 6, 27, 50, tzinfo=dt.UTC)):
        fresh = dg.materialize([rates, *checks], instance=instance,
                               selection=dg.AssetSelection.checks_for_assets(rates))
    with freeze_time(dt.datetime(2024, 3, 5, 7, 0, tzinfo=dt.UTC)):
        late = dg.materialize([rates, *checks], instance=instance,
                              selection=dg.AssetSelection.checks_for_assets(rates))
    (passed,) = fresh.get_asset_check_evaluations()
    (overdue,) = late.get_asset_check_evaluations()
    assert passed.passed and not overdue.passed
    assert overdue.description == ("Overdue: Last updated 2024-03-04 at 08:00 (about 23 hours ago); an "
                                   "update was due today by 06:30 UTC.")
    assert passed.description.startswith("Last updated 2024-03-04 at 08:00 (about 22 hours ago)")
    assert all("minutes," not in (e.description or "") for e in (passed, overdue))
    spec = next(iter(checks[0].check_specs))
    assert spec.description.startswith("The asset must be updated every day")
