"""The IO manager on every store: daily partitions written and read back, a range input (several
partitions as a dict, read concurrently on URL stores), fallback to an earlier partition, and the
cache file checks, on local disk, memory://, S3, GCS and Azure."""

from __future__ import annotations

import dagster as dg
import pandas as pd  # noqa: F401  (imported before the first freeze_time: pandas#64023)
from freezegun import freeze_time

from cache_utils import read_cache
from dagster_cache import DatedCacheIOManager, build_cache_file_checks
from tests.stores.conftest import StoreCase

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)
DAYS = ["2024-01-01", "2024-01-02", "2024-01-03"]


@dg.asset(partitions_def=DAILY)
def prices(context) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"day": context.partition_key}


@dg.asset(partitions_def=DAILY, ins={"prices": dg.AssetIn(partition_mapping=dg.AllPartitionMapping())})
def history(prices: dict[str, dict[str, str]]) -> list[str]:
    return [prices[key]["day"] for key in sorted(prices)]


@dg.asset(partitions_def=DAILY)
def report(prices: dict[str, str]) -> str:
    return f"report on {prices['day']}"


def _manager(store: StoreCase) -> DatedCacheIOManager:
    return DatedCacheIOManager(directory=store.url, timezone="UTC", storage_options=store.options or {},
                               max_concurrent_loads=4)


def test_partitions_ranges_fallback_and_checks(store: StoreCase) -> None:
    resources = {"io_manager": _manager(store)}
    with freeze_time("2024-01-03 12:00"):
        for day in DAYS:
            assert dg.materialize([prices], partition_key=day, resources=resources).success
        # A range input: every partition as {key: value}, each its own day's file.
        ranged = dg.materialize([prices, history], partition_key="2024-01-03", resources=resources,
                                selection=[history])
        assert ranged.success
        assert read_cache("history", "2024-01-03", store.url, **store.kw()) == DAYS

    with freeze_time("2024-01-05 12:00"):
        # The 5th's prices were never written: report falls back to the 3rd's file, and says so.
        late = dg.materialize([prices, report], partition_key="2024-01-05", resources=resources,
                              selection=[report])
        assert late.success
        assert read_cache("report", "2024-01-05", store.url, **store.kw()) == "report on 2024-01-03"

        checks = build_cache_file_checks(assets=[prices], max_age_days=1)
        result = dg.materialize([prices, *checks], resources=resources,
                                selection=dg.AssetSelection.all_asset_checks())
        outcome = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        # Today's (the 5th's) file is missing; the newest (the 3rd's) verifies; two days old is past
        # max_age_days=1.
        assert outcome == {"cache_file_exists": False, "cache_file_verifies": True, "cache_file_age": False}
