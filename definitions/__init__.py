"""Example code location, a `dg` project (pyproject [tool.dg]): `dg dev` / `make ui` load it,
`make demo` runs it with `dg launch`.

Two halves, merged into `defs`:
- Python (this module): the assets, an op job, alerts (the OpsGenie / JSM resource and the
  run-failure sensor);
- YAML (definitions/defs/daily_caches/defs.yaml, a `dagster_cache.DailyCacheComponent`): the cache
  contract of those assets: the `cache_io_manager` resource, file and freshness checks, the
  refresh job, schedule and sensor, the external `market_prices` cache with its observation
  sensor, and retention. `dg scaffold defs dagster_cache.DailyCacheComponent <name>` adds another.

Configuration comes from the environment, with local defaults: CACHE_DIR (default "data"),
CACHE_TZ (default "UTC"), CACHE_START_DATE (first daily partition, default 30 days ago, so the UI
does not list years of empty partitions), JSM_OPS_API_KEY or OPSGENIE_API_KEY (alerts off without
a key), as cache_utils reads them; defs.yaml reads the same variables.

The cache IO manager is bound under its own key, `cache_io_manager`, to the assets that are daily
caches; everything else (the ops of memory_cache_job) keeps Dagster's default IO manager.
"""

import datetime as dt
import os
import warnings
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd

from dagster_cache import (
    InMemoryCacheResource,
    OpsGenieResource,
    cache_data_version,
    cache_freshness_policy,
    make_opsgenie_on_run_failure_sensor,
)

CACHE_DIR = os.environ.get("CACHE_DIR") or "data"
TIMEZONE = os.environ.get("CACHE_TZ") or "UTC"
REFRESH_TIME = "06:30"  # cb_time in definitions/defs/daily_caches/defs.yaml says the same
CACHE_IO = "cache_io_manager"  # bound by the component in definitions/defs/daily_caches/defs.yaml
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def start_date() -> str:
    """CACHE_START_DATE, else 30 days before today in CACHE_TZ."""
    given = os.environ.get("CACHE_START_DATE")
    if given:
        return dt.date.fromisoformat(given).isoformat()
    return (dt.datetime.now(ZoneInfo(TIMEZONE)).date() - dt.timedelta(days=30)).isoformat()


# end_offset=1: today's partition exists during the day, matching a cache file named for today.
daily = dg.DailyPartitionsDefinition(start_date=start_date(), timezone=TIMEZONE, end_offset=1)


@dg.asset(partitions_def=daily, group_name="caches", kinds={"pandas"}, io_manager_key=CACHE_IO,
          description="Daily sales, one cache file per day, named sales_data_YYYYMMDD.pkl.gz.")
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


# Unpartitioned: Dagster's FreshnessPolicy gives the right answer (updated today before 06:30), and
# the UI shows it as the asset's freshness status.
@dg.asset(group_name="caches", io_manager_key=CACHE_IO,
          freshness_policy=cache_freshness_policy(REFRESH_TIME, TIMEZONE),
          description="Unpartitioned, one file per day named exchange_rates_YYYYMMDD.pkl.gz: the run's "
          "partition day, else its scheduled day, else today.")
def exchange_rates() -> dict[str, float]:
    return {"EURUSD": 1.08, "GBPUSD": 1.27, "USDJPY": 151.2}


# market_prices is an external cache declared in defs.yaml (a vendor's script writes its files with
# cache_utils.save_cache; the component's observation sensor reports each new file).
@dg.asset(group_name="external", io_manager_key=CACHE_IO, automation_condition=dg.AutomationCondition.eager(),
          description="Summary statistics of the newest market_prices file; runs whenever "
          "a new market_prices file arrives with new data (the automation sensor must be running).")
def market_report(market_prices: pd.DataFrame) -> pd.DataFrame:
    return market_prices.describe()


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


# OpsGenie or JSM Operations from the environment (the key shown as its variable name), else off.
opsgenie = OpsGenieResource.from_env(tags=["dated-caches"])
failure_sensor = make_opsgenie_on_run_failure_sensor(name="opsgenie_on_run_failure")


def component_defs() -> dg.Definitions:
    """The components under definitions/defs/ (the daily cache contract in YAML)."""
    # Dagster 1.13's YAML loader calls pydantic's deprecated `parse_obj_as` (its code, not ours: a
    # user cannot act on the notice), which would fail `python -W error::DeprecationWarning`. That
    # one message is muted, for this call only.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`parse_obj_as` is deprecated", category=DeprecationWarning)
        return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


defs = dg.Definitions.merge(
    dg.Definitions(
        assets=[sales_data, sales_summary, exchange_rates, market_report],
        jobs=[memory_cache_job],
        sensors=[failure_sensor],
        resources={"memory": InMemoryCacheResource(namespace="definitions"), "opsgenie": opsgenie},
    ),
    component_defs(),
)
