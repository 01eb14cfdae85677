"""Issue 21, item 5: static and dynamic partitions without a time dimension, run through real
Dagster materializations. Each key is its own daily series, `<prefix>__<key>_<run day>.pkl.gz`,
loaded like an unpartitioned asset per key (newest file with fallback); clashes, ownership and
retention apply per key. Dagster's own `FilesystemIOManager` runs the same graphs as the control
where its answer is the same."""

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest
from freezegun import freeze_time

from cache_utils import CacheNotFoundError, cache_dates, cache_owner, read_cache, save_cache, write_cache
from dagster_cache import CacheOwnerError, CachePartitionError, DatedCacheIOManager

REGIONS = dg.StaticPartitionsDefinition(["eu", "us"])
CUSTOMERS = dg.DynamicPartitionsDefinition(name="customers")


def ours(tmp_path: Path, **fields: Any) -> DatedCacheIOManager:
    return DatedCacheIOManager(directory=str(tmp_path / "ours"), timezone="Europe/London", **fields)


def files(tmp_path: Path) -> list[str]:
    where = tmp_path / "ours"
    return sorted(p.name for p in where.iterdir() if not p.name.startswith(".")) if where.exists() else []


@dg.asset(partitions_def=REGIONS)
def sales(context: dg.AssetExecutionContext) -> dict:
    return {"region": context.partition_key, "day": dt.date.today().isoformat()}


@dg.asset
def all_sales(sales: dict) -> dict:
    return sales


@dg.asset(partitions_def=REGIONS)
def region_report(sales: dict) -> str:
    return f"{sales['region']} of {sales['day']}"


# --- write, per-key fallback, a dict for an unpartitioned consumer --------------------------------


def test_each_key_is_its_own_daily_series_and_loads_like_filesystem_io_manager(tmp_path: Path) -> None:
    """Both keys written on the 15th, only eu again on the 16th: on the 16th eu is today's file and
    us falls back to its own newest file (the 15th), never to eu's. FilesystemIOManager (one file
    per key, overwritten) gives the same values, as the control."""
    fs = dg.FilesystemIOManager(base_dir=str(tmp_path / "fs"))
    for io in (fs, ours(tmp_path)):
        with freeze_time("2024-01-15 12:00"):
            for key in ("eu", "us"):
                dg.materialize([sales], partition_key=key, resources={"io_manager": io})
        with freeze_time("2024-01-16 12:00"):
            result = dg.materialize([sales, region_report], partition_key="eu", resources={"io_manager": io})
            assert result.output_for_node("region_report") == "eu of 2024-01-16"
            total = dg.materialize([sales, all_sales], selection=[all_sales], resources={"io_manager": io})
            assert total.output_for_node("all_sales") == {
                "eu": {"region": "eu", "day": "2024-01-16"}, "us": {"region": "us", "day": "2024-01-15"}}
            report = dg.materialize([sales, region_report], selection=[region_report], partition_key="us",
                                    resources={"io_manager": io})
            assert report.output_for_node("region_report") == "us of 2024-01-15"
    assert files(tmp_path) == ["all_sales_20240116.pkl.gz", "region_report__eu_20240116.pkl.gz",
                               "region_report__us_20240116.pkl.gz", "sales__eu_20240115.pkl.gz",
                               "sales__eu_20240116.pkl.gz", "sales__us_20240115.pkl.gz"]
    # plain cache_utils reads a key's series by its prefix
    us = read_cache("sales__us", "2024-01-15", str(tmp_path / "ours"))
    assert us == {"region": "us", "day": "2024-01-15"}


def test_the_run_day_is_in_the_managers_zone(tmp_path: Path) -> None:
    """At 23:30 UTC on the 15th it is already the 16th in Tokyo: the file is dated the 16th."""
    with freeze_time("2024-01-15 23:30"):
        dg.materialize([sales], partition_key="eu",
                       resources={"io_manager": DatedCacheIOManager(directory=str(tmp_path / "ours"),
                                                                    timezone="Asia/Tokyo")})
    assert files(tmp_path) == ["sales__eu_20240116.pkl.gz"]


def test_a_key_without_any_file_is_an_error_naming_the_key(tmp_path: Path) -> None:
    with freeze_time("2024-01-15 12:00"):
        dg.materialize([sales], partition_key="eu", resources={"io_manager": ours(tmp_path)})
    with freeze_time("2024-01-16 12:00"):
        with pytest.raises(CacheNotFoundError, match=r"partition us.*sales__us_20240116\.pkl\.gz"):
            dg.materialize([sales, region_report], selection=[region_report], partition_key="us",
                           resources={"io_manager": ours(tmp_path)})
        with pytest.raises(CacheNotFoundError, match=r"1 of 2 partitions of sales.*: us"):
            dg.materialize([sales, all_sales], selection=[all_sales],
                           resources={"io_manager": ours(tmp_path)})


def test_a_missing_key_is_skipped_with_allow_missing_partitions_like_filesystem_io_manager(
    tmp_path: Path,
) -> None:
    @dg.asset(ins={"sales": dg.AssetIn(metadata={"allow_missing_partitions": True})})
    def some_sales(sales: dict) -> list:
        return sorted(sales)

    fs = dg.FilesystemIOManager(base_dir=str(tmp_path / "fs"))
    for io in (fs, ours(tmp_path)):
        with freeze_time("2024-01-15 12:00"):
            dg.materialize([sales], partition_key="us", resources={"io_manager": io})
        with freeze_time("2024-01-17 12:00"):  # us falls back two days; eu has no file at all
            result = dg.materialize([sales, some_sales], selection=[some_sales], resources={"io_manager": io})
            assert result.output_for_node("some_sales") == ["us"]


# --- reads by run ---------------------------------------------------------------------------------

CLOCK: list = []


@dg.asset(partitions_def=REGIONS, deps=[sales])
def midnight_passes() -> None:
    CLOCK[0].move_to("2024-01-16 00:00:04")


@dg.asset(partitions_def=REGIONS, deps=[midnight_passes])
def late_report(sales: dict) -> str:
    return f"{sales['region']} of {sales['day']}"


def test_a_run_across_midnight_reads_the_key_its_run_wrote_not_stale(tmp_path: Path) -> None:
    """sales[eu] is written at 23:59:58 on the 15th (London) and read 6 s later, on the 16th: the
    run's own file, found by the day the run recorded; with fallback off it is not a failure, and
    no stale-input tag is set."""
    with freeze_time("2024-01-15 23:59:58") as clock, dg.instance_for_test() as instance:
        CLOCK[:] = [clock]
        result = dg.materialize([sales, midnight_passes, late_report], partition_key="eu", instance=instance,
                                resources={"io_manager": ours(tmp_path, fallback_to_latest=False)})
        assert result.output_for_node("late_report") == "eu of 2024-01-15"
        assert "dagster_cache/stale_inputs" not in instance.get_run_by_id(result.run_id).tags
    assert "sales__eu_20240115.pkl.gz" in files(tmp_path)


# --- dynamic partitions, unsafe keys, a multi-partition without a time dimension -------------------


@dg.asset(partitions_def=CUSTOMERS)
def orders(context: dg.AssetExecutionContext) -> str:
    return f"orders of {context.partition_key}"


@dg.asset(partitions_def=CUSTOMERS)
def invoices(orders: str) -> str:
    return orders.upper()


def test_dynamic_partitions_with_an_instance_and_unsafe_keys_refused(tmp_path: Path) -> None:
    with freeze_time("2024-01-15 12:00"), dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("customers", ["acme", "globex", "a/b", "x*"])
        result = dg.materialize([orders, invoices], partition_key="acme", instance=instance,
                                resources={"io_manager": ours(tmp_path)})
        assert result.output_for_node("invoices") == "ORDERS OF ACME"
        for bad in ("a/b", "x*"):
            refused = re.escape(f"partition key {bad!r} cannot name a cache file")
            with pytest.raises(CachePartitionError, match=refused):
                dg.materialize([orders], partition_key=bad, instance=instance,
                               resources={"io_manager": ours(tmp_path)})
    assert files(tmp_path) == ["invoices__acme_20240115.pkl.gz", "orders__acme_20240115.pkl.gz"]


def test_a_multi_partition_without_a_time_dimension_joins_its_keys_in_dimension_order(tmp_path: Path) -> None:
    channels = dg.StaticPartitionsDefinition(["web"])
    grid = dg.MultiPartitionsDefinition({"region": REGIONS, "channel": channels})

    @dg.asset(partitions_def=grid)
    def traffic(context: dg.AssetExecutionContext) -> str:
        return str(context.partition_key)

    @dg.asset
    def all_traffic(traffic: dict) -> dict:
        return traffic

    fs = dg.FilesystemIOManager(base_dir=str(tmp_path / "fs"))
    for io in (fs, ours(tmp_path)):
        with freeze_time("2024-01-15 12:00"):
            for region in ("eu", "us"):
                key = dg.MultiPartitionKey({"region": region, "channel": "web"})
                dg.materialize([traffic], partition_key=key, resources={"io_manager": io})
            result = dg.materialize([traffic, all_traffic], selection=[all_traffic],
                                    resources={"io_manager": io})
            assert result.output_for_node("all_traffic") == {"web|eu": "web|eu", "web|us": "web|us"}
    assert files(tmp_path) == ["all_traffic_20240115.pkl.gz", "traffic__web__eu_20240115.pkl.gz",
                               "traffic__web__us_20240115.pkl.gz"]


# --- clashes, ownership, retention per key ---------------------------------------------------------


def test_an_asset_named_like_a_key_clashes_before_anything_is_written(tmp_path: Path) -> None:
    @dg.asset(key=["sales", "eu"])
    def sales_eu() -> int:
        return 1

    defs = dg.Definitions(assets=[sales, sales_eu], resources={"io_manager": ours(tmp_path)})
    job = defs.resolve_implicit_global_asset_job_def()
    for selection, key in (([sales_eu.key], None), ([sales.key], "eu")):
        with pytest.raises(CachePartitionError, match=r"asset sales/eu and asset sales.*'sales__eu_<YYYYMMDD>"
                           if key is None else r"asset sales and asset sales/eu.*'sales__eu_<YYYYMMDD>"):
            job.get_subset(asset_selection=set(selection)).execute_in_process(partition_key=key)
    assert files(tmp_path) == []
    # us is no one else's: written
    dg.materialize([sales], partition_key="us", resources={"io_manager": ours(tmp_path)})


def test_another_writers_file_of_a_key_is_refused_and_the_owner_records_the_key(tmp_path: Path) -> None:
    @dg.asset(key=["sales", "eu"])
    def sales_eu() -> str:
        return "another code location's sales/eu"

    with freeze_time("2024-01-15 12:00"):
        dg.materialize([sales_eu], resources={"io_manager": ours(tmp_path)})  # a code location of its own
        with pytest.raises(CacheOwnerError, match=r"asset sales \(partition eu\) would overwrite .*sales__eu_"
                                                  r"20240115.*belongs to asset sales/eu"):
            dg.materialize([sales], partition_key="eu", resources={"io_manager": ours(tmp_path)})
        kept = read_cache("sales__eu", "2024-01-15", str(tmp_path / "ours"))
        assert kept == "another code location's sales/eu"
        dg.materialize([sales], partition_key="us", resources={"io_manager": ours(tmp_path)})
    recorded = cache_owner("sales__us", "2024-01-15", str(tmp_path / "ours"))
    assert json.loads(recorded or "") == {"asset": ["sales"], "partition": "us"}


def test_loading_a_key_refuses_a_file_another_asset_wrote(tmp_path: Path) -> None:
    write_cache("not sales", "sales__eu", "2024-01-15", str(tmp_path / "ours"),
                owner=json.dumps({"asset": ["sales", "eu"], "partition": None}))
    with freeze_time("2024-01-15 12:00"), pytest.raises(CacheOwnerError, match="belongs to asset sales/eu"):
        dg.materialize([sales, region_report], selection=[region_report], partition_key="eu",
                       resources={"io_manager": ours(tmp_path)})


def test_retention_applies_to_each_key(tmp_path: Path) -> None:
    """keep_files=2: eu written on four days keeps its two newest; us, written once on the first
    day, keeps its only file (another key's writes never prune it). keep_days counts per key too."""
    for day in ("2024-01-10", "2024-01-11", "2024-01-12", "2024-01-13"):
        with freeze_time(f"{day} 12:00"):
            keys = ("eu", "us") if day == "2024-01-10" else ("eu",)
            for key in keys:
                dg.materialize([sales], partition_key=key,
                               resources={"io_manager": ours(tmp_path, keep_files=2)})
    where = str(tmp_path / "ours")
    assert sorted(d.isoformat() for d in cache_dates("sales__eu", where)) == ["2024-01-12", "2024-01-13"]
    assert sorted(d.isoformat() for d in cache_dates("sales__us", where)) == ["2024-01-10"]
    save_cache("older", "sales__us", "2024-01-05", where)
    with freeze_time("2024-01-14 12:00"):
        result = dg.materialize([sales], partition_key="us",
                                resources={"io_manager": ours(tmp_path, keep_days=3)})
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["dagster_cache/pruned_dates"].value == {"sales__us": ["2024-01-05", "2024-01-10"]}
    assert sorted(d.isoformat() for d in cache_dates("sales__us", where)) == ["2024-01-14"]
    assert sorted(d.isoformat() for d in cache_dates("sales__eu", where)) == ["2024-01-12", "2024-01-13"]


# --- a single-run backfill of several keys ---------------------------------------------------------


def test_a_single_run_backfill_writes_one_file_per_key_and_a_reader_in_that_run_reads_them(
    tmp_path: Path,
) -> None:
    @dg.asset(partitions_def=REGIONS, backfill_policy=dg.BackfillPolicy.single_run())
    def stock(context: dg.AssetExecutionContext) -> dict:
        return {key: f"stock {key}" for key in context.partition_keys}

    @dg.asset
    def all_stock(stock: dict) -> dict:
        return stock

    with freeze_time("2024-01-15 12:00"), dg.instance_for_test() as instance:
        defs = dg.Definitions(assets=[stock, all_stock], resources={"io_manager": ours(tmp_path)})
        job = defs.resolve_implicit_global_asset_job_def().get_subset(asset_selection={stock.key})
        ran = job.execute_in_process(instance=instance, tags={"dagster/asset_partition_range_start": "eu",
                                                              "dagster/asset_partition_range_end": "us"})
        assert ran.success
        result = dg.materialize([stock, all_stock], selection=[all_stock], instance=instance,
                                resources={"io_manager": ours(tmp_path, fallback_to_latest=False)})
        assert result.output_for_node("all_stock") == {"eu": "stock eu", "us": "stock us"}
    assert "stock__eu_20240115.pkl.gz" in files(tmp_path) and "stock__us_20240115.pkl.gz" in files(tmp_path)


def test_a_dynamic_key_clashes_with_an_asset_named_like_it_through_the_instance(tmp_path: Path) -> None:
    """The instance knows the dynamic keys: `orders__acme` clashes with orders[acme], not with
    orders[globex]; a key with a space and accents is a file name like any other."""
    @dg.asset(key=["orders", "acme"])
    def orders_acme() -> int:
        return 1

    with freeze_time("2024-01-15 12:00"), dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("customers", ["acme", "São Paulo"])
        defs = dg.Definitions(assets=[orders, orders_acme], resources={"io_manager": ours(tmp_path)})
        job = defs.resolve_implicit_global_asset_job_def()
        with pytest.raises(CachePartitionError, match=r"asset orders/acme and asset orders .*'orders__acme_"):
            job.get_subset(asset_selection={orders_acme.key}).execute_in_process(instance=instance)
        ran = job.get_subset(asset_selection={orders.key}).execute_in_process(
            instance=instance, partition_key="São Paulo")
        assert ran.success
    assert files(tmp_path) == ["orders__São Paulo_20240115.pkl.gz"]
