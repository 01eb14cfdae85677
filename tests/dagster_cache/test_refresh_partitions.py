"""Refresh schedule and sensor on every time-window partition kind, and run keys across a DST fall-back.

Red-team history (issue 19, items 8 and 9): weekly, monthly and hour-offset daily jobs were asked for
"today at 00:00" formatted as a key, which does not exist, so every tick errored; hourly jobs were
asked for the 00:00 slot; the sensor's retry run keys used the local wall time, which repeats in a
fall-back hour, so Dagster dropped the second retry as a duplicate.
"""

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pandas  # noqa: F401 - imported before the first freeze_time (pandas 3 segfaults otherwise)
import pytest
from freezegun import freeze_time

from dagster_cache import DatedCacheIOManager, build_cache_refresh_schedule, build_cache_refresh_sensor

LONDON = "Europe/London"
TICK = dt.datetime(2024, 5, 2, 6, 30, tzinfo=ZoneInfo(LONDON))  # a Thursday; cb_time 06:30

# (name, partitions definition with end_offset=1, the key containing TICK, the file the IO manager writes)
KINDS = [
    ("daily", lambda e: dg.DailyPartitionsDefinition("2024-01-01", end_offset=e, timezone=LONDON),
     "2024-05-02", ("sales", dt.date(2024, 5, 2))),
    # The window containing 06:30 started yesterday at 07:00.
    ("daily_hour_offset", lambda e: dg.DailyPartitionsDefinition("2024-01-01", hour_offset=7, end_offset=e,
                                                                 timezone=LONDON),
     "2024-05-01", ("sales", dt.date(2024, 5, 1))),
    ("hourly", lambda e: dg.HourlyPartitionsDefinition("2024-01-01-00:00", end_offset=e, timezone=LONDON),
     "2024-05-02-06:00", ("sales__0600", dt.date(2024, 5, 2))),
    ("weekly", lambda e: dg.WeeklyPartitionsDefinition("2024-01-01", end_offset=e, timezone=LONDON),
     "2024-04-28", ("sales", dt.date(2024, 4, 28))),
    ("monthly", lambda e: dg.MonthlyPartitionsDefinition("2024-01-01", end_offset=e, timezone=LONDON),
     "2024-05-01", ("sales", dt.date(2024, 5, 1))),
]
IDS = [k[0] for k in KINDS]


def _defs(pdef: dg.PartitionsDefinition, directory: Path, builder: Any, **kw: Any) -> tuple[Any, Any, Any]:
    @dg.asset(partitions_def=pdef)
    def sales() -> int:
        return 7

    job = dg.define_asset_job("sales_job", selection=[sales])  # partitions inferred from the asset
    made = builder(prefix="sales", cb_time="06:30", job=job, directory=str(directory), timezone=LONDON, **kw)
    schedules = [made] if isinstance(made, dg.ScheduleDefinition) else []
    sensors = [made] if not schedules else []
    defs = dg.Definitions(assets=[sales], jobs=[job], schedules=schedules, sensors=sensors,
                          resources={"io_manager": DatedCacheIOManager(directory=str(directory),
                                                                       timezone=LONDON)})
    return sales, made, defs.get_repository_def()


def _materialize(sales: Any, key: str, directory: Path) -> None:
    with freeze_time(TICK + dt.timedelta(minutes=5)):
        result = dg.materialize([sales], partition_key=key, resources={
            "io_manager": DatedCacheIOManager(directory=str(directory), timezone=LONDON)})
    assert result.success


@pytest.mark.parametrize(("name", "make", "key", "file"), KINDS, ids=IDS)
def test_schedule_requests_the_partition_containing_the_tick(tmp_path: Path, name: str, make: Any, key: str,
                                                             file: tuple[str, dt.date]) -> None:
    pdef = make(1)
    sales, schedule, repository = _defs(pdef, tmp_path, build_cache_refresh_schedule)
    ctx = dg.build_schedule_context(scheduled_execution_time=TICK, repository_def=repository)
    [request] = schedule.evaluate_tick(ctx).run_requests
    assert request.partition_key == key
    with dg.partition_loading_context(effective_dt=TICK):
        assert pdef.has_partition_key(request.partition_key)  # Dagster accepts it at the tick
    # Once the IO manager has written that partition's file, the tick skips.
    _materialize(sales, key, tmp_path)
    prefix, day = file
    assert (tmp_path / f"{prefix}_{day:%Y%m%d}.pkl.gz").exists()
    ctx = dg.build_schedule_context(scheduled_execution_time=TICK, repository_def=repository)
    result = schedule.evaluate_tick(ctx)
    assert result.run_requests == [] and "already exists" in (result.skip_message or "")


@pytest.mark.parametrize(("name", "make", "key", "file"), KINDS, ids=IDS)
def test_sensor_requests_the_partition_containing_the_check(tmp_path: Path, name: str, make: Any, key: str,
                                                            file: tuple[str, dt.date]) -> None:
    pdef = make(1)
    sales, sensor, repository = _defs(pdef, tmp_path, build_cache_refresh_sensor)
    with freeze_time(TICK + dt.timedelta(minutes=1)):
        data = sensor.evaluate_tick(dg.build_sensor_context(repository_def=repository))
    [request] = data.run_requests
    assert request.partition_key == key
    _materialize(sales, key, tmp_path)
    with freeze_time(TICK + dt.timedelta(minutes=20)):
        data = sensor.evaluate_tick(dg.build_sensor_context(repository_def=repository))
    assert data.run_requests == [] and "exists" in (data.skip_message or "")


@pytest.mark.parametrize(("name", "make", "key", "file"), KINDS, ids=IDS)
@pytest.mark.parametrize("builder", [build_cache_refresh_schedule, build_cache_refresh_sensor])
def test_without_end_offset_the_definition_is_refused(tmp_path: Path, name: str, make: Any, key: str,
                                                      file: tuple[str, dt.date], builder: Any) -> None:
    """end_offset=0: the window containing the refresh time does not exist until it ends."""
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="end_offset=0.*end_offset=1"):
        builder(prefix="sales", cb_time="06:30", job=dg.define_asset_job("j", selection=["sales"]),
                partitions_def=make(0), directory=str(tmp_path), timezone=LONDON)


def test_sensor_retries_in_the_repeated_fall_back_hour_get_distinct_run_keys(tmp_path: Path) -> None:
    """2026-11-01 in New York: 01:30 EDT and, an hour later, 01:30 EST."""
    @dg.asset
    def rates() -> int:
        return 1

    job = dg.define_asset_job("rates_job", selection=[rates])
    sensor = build_cache_refresh_sensor(prefix="rates", cb_time="00:30", job=job, directory=str(tmp_path),
                                        timezone="America/New_York", retry_interval=dt.timedelta(hours=1))
    repository = dg.Definitions(assets=[rates], jobs=[job], sensors=[sensor]).get_repository_def()
    cursor = None
    keys = []
    for utc in ("2026-11-01T05:30:00+00:00", "2026-11-01T06:30:00+00:00"):  # 01:30 EDT, 01:30 EST
        with freeze_time(dt.datetime.fromisoformat(utc)):
            data = sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, repository_def=repository))
        cursor = data.cursor
        [request] = data.run_requests
        keys.append(request.run_key)
    assert len(set(keys)) == 2
    assert keys == ["rates:2026-11-01:20261101T053000Z", "rates:2026-11-01:20261101T063000Z"]
