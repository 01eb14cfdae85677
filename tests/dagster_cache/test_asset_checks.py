"""Asset checks on the cache files, freshness from cb_time, retention and data versions."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import dagster as dg
import pandas as pd  # before freezegun, as the suite requires
import pytest
from freezegun import freeze_time

from cache_utils import cache_dates, cache_fingerprint, data_fingerprint, save_cache
from dagster_cache import (
    DatedCacheIOManager,
    build_cache_checks,
    build_cache_file_checks,
    build_cache_freshness_checks,
    cache_data_version,
)

LONDON = "Europe/London"
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1, timezone=LONDON)


@dg.asset(partitions_def=DAILY)
def sales() -> dict:
    return {"v": 1}


@dg.asset(metadata={"cache_prefix": "fx_rates"})
def rates() -> dict:
    return {"r": 1}


def _manager(tmp_path: Path, **fields: object) -> DatedCacheIOManager:
    return DatedCacheIOManager(directory=str(tmp_path), timezone=LONDON, **fields)


def _run_checks(tmp_path: Path, checks: list, instance: dg.DagsterInstance | None = None,
                **fields: object) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    result = dg.materialize([sales, rates, *checks], resources={"io_manager": _manager(tmp_path, **fields)},
                            instance=instance, selection=dg.AssetSelection.all_asset_checks())
    return {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}


# --- the file checks ---------------------------------------------------------------------------


@freeze_time("2024-03-05 12:00:00")
def test_file_checks_pass_on_todays_good_file(tmp_path: Path) -> None:
    save_cache({"v": 0}, "sales", "2024-03-05", str(tmp_path))
    save_cache({"r": 0}, "fx_rates", "2024-03-05", str(tmp_path))
    got = _run_checks(tmp_path, build_cache_file_checks(assets=[sales, rates]))
    assert len(got) == 6 and all(e.passed for e in got.values())
    verified = got[("rates", "cache_file_verifies")]
    assert verified.metadata["dagster_cache/fingerprint"].value == cache_fingerprint(
        "fx_rates", "2024-03-05", str(tmp_path)).fingerprint


@freeze_time("2024-03-05 12:00:00")
def test_missing_todays_file_is_an_error_and_an_old_one_a_warning(tmp_path: Path) -> None:
    save_cache({"v": 0}, "sales", "2024-03-02", str(tmp_path))  # three days old
    got = _run_checks(tmp_path, build_cache_file_checks(assets=[sales], max_age_days=2))
    exists, verifies, age = (got[("sales", n)] for n in
                             ("cache_file_exists", "cache_file_verifies", "cache_file_age"))
    assert not exists.passed and exists.severity == dg.AssetCheckSeverity.ERROR
    assert "sales_20240305.pkl.gz is missing" in exists.description
    assert verifies.passed  # the newest file, the one a load falls back to, is sound
    assert not age.passed and age.severity == dg.AssetCheckSeverity.WARN
    assert age.metadata["age_days"].value == 3


@freeze_time("2024-03-05 12:00:00")
def test_no_file_at_all_fails_every_check(tmp_path: Path) -> None:
    got = _run_checks(tmp_path, build_cache_file_checks(assets=[rates]))
    names = ("cache_file_exists", "cache_file_verifies", "cache_file_age")
    assert [got[("rates", n)].passed for n in names] == [False, False, False]


@freeze_time("2024-03-05 12:00:00")
def test_a_corrupt_or_wrongly_signed_file_fails_verification(tmp_path: Path) -> None:
    path = Path(save_cache({"v": list(range(10_000))}, "sales", "2024-03-05", str(tmp_path)))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    save_cache({"r": 1}, "fx_rates", "2024-03-05", str(tmp_path), signing_key="other key")
    got = _run_checks(tmp_path, build_cache_file_checks(assets=[sales, rates]), signing_key="our key")
    for asset in ("sales", "rates"):
        check = got[(asset, "cache_file_verifies")]
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        assert "does not verify" in check.description
        assert got[(asset, "cache_file_exists")].passed


@freeze_time("2024-03-05 23:30:00")  # 23:30 UTC is already the 6th in Tokyo
def test_today_is_the_managers_time_zone(tmp_path: Path) -> None:
    save_cache({"r": 1}, "fx_rates", "2024-03-06", str(tmp_path))
    checks = build_cache_file_checks(assets=[rates])
    result = dg.materialize(
        [rates, *checks], selection=dg.AssetSelection.all_asset_checks(),
        resources={"io_manager": DatedCacheIOManager(directory=str(tmp_path), timezone="Asia/Tokyo")})
    assert all(e.passed for e in result.get_asset_check_evaluations())


def test_file_checks_refuse_bad_definitions() -> None:
    static = dg.StaticPartitionsDefinition(["eu", "us"])

    @dg.asset(partitions_def=static)
    def by_region() -> dict:
        return {}

    with pytest.raises(dg.DagsterInvalidDefinitionError, match="StaticPartitionsDefinition"):
        build_cache_file_checks(assets=[by_region])
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="'2'"):
        build_cache_file_checks(assets=[sales], max_age_days="2")  # type: ignore[arg-type]
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="-1"):
        build_cache_file_checks(assets=[sales], max_age_days=-1)
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="at least one asset"):
        build_cache_file_checks(assets=[])


# --- freshness from cb_time ----------------------------------------------------------------------


def test_freshness_expects_todays_partition_and_todays_update_after_cb_time(tmp_path: Path) -> None:
    checks = build_cache_freshness_checks(assets=[sales, rates], cb_time="06:30", timezone=LONDON)
    instance = dg.DagsterInstance.ephemeral()
    resources = {"io_manager": _manager(tmp_path)}

    def fresh() -> dict[str, bool]:
        got = _run_checks(tmp_path, checks, instance)
        return {asset: e.passed for (asset, _name), e in got.items()}

    with freeze_time("2024-03-05 06:40:00"):  # London is on UTC in March
        dg.materialize([sales], partition_key="2024-03-04", resources=resources, instance=instance)
        dg.materialize([rates], resources=resources, instance=instance)
        assert fresh() == {"sales": False, "rates": True}  # yesterday's partition is not today's
        dg.materialize([sales], partition_key="2024-03-05", resources=resources, instance=instance)
        assert fresh() == {"sales": True, "rates": True}
    with freeze_time("2024-03-06 06:20:00"):  # before the next day's cb_time: still fresh
        assert fresh() == {"sales": True, "rates": True}
    with freeze_time("2024-03-06 06:31:00"):  # after it: overdue until today's data arrives
        evaluations = _run_checks(tmp_path, checks, instance)
        assert {e.passed for e in evaluations.values()} == {False}
        assert {e.severity for e in evaluations.values()} == {dg.AssetCheckSeverity.WARN}


def test_freshness_refuses_partitions_without_todays_partition_and_bad_cb_time() -> None:
    closed = dg.DailyPartitionsDefinition(start_date="2024-01-01")

    @dg.asset(partitions_def=closed)
    def closed_days() -> dict:
        return {}

    with pytest.raises(dg.DagsterInvalidDefinitionError, match="end_offset=1"):
        build_cache_freshness_checks(assets=[closed_days], cb_time="06:30")
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="25:00"):
        build_cache_freshness_checks(assets=[sales], cb_time="25:00")
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="Mars"):
        build_cache_freshness_checks(assets=[sales], cb_time="06:30", timezone="Mars/Olympus")


def test_one_call_gives_checks_and_the_freshness_sensor_in_definitions(tmp_path: Path) -> None:
    extra = build_cache_checks(assets=[sales, rates], cb_time="06:30", timezone=LONDON)
    defs = dg.Definitions(assets=[sales, rates], asset_checks=extra.asset_checks, sensors=extra.sensors,
                          resources={"io_manager": _manager(tmp_path)})
    repo = defs.get_repository_def()
    check_names = {k.name for k in repo.asset_graph.asset_check_keys}
    assert check_names == {"cache_file_exists", "cache_file_verifies", "cache_file_age",
                           "freshness_check"}
    assert [s.name for s in repo.sensor_defs] == ["cache_freshness_checks_sensor"]


# --- retention -----------------------------------------------------------------------------------


@freeze_time("2024-03-10 12:00:00")
def test_keep_days_prunes_each_written_prefix_after_the_write(tmp_path: Path) -> None:
    for day in range(1, 10):
        save_cache({"v": day}, "fx_rates", f"2024-03-0{day}", str(tmp_path))
    save_cache({"other": 1}, "fx_rates_eu", "2024-03-01", str(tmp_path))  # shares the prefix's start
    result = dg.materialize([rates], resources={"io_manager": _manager(tmp_path, keep_days=3)})
    # Dated more than 3 days before today (the 10th): the 6th and earlier (issue 19, item 4).
    assert cache_dates("fx_rates", str(tmp_path)) == [dt.date(2024, 3, d) for d in (10, 9, 8, 7)]
    assert cache_dates("fx_rates_eu", str(tmp_path)) == [dt.date(2024, 3, 1)]
    materialization = result.asset_materializations_for_node("rates")[0]
    assert materialization.metadata["dagster_cache/pruned"].value == 6


@freeze_time("2024-03-10 12:00:00")
def test_keep_days_one_leaves_only_the_file_just_written_and_zero_is_refused(tmp_path: Path) -> None:
    save_cache({"v": 1}, "sales", "2024-03-01", str(tmp_path))
    partitions = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)

    @dg.asset(partitions_def=partitions, name="sales")
    def broken_sales() -> dict:
        return {"v": 2}

    dg.materialize([broken_sales], partition_key="2024-03-10",
                   resources={"io_manager": _manager(tmp_path, keep_days=1)})
    assert cache_dates("sales", str(tmp_path)) == [dt.date(2024, 3, 10)]
    with pytest.raises(Exception, match="keep_days"):
        _manager(tmp_path, keep_days=0)


# --- data versions ------------------------------------------------------------------------------


@freeze_time("2024-03-05 12:00:00")
def test_written_fingerprint_is_the_data_version_an_asset_can_return(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": range(1000), "s": [f"x{i}" for i in range(1000)]})

    @dg.asset(metadata={"cache_prefix": "frame"})
    def versioned() -> dg.Output:
        return dg.Output(frame, data_version=cache_data_version(frame))

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([versioned], resources={"io_manager": _manager(tmp_path)}, instance=instance)
    materialization = result.asset_materializations_for_node("versioned")[0]
    on_disk = cache_fingerprint("frame", "2024-03-05", str(tmp_path)).fingerprint
    assert materialization.metadata["dagster_cache/fingerprint"].value == on_disk
    assert materialization.tags["dagster/data_version"] == on_disk == data_fingerprint(frame)
    changed = frame.assign(a=frame["a"] + 1)
    assert cache_data_version(changed) != cache_data_version(frame)
    assert cache_data_version(frame.copy()) == cache_data_version(frame)  # same data, same version
    assert os.path.exists(tmp_path / "frame_20240305.pkl.gz")


def test_our_factories_raise_no_supersession_notice(recwarn: pytest.WarningsRecorder) -> None:
    build_cache_checks(assets=[sales, rates], cb_time="06:30", timezone=LONDON)
    assert not [w for w in recwarn if issubclass(w.category, dg.SupersessionWarning)]
