"""One directory, one writer per file: the clash check sees one directory however it is spelled
or bound, op names that join alike get files of their own, and no legitimate definition is
refused.

Each scenario runs Dagster's own FilesystemIOManager beside DatedCacheIOManager as a control;
each once gave a consumer wrong data with no error, overwrote a file silently or refused a
legitimate definition, where the control was right (found by two red-team rounds on the IO
manager; each test failed before its fix)."""

import os
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest
from freezegun import freeze_time

from dagster_cache import DatedCacheIOManager
from tests.support.controls import dagsters, ours, step_failures

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)



# --- 1. op outputs: node and output names joined by "__" collide ---------------------------------


@dg.op(name="a__b")
def a_b() -> str:
    return "from op a__b"


@dg.op(name="a", out={"b__result": dg.Out(str)})
def a_op() -> str:
    return "from op a, output b__result"


@dg.op
def echo(value: str) -> str:
    return value


@dg.op
def echo_b(value: str) -> str:
    return value


@dg.job
def underscore_job() -> None:
    echo(a_b())
    echo_b(a_op())  # whichever of a and a__b runs second overwrites the other's file


@freeze_time("2024-01-15 12:00:00")
def test_op_outputs_whose_names_join_alike_do_not_share_a_file(tmp_path: Path) -> None:
    """Op `a__b` output `result` and op `a` output `b__result` both become
    `a__b__result@<run id>_<day>`: the second write replaces the first, and `echo` receives the
    other op's value. Dagster names a node's output `<run id>/<node>/<output>`."""
    for manager in (dagsters(tmp_path), ours(tmp_path)):
        result = underscore_job.execute_in_process(resources={"io_manager": manager}, raise_on_error=False)
        assert result.success, step_failures(result)
        got = (result.output_for_node("echo"), result.output_for_node("echo_b"))
        assert got == ("from op a__b", "from op a, output b__result"), type(manager).__name__


# --- 2. the same manager bound under two IO manager keys: clash not seen -------------------------

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


# --- 3. one directory spelled two ways: the clash check is bypassed ------------------------------


@dg.asset(key="prices")
def prices() -> str:
    return "prices"


@dg.asset(key="fx", io_manager_key="other_io", metadata={"cache_prefix": "prices"})
def fx() -> str:
    return "fx"


@dg.asset
def prices_reader(prices: str) -> str:
    return prices


def _assert_prices_reader_gets_prices(first: Any, second: Any) -> None:
    """`prices` under `first`, then `fx` (cache_prefix "prices") under `second`: a clash refused
    with a message naming it is fine; `prices_reader` receiving "fx" is not."""
    defs = dg.Definitions(
        assets=[prices, fx, prices_reader], resources={"io_manager": first, "other_io": second}
    )
    job = defs.resolve_implicit_global_asset_job_def()
    for key in ("prices", "fx"):
        run = job.execute_in_process(asset_selection=[dg.AssetKey(key)], raise_on_error=False)
        if not run.success:  # refused up front: fine when it names the clash
            assert "would both write" in step_failures(run), step_failures(run)
            return
    read = job.execute_in_process(asset_selection=[dg.AssetKey("prices_reader")])
    assert read.output_for_node("prices_reader") == "prices", type(first).__name__


@freeze_time("2024-01-15 12:00:00")
def test_one_directory_with_a_trailing_slash_still_refuses_a_clash(tmp_path: Path) -> None:
    """`directory="x"` and `directory="x/"` are one directory, but the clash check compares the
    strings: `fx` (cache_prefix "prices") overwrites `prices_20240115` silently and `prices_reader`
    receives "fx". A clash error would be fine; wrong data is not."""
    same = str(tmp_path / "ours")
    managers = [
        (dagsters(tmp_path), dagsters(tmp_path)),
        (DatedCacheIOManager(directory=same), DatedCacheIOManager(directory=same + "/")),
    ]
    for first, second in managers:
        _assert_prices_reader_gets_prices(first, second)


@freeze_time("2024-01-15 12:00:00")
def test_one_directory_from_one_env_var_under_two_keys_still_refuses_a_clash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both keys take their directory from the same EnvVar (the usual deployment): the check reads
    the unresolved config ({'env': ...}), sees no other key on the directory, and lets `fx`
    overwrite `prices`."""
    monkeypatch.setenv("CACHE_TEST_CLASH_DIR", str(tmp_path / "env"))
    managers = [
        (dagsters(tmp_path), dagsters(tmp_path)),
        (
            DatedCacheIOManager(directory=dg.EnvVar("CACHE_TEST_CLASH_DIR")),
            DatedCacheIOManager(directory=dg.EnvVar("CACHE_TEST_CLASH_DIR")),
        ),
    ]
    for first, second in managers:
        _assert_prices_reader_gets_prices(first, second)


# --- 4. clash false positives: legitimate definitions refused --------------------------------

CUSTOMERS = dg.DynamicPartitionsDefinition(name="customers")
BY_CUSTOMER = dg.MultiPartitionsDefinition({"date": DAILY, "customer": CUSTOMERS})


@dg.asset(partitions_def=BY_CUSTOMER)
def orders(context: dg.AssetExecutionContext) -> str:
    return "orders"


@dg.asset(key=["orders", "summary"])
def orders_summary() -> str:
    return "summary"


@freeze_time("2024-01-15 12:00:00")
def test_an_asset_named_under_a_dynamically_partitioned_one_is_not_refused(tmp_path: Path) -> None:
    """`orders` (date x dynamic customer) and `orders/summary` (prefix `orders__summary`): the
    pattern for a dynamic dimension is `orders__.+`, so `orders/summary` can never be materialized,
    although no customer named "summary" exists."""
    for manager in (dagsters(tmp_path), ours(tmp_path)):
        defs = dg.Definitions(assets=[orders, orders_summary], resources={"io_manager": manager})
        job = defs.resolve_implicit_global_asset_job_def()
        ran = job.execute_in_process(
            asset_selection=[dg.AssetKey(["orders", "summary"])], raise_on_error=False
        )
        assert ran.success, (type(manager).__name__, step_failures(ran))


@dg.asset(key="rates")
def rates_a() -> str:
    return "rates"


@dg.asset(key="fx_b", io_manager_key="other_io", metadata={"cache_prefix": "rates"})
def fx_b() -> str:
    return "fx"


@freeze_time("2024-01-15 12:00:00")
def test_a_key_configured_at_launch_elsewhere_is_not_a_clash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`other_io` is configured at launch to write elsewhere; the check reads its definition-time
    config ({}), assumes the default "data", and refuses `rates` because `fx_b` (on other_io) has
    cache_prefix "rates". The two never share a directory."""
    monkeypatch.chdir(tmp_path)
    defs = dg.Definitions(
        assets=[rates_a, fx_b],
        resources={
            "io_manager": DatedCacheIOManager(directory="data"),
            "other_io": DatedCacheIOManager.configure_at_launch(),
        },
    )
    job = defs.resolve_implicit_global_asset_job_def()
    ran = job.execute_in_process(
        asset_selection=[dg.AssetKey("rates")],
        raise_on_error=False,
        run_config={"resources": {"other_io": {"config": {"directory": str(tmp_path / "elsewhere")}}}},
    )
    assert ran.success, step_failures(ran)


@dg.op(out=dg.Out(str, metadata={"cache_prefix": "shared"}))
def make_one() -> str:
    return "one"


@dg.op(out=dg.Out(str, metadata={"cache_prefix": "shared"}))
def make_two() -> str:
    return "two"


@dg.job
def shared_job() -> None:
    echo(make_one())
    echo_b(make_two())


@freeze_time("2024-01-15 12:00:00")
def test_two_op_outputs_with_one_cache_prefix_in_one_job_are_refused_naming_both(tmp_path: Path) -> None:
    """Two ops of one job whose Outs both name cache_prefix "shared" would write `shared_<day>` in turn
    and hand `echo` the other op's value; refused before anything is written, as for assets."""
    result = shared_job.execute_in_process(resources={"io_manager": ours(tmp_path)}, raise_on_error=False)
    assert not result.success
    message = step_failures(result)
    assert "both name cache_prefix 'shared'" in message and "make_" in message, message
    assert not (tmp_path / "ours").exists() or os.listdir(tmp_path / "ours") == []
