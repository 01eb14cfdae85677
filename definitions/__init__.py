"""Example code location: `dagster dev` loads it (pyproject [tool.dagster]), `make demo` runs it.

Configuration comes from the environment, with local defaults: CACHE_DIR (default "data"),
CACHE_TZ (default "UTC"), CACHE_START_DATE (first daily partition, default 30 days ago, so the UI
does not list years of empty partitions), JSM_OPS_API_KEY or OPSGENIE_API_KEY (alerts off without
a key), as cache_utils reads them.

The cache IO manager is bound under its own key, `cache_io_manager`, to the assets that are daily
caches; everything else (the ops of memory_cache_job) keeps Dagster's default IO manager.
"""

import datetime as dt
import os
import warnings
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd

from dagster_cache import (
    DatedCacheIOManager,
    InMemoryCacheResource,
    OpsGenieResource,
    build_cache_checks,
    build_cache_observation_sensor,
    build_cache_refresh_schedule,
    build_cache_refresh_sensor,
    cache_data_version,
    external_cache_asset,
    make_opsgenie_on_run_failure_sensor,
)

CACHE_DIR = os.environ.get("CACHE_DIR") or "data"
TIMEZONE = os.environ.get("CACHE_TZ") or "UTC"
REFRESH_TIME = "06:30"
CACHE_IO = "cache_io_manager"


def start_date() -> str:
    """CACHE_START_DATE, else 30 days before today in CACHE_TZ."""
    given = os.environ.get("CACHE_START_DATE")
    if given:
        return dt.date.fromisoformat(given).isoformat()
    return (dt.datetime.now(ZoneInfo(TIMEZONE)).date() - dt.timedelta(days=30)).isoformat()


# end_offset=1: today's partition exists during the day, matching a cache file named for today.
daily = dg.DailyPartitionsDefinition(start_date=start_date(), timezone=TIMEZONE, end_offset=1)


@dg.asset(partitions_def=daily, group_name="caches", kinds={"pandas"}, io_manager_key=CACHE_IO,
          description="Daily sales, one cache file per day: `sales_data_<YYYYMMDD>.pkl.gz`.")
def sales_data(context: dg.AssetExecutionContext) -> dg.Output[pd.DataFrame]:
    day = context.partition_time_window.start.date()
    seed = day.toordinal()
    frame = pd.DataFrame({
        "date": [day.isoformat()] * 4,
        "store": ["north", "south", "east", "west"],
        "units": [(seed * k) % 97 for k in (3, 5, 7, 11)],
    })
    # The file's content fingerprint as data version: re-running a day that gives the same data
    # does not mark sales_summary stale. (Output's data_version is a Dagster beta parameter: its
    # notice is muted here, where it is used on purpose.)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.BetaWarning)
        return dg.Output(frame, data_version=cache_data_version(frame))


@dg.asset(partitions_def=daily, group_name="caches", kinds={"pandas"}, io_manager_key=CACHE_IO,
          description="Per-day totals. If that day's sales_data file is missing, the IO manager "
          "loads the newest earlier one, records which on this asset's materialization and fails its "
          "inputs_current check (WARN, ERROR after 2 days).")
def sales_summary(context: dg.AssetExecutionContext, sales_data: pd.DataFrame) -> pd.DataFrame:
    context.log.info(f"summarising {len(sales_data)} rows from {sales_data['date'].iloc[0]}")
    return (sales_data.groupby("date", as_index=False)["units"].sum()
            .assign(partition=context.partition_key))


@dg.asset(group_name="caches", io_manager_key=CACHE_IO,
          description="Unpartitioned: `exchange_rates_<YYYYMMDD>.pkl.gz` for the run's partition day, "
          "else its scheduled day, else today.")
def exchange_rates() -> dict[str, float]:
    return {"EURUSD": 1.08, "GBPUSD": 1.27, "USDJPY": 151.2}


# Written outside Dagster (a vendor's cron job calling cache_utils.save_cache): the sensor reports
# each new `market_prices_<YYYYMMDD>.pkl.gz` as a materialization, and market_report follows it.
market_prices = external_cache_asset(
    "market_prices", group_name="external", kinds={"pandas"},
    description="Daily market prices saved by a script outside Dagster (cache_utils.save_cache).",
).with_io_manager_key(CACHE_IO)  # read by the cache IO manager, as its consumers' inputs


@dg.asset(group_name="external", io_manager_key=CACHE_IO, automation_condition=dg.AutomationCondition.eager(),
          description="Runs whenever a new market_prices file arrives with new data.")
def market_report(market_prices: pd.DataFrame) -> pd.DataFrame:
    return market_prices.describe()


observe_market_prices = build_cache_observation_sensor(
    assets=[market_prices], directory=CACHE_DIR, timezone=TIMEZONE, name="market_prices_files",
)


@dg.op
def remember_rates(memory: InMemoryCacheResource) -> int:
    memory.put({"EURUSD": 1.08}, "rates", "latest")
    return len(memory.list_keys())


@dg.op
def read_rates(memory: InMemoryCacheResource, count: int) -> float:
    # Same process with the in-process executor: the value stored by the previous op is visible.
    rates = memory.get("rates", "latest") or {}
    return float(rates.get("EURUSD", float("nan")))


@dg.job(executor_def=dg.in_process_executor, description="Shares InMemoryCacheResource between two ops.")
def memory_cache_job() -> None:
    read_rates(remember_rates())


refresh_sales = dg.define_asset_job(
    "refresh_sales", selection=[sales_data, sales_summary],
    description="Refreshes today's sales caches.",
)

refresh_schedule = build_cache_refresh_schedule(
    prefix="sales_data", cb_time=REFRESH_TIME, job=refresh_sales, directory=CACHE_DIR, timezone=TIMEZONE,
)
refresh_sensor = build_cache_refresh_sensor(
    prefix="sales_data", cb_time=REFRESH_TIME, job=refresh_sales, directory=CACHE_DIR, timezone=TIMEZONE,
    retry_interval=15 * 60,
)


# OpsGenie or JSM Operations from the environment (the key shown as its variable name), else off.
opsgenie = OpsGenieResource.from_env(tags=["dated-caches"])
failure_sensor = make_opsgenie_on_run_failure_sensor(name="opsgenie_on_run_failure")

# Checks tab and freshness status: the files exist, verify and are recent; today's data by 06:30.
# Consumers get `inputs_current` (WARN on a fallback, ERROR past 2 days) and a sensor re-running the
# upstream's file checks when one falls back.
cache_checks = build_cache_checks(
    assets=[sales_data, sales_summary, exchange_rates], cb_time=REFRESH_TIME, timezone=TIMEZONE,
    consumers=[sales_summary, market_report], error_after_days=2,
)

defs = dg.Definitions(
    assets=[sales_data, sales_summary, exchange_rates, market_prices, market_report],
    asset_checks=cache_checks.asset_checks,
    jobs=[refresh_sales, memory_cache_job],
    schedules=[refresh_schedule],
    sensors=[refresh_sensor, failure_sensor, observe_market_prices, *cache_checks.sensors],
    resources={
        CACHE_IO: DatedCacheIOManager(directory=CACHE_DIR, timezone=TIMEZONE, opsgenie=opsgenie,
                                      keep_days=60),
        "memory": InMemoryCacheResource(namespace="definitions"),
        "opsgenie": opsgenie,
    },
)
