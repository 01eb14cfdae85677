"""Refresh schedule and sensor, and the property that ties them to load_cache's next callback."""

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from dagster._utils.schedules import schedule_execution_time_iterator
from freezegun import freeze_time

from cache_utils import load_cache, save_cache
from cache_utils.timing import at_time, parse_cb_time
from dagster_cache import build_cache_refresh_schedule, build_cache_refresh_sensor

LONDON = ZoneInfo("Europe/London")
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1, timezone="Europe/London")


@dg.asset(partitions_def=DAILY)
def sales_data() -> int:
    return 1


@dg.asset
def rates() -> int:
    return 1


refresh_job = dg.define_asset_job("refresh_job", selection=[sales_data])  # partitions inferred
rates_job = dg.define_asset_job("rates_job", selection=[rates])


def repo(*defs_items: object) -> dg.RepositoryDefinition:
    schedules = [d for d in defs_items if isinstance(d, dg.ScheduleDefinition)]
    sensors = [d for d in defs_items if isinstance(d, dg.SensorDefinition)]
    return dg.Definitions(assets=[sales_data, rates], jobs=[refresh_job, rates_job],
                          schedules=schedules, sensors=sensors).get_repository_def()


def test_schedule_requests_todays_partition_then_skips(tmp_path: Path) -> None:
    schedule = build_cache_refresh_schedule(prefix="sales_data", cb_time="06:30", job=refresh_job,
                                            directory=str(tmp_path), timezone="Europe/London")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 6 * * *", "Europe/London")
    assert schedule.name == "refresh_sales_data_schedule"
    tick = dt.datetime(2024, 3, 31, 6, 30, tzinfo=LONDON)
    ctx = dg.build_schedule_context(scheduled_execution_time=tick, repository_def=repo(schedule))
    requests = schedule.evaluate_tick(ctx).run_requests
    assert [(r.run_key, r.partition_key) for r in requests] == [("sales_data:2024-03-31", "2024-03-31")]
    save_cache(1, "sales_data", "2024-03-31", str(tmp_path))
    ctx = dg.build_schedule_context(scheduled_execution_time=tick, repository_def=repo(schedule))
    result = schedule.evaluate_tick(ctx)
    assert result.run_requests == [] and "already exists" in result.skip_message


def test_schedule_for_an_unpartitioned_job_and_a_compact_key_format(tmp_path: Path) -> None:
    schedule = build_cache_refresh_schedule(prefix="rates", cb_time=dt.time(23, 5), job=rates_job,
                                            directory=str(tmp_path), timezone="America/New_York")
    tick = dt.datetime(2024, 3, 10, 23, 5, tzinfo=ZoneInfo("America/New_York"))
    ctx = dg.build_schedule_context(scheduled_execution_time=tick, repository_def=repo(schedule))
    [request] = schedule.evaluate_tick(ctx).run_requests
    assert (request.run_key, request.partition_key) == ("rates:2024-03-10", None)

    compact = dg.DailyPartitionsDefinition(start_date="20240101", fmt="%Y%m%d", end_offset=1)

    @dg.asset(partitions_def=compact)
    def x() -> int:
        return 1

    job = dg.define_asset_job("compact_job", selection=[x])
    schedule = build_cache_refresh_schedule(prefix="x", cb_time="01:00", job=job, directory=str(tmp_path))
    defs = dg.Definitions(assets=[x], jobs=[job], schedules=[schedule])
    ctx = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2024, 2, 1, 1, tzinfo=dt.UTC),
                                    repository_def=defs.get_repository_def())
    assert schedule.evaluate_tick(ctx).run_requests[0].partition_key == "20240201"


def test_schedule_refuses_partitions_without_todays_partition(tmp_path: Path) -> None:
    closed = dg.DailyPartitionsDefinition(start_date="2024-01-01")
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="end_offset=1"):
        build_cache_refresh_schedule(prefix="sales_data", cb_time="06:30", job=refresh_job,
                                     partitions_def=closed)


@pytest.mark.parametrize("bad", [{"cb_time": "25:00"}, {"timezone": "Nowhere/City"}, {"prefix": "a/b"}])
def test_bad_arguments_are_named(bad: dict) -> None:
    kwargs = {"prefix": "sales_data", "cb_time": "06:30", "job": refresh_job, "timezone": "UTC", **bad}
    shown = str(next(iter(bad.values()))).replace("/", ".")
    with pytest.raises(dg.DagsterInvalidDefinitionError, match=shown):
        build_cache_refresh_schedule(**kwargs)


def test_sensor_retries_after_cb_time_until_todays_file_exists(tmp_path: Path) -> None:
    sensor = build_cache_refresh_sensor(prefix="sales_data", cb_time="06:30", job=refresh_job,
                                        directory=str(tmp_path), timezone="Europe/London",
                                        retry_interval=dt.timedelta(minutes=15))
    repository = repo(sensor)
    cursor = None

    def tick(when: str) -> Any:
        nonlocal cursor
        with freeze_time(dt.datetime.fromisoformat(when)):
            ctx = dg.build_sensor_context(cursor=cursor, repository_def=repository)
            data = sensor.evaluate_tick(ctx)
        cursor = data.cursor
        return data

    # 2024-03-31 is London's spring-forward day; times are BST (+01:00).
    early = tick("2024-03-31T06:00:00+01:00")
    assert early.run_requests == [] and cursor == "2024-03-31T06:30:00+01:00"
    first = tick("2024-03-31T06:31:00+01:00")
    assert [(r.run_key, r.partition_key) for r in first.run_requests] == [
        ("sales_data:2024-03-31:20240331T053100Z", "2024-03-31")]
    assert cursor == "2024-03-31T06:46:00+01:00"
    assert tick("2024-03-31T06:40:00+01:00").run_requests == []  # not due yet
    again = tick("2024-03-31T06:47:00+01:00")
    assert len(again.run_requests) == 1 and again.run_requests[0].run_key != first.run_requests[0].run_key
    save_cache(1, "sales_data", "2024-03-31", str(tmp_path))
    done = tick("2024-03-31T07:05:00+01:00")
    assert done.run_requests == [] and "exists" in done.skip_message
    assert cursor == "2024-04-01T06:30:00+01:00"  # load_cache's next callback after a good load


# --- the property: schedule's next tick == load_cache's next_callback after a successful load -----

DST_DAYS = {
    "America/New_York": [dt.date(2024, 3, 10), dt.date(2024, 11, 3)],
    "Europe/London": [dt.date(2024, 3, 31), dt.date(2024, 10, 27)],
}
CB_TIMES = ["00:00", "00:30", "01:00", "01:30", "02:00", "02:30", "03:00", "06:15", "12:00", "23:59"]
CASES = [(zone, day + dt.timedelta(days=shift), cb)
         for zone, days in DST_DAYS.items() for day in days for shift in (-1, 0) for cb in CB_TIMES]


@pytest.mark.parametrize(("zone", "day", "cb"), CASES, ids=[f"{z}-{d}-{c}" for z, d, c in CASES])
def test_next_schedule_tick_equals_load_cache_next_callback(tmp_path: Path, zone: str, day: dt.date,
                                                            cb: str) -> None:
    tz = ZoneInfo(zone)
    schedule = build_cache_refresh_schedule(prefix="p", cb_time=cb, job=rates_job, directory=str(tmp_path),
                                            timezone=zone)
    # 30 s after today's tick, in elapsed time: aware arithmetic would drop fold=1 and land in the
    # first of two repeated hours, before a fall-back day's tick.
    tick = at_time(day, parse_cb_time(cb), tz)
    now = (tick.astimezone(dt.UTC) + dt.timedelta(seconds=30)).astimezone(tz)
    save_cache("fresh", "p", day, str(tmp_path))
    with freeze_time(now):
        data, next_cb = load_cache("p", cb, str(tmp_path), tz=zone)
    assert data == "fresh"
    # As dagster's scheduler does: the first execution time strictly after now (on a fall-back day
    # the iterator can first yield the tick that just happened, at the repeated wall time).
    times = schedule_execution_time_iterator(now.timestamp(), schedule.cron_schedule,
                                             schedule.execution_timezone)
    next_tick = next(t for t in times if t.timestamp() > now.timestamp())
    assert next_tick == next_cb, (next_tick.isoformat(), next_cb.isoformat())
    assert next_tick.astimezone(tz).date() == day + dt.timedelta(days=1)


@pytest.mark.parametrize(("zone", "day", "cb"), CASES, ids=[f"{z}-{d}-{c}" for z, d, c in CASES])
def test_sensor_requests_a_run_only_once_the_tick_instant_has_passed(tmp_path: Path, zone: str, day: dt.date,
                                                                      cb: str) -> None:
    """The sensor fires at the instant the schedule does, never in a repeated hour's first pass."""
    tz = ZoneInfo(zone)
    sensor = build_cache_refresh_sensor(prefix="p", cb_time=cb, job=rates_job, directory=str(tmp_path),
                                        timezone=zone, retry_interval=dt.timedelta(minutes=15))
    repository = repo(sensor)
    tick = at_time(day, parse_cb_time(cb), tz).astimezone(dt.UTC)
    schedule = build_cache_refresh_schedule(prefix="p", cb_time=cb, job=rates_job, directory=str(tmp_path),
                                            timezone=zone)
    times = schedule_execution_time_iterator((tick - dt.timedelta(hours=3)).timestamp(),
                                             schedule.cron_schedule, schedule.execution_timezone)
    assert next(t for t in times if t.astimezone(tz).date() == day).astimezone(dt.UTC) == tick
    # Every 15 minutes of that day from 3 h before the tick: nothing before it, a request after it.
    for minutes in range(-180, 16, 15):
        now = tick + dt.timedelta(minutes=minutes, seconds=-1 if minutes == 0 else 0)
        if now.astimezone(tz).date() != day:  # the day before has its own (passed) tick
            continue
        with freeze_time(now):
            data = sensor.evaluate_tick(dg.build_sensor_context(repository_def=repository))
        assert bool(data.run_requests) == (now >= tick), (now.astimezone(tz).isoformat(), tick.isoformat())


def test_sensor_in_new_yorks_repeated_hour_waits_for_the_standard_time_tick(tmp_path: Path) -> None:
    sensor = build_cache_refresh_sensor(prefix="p", cb_time="01:30", job=rates_job, directory=str(tmp_path),
                                        timezone="America/New_York")
    with freeze_time("2024-11-03 05:45:00"):  # 01:45 EDT: 01:30 EST is 45 minutes away
        data = sensor.evaluate_tick(dg.build_sensor_context(repository_def=repo(sensor)))
    assert data.run_requests == [] and "not due before 2024-11-03T01:30:00-05:00" in data.skip_message


def test_schedule_and_sensor_accept_an_asset_selection_target(tmp_path: Path) -> None:
    schedule = build_cache_refresh_schedule(prefix="sales_data", cb_time="06:30", target=[sales_data],
                                            directory=str(tmp_path), timezone="Europe/London")
    sensor = build_cache_refresh_sensor(prefix="sales_data", cb_time="06:30", target=[sales_data],
                                        directory=str(tmp_path), timezone="Europe/London")
    defs = dg.Definitions(assets=[sales_data], schedules=[schedule], sensors=[sensor])
    repository = defs.get_repository_def()
    tick = dt.datetime(2024, 5, 2, 6, 30, tzinfo=LONDON)
    ctx = dg.build_schedule_context(scheduled_execution_time=tick, repository_def=repository)
    assert schedule.evaluate_tick(ctx).run_requests[0].partition_key == "2024-05-02"
    with freeze_time(tick + dt.timedelta(minutes=1)):
        data = sensor.evaluate_tick(dg.build_sensor_context(repository_def=repository))
    assert [r.partition_key for r in data.run_requests] == ["2024-05-02"]
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="exactly one of job= or target="):
        build_cache_refresh_schedule(prefix="p", cb_time="06:30")
