"""External caches: files save_cache writes outside Dagster, reported by build_cache_observation_sensor
as materializations with their content's data version; staleness and eager automation downstream,
on a real DagsterInstance, locally and on S3 (moto)."""

import datetime as dt
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd  # noqa: F401 - imported before the first freeze_time, as freezegun needs
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest
from freezegun import freeze_time

import dagster_cache.external as external
from cache_utils import cache_fingerprint, list_caches, read_cache, save_cache
from dagster_cache import DatedCacheIOManager, build_cache_observation_sensor, external_cache_asset
from tests.support.s3_server import MotoS3

LONDON = ZoneInfo("Europe/London")
NOON = dt.datetime(2024, 1, 16, 12, 0, tzinfo=LONDON)
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1, timezone="Europe/London")
COMPACT = dg.DailyPartitionsDefinition(start_date="20240101", end_offset=1, timezone="Europe/London",
                                       fmt="%Y%m%d")


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        warnings.simplefilter("ignore", dg.PreviewWarning)
        yield


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """Every list_caches call the sensor makes: (directory, prefix)."""
    calls: list[tuple[str, str | None]] = []

    def spy(directory: str = "data", prefix: str | None = None, **kw: Any) -> Any:
        calls.append((directory, prefix))
        return list_caches(directory, prefix, **kw)

    monkeypatch.setattr(external, "list_caches", spy)
    return calls


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None) -> Any:
    """One sensor tick as the daemon runs it: evaluate, store the asset events, keep the cursor."""
    data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
    for event in data.asset_events:
        instance.report_runless_asset_event(event)
    return data


def materializations(data: Any) -> list[dg.AssetMaterialization]:
    return [e for e in data.asset_events if isinstance(e, dg.AssetMaterialization)]


def stale(instance: dg.DagsterInstance, defs: dg.Definitions, key: dg.AssetKey, partition: str | None) -> Any:
    """(status, causes) as the UI's "Unsynced" label computes them (the webserver's resolver)."""
    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    causes = resolver.get_stale_causes(key, partition)
    return resolver.get_status(key, partition), [(c.reason, c.dependency) for c in causes]


# --- the asset spec -------------------------------------------------------------------------------


def test_external_cache_asset_names_its_prefix_for_the_io_manager() -> None:
    spec = external_cache_asset("fx_rates", partitions_def=DAILY, group_name="vendors", owners=["team:fx"])
    assert spec.key == dg.AssetKey("fx_rates")
    assert spec.metadata["cache_prefix"] == "fx_rates"
    assert (spec.partitions_def, spec.group_name, spec.owners) == (DAILY, "vendors", ["team:fx"])
    assert "fx_rates_YYYYMMDD.pkl.gz" in (spec.description or "")  # plain text: the UI renders markdown
    assert "<" not in (spec.description or "") and "`" not in (spec.description or "")
    keyed = external_cache_asset("fx_rates", key=["vendor", "fx"], metadata={"owner": "ops"})
    assert keyed.key == dg.AssetKey(["vendor", "fx"])
    assert keyed.metadata == {"owner": "ops", "cache_prefix": "fx_rates"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prefix": "a/b"}, "invalid cache prefix"),
        ({"prefix": ""}, "must not be empty"),
        ({"prefix": "x", "partitions_def": dg.StaticPartitionsDefinition(["a"])}, "StaticPartitions"),
        ({"prefix": "x", "partitions_def": dg.HourlyPartitionsDefinition("2024-01-01-00:00", end_offset=1)},
         "sub-daily"),
        ({"prefix": "x", "partitions_def": dg.DailyPartitionsDefinition("2024-01-01")}, "end_offset=0"),
        ({"prefix": "x", "metadata": {"cache_prefix": "y"}}, "cache_prefix='y'"),
    ],
)
def test_external_cache_asset_refuses_mistakes_at_definition_time(
    kwargs: dict[str, Any], message: str
) -> None:
    prefix = kwargs.pop("prefix")
    with pytest.raises(dg.DagsterInvalidDefinitionError, match=message):
        external_cache_asset(prefix, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"assets": []}, "at least one asset"),
        ({"assets": [object()]}, "must be AssetSpecs"),
        ({"assets": [external_cache_asset("x"), external_cache_asset("x", key="other")]}, "both map to"),
        ({"assets": [dg.AssetSpec("x", partitions_def=dg.DailyPartitionsDefinition("2024-01-01"))]},
         "end_offset=0"),
        ({"assets": [external_cache_asset("x")], "max_files_per_tick": 0}, "max_files_per_tick"),
        ({"assets": [external_cache_asset("x")], "max_files_per_tick": True}, "max_files_per_tick"),
        ({"assets": [external_cache_asset("x")], "timezone": "Mars/Olympus"}, "Mars/Olympus"),
    ],
)
def test_sensor_refuses_mistakes_at_definition_time(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(dg.DagsterInvalidDefinitionError, match=message):
        build_cache_observation_sensor(**kwargs)


def test_sensor_defaults_and_plain_asset_specs() -> None:
    sensor = build_cache_observation_sensor(assets=dg.AssetSpec(["market", "prices"]))  # market__prices
    assert sensor.name == "cache_observation_sensor"
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.minimum_interval_seconds == 60
    assert "market__prices" in (sensor.description or "")
    spec = external_cache_asset("fx_rates", partitions_def=DAILY)
    dg.Definitions.validate_loadable(dg.Definitions(assets=[spec], sensors=[
        build_cache_observation_sensor(assets=[spec], name="fx_files", max_files_per_tick=10)]))


# --- what the sensor reports ----------------------------------------------------------------------


def test_each_new_file_once_with_date_size_path_partition_key_and_data_version(
    tmp_path: Path, listings: list[tuple[str, str | None]]
) -> None:
    directory = str(tmp_path)
    spec = external_cache_asset("fx_rates", partitions_def=COMPACT)
    other = external_cache_asset("fx_other")
    sensor = build_cache_observation_sensor(assets=[spec, other], directory=directory,
                                            timezone="Europe/London")
    instance = dg.DagsterInstance.ephemeral()
    with freeze_time(NOON):
        for day in ("2023-12-31", "2024-01-14", "2024-01-15", "2024-01-16", "2024-01-17"):
            save_cache({"day": day}, "fx_rates", day, directory)
        save_cache("not watched", "fx_rates_extra", "2024-01-16", directory)

        first = tick(sensor, instance, None)
        mats = materializations(first)
        # 2023-12-31 is before the first partition; 2024-01-17 is tomorrow in London: not a partition yet
        assert [m.partition for m in mats] == ["20240114", "20240115", "20240116"]
        newest = cache_fingerprint("fx_rates", "2024-01-16", directory)
        m = mats[-1]
        assert m.asset_key == spec.key
        assert m.metadata["path"].value == newest.path
        assert m.metadata["dagster_cache/date"].value == "2024-01-16"
        assert m.metadata["dagster_cache/size_bytes"].value == newest.size
        assert m.metadata["dagster_cache/fingerprint"].value == newest.fingerprint
        assert m.tags["dagster/data_version"] == newest.fingerprint
        # each partition's observation (same data version) goes just before its materialization
        kinds = [(type(e).__name__, e.partition) for e in first.asset_events]
        assert kinds[:2] == [("AssetObservation", "20240114"), ("AssetMaterialization", "20240114")]
        days = {d: cache_fingerprint("fx_rates", d, directory).fingerprint  # the lookback window's
                for d in ("2024-01-14", "2024-01-15", "2024-01-16")}
        assert json.loads(first.cursor) == {
            "fx_rates": {"date": "2024-01-16", "fingerprint": newest.fingerprint, "days": days}}
        record = instance.get_latest_data_version_record(spec.key, partition_key="20240116")
        assert record is not None and record.asset_materialization is not None
        assert record.event_log_entry.tags["dagster/data_version"] == newest.fingerprint
        # one listing per prefix per tick, never the whole directory
        assert listings == [(directory, "fx_rates"), (directory, "fx_other")]

        again = tick(sensor, instance, first.cursor)
        assert again.asset_events == [] and "no new cache files" in (again.skip_message or "")
        assert again.cursor == first.cursor

        save_cache({"day": "2024-01-16"}, "fx_rates", "2024-01-16", directory)  # identical data rewritten
        assert tick(sensor, instance, first.cursor).asset_events == []
        save_cache({"day": "2024-01-16", "fixed": True}, "fx_rates", "2024-01-16", directory)
        rewritten = tick(sensor, instance, first.cursor)
        [m] = materializations(rewritten)
        changed = cache_fingerprint("fx_rates", "2024-01-16", directory).fingerprint
        assert (m.partition, m.tags["dagster/data_version"]) == ("20240116", changed)
        assert changed != newest.fingerprint
        assert len(listings) == 2 * 4

    with freeze_time(NOON + dt.timedelta(days=1)):  # tomorrow's partition now exists
        [m] = materializations(tick(sensor, instance, rewritten.cursor))
        assert m.partition == "20240117"


def test_an_unpartitioned_asset_is_its_newest_file_up_to_today(tmp_path: Path) -> None:
    directory = str(tmp_path)
    spec = external_cache_asset("rates")
    sensor = build_cache_observation_sensor(assets=[spec], directory=directory, timezone="Asia/Tokyo")
    instance = dg.DagsterInstance.ephemeral()
    late_evening = dt.datetime(2024, 1, 16, 23, 30, tzinfo=LONDON)  # already the 17th in Tokyo
    with freeze_time(late_evening):
        for day in ("2024-01-14", "2024-01-15", "2024-01-17", "2024-01-18"):
            save_cache(day, "rates", day, directory)
        first = tick(sensor, instance, None)
        [m] = materializations(first)  # older files are superseded: consumers load the newest
        assert (m.partition, m.metadata["dagster_cache/date"].value) == (None, "2024-01-17")
        assert [type(e) for e in first.asset_events] == [dg.AssetMaterialization]  # no observation
        assert tick(sensor, instance, first.cursor).asset_events == []
    with freeze_time(late_evening + dt.timedelta(days=1)):
        [m] = materializations(tick(sensor, instance, first.cursor))
        assert m.metadata["dagster_cache/date"].value == "2024-01-18"


def test_a_long_history_is_reported_oldest_first_at_most_max_files_per_tick(tmp_path: Path) -> None:
    directory = str(tmp_path)
    history = dg.DailyPartitionsDefinition(start_date="2023-01-01", end_offset=1, timezone="Europe/London")
    spec = external_cache_asset("history", partitions_def=history)
    sensor = build_cache_observation_sensor(assets=[spec], directory=directory)  # 100 files a tick
    days = [dt.date(2023, 1, 1) + dt.timedelta(days=i) for i in range(400)]
    for day in days:
        save_cache(day.isoformat(), "history", day, directory)
    instance = dg.DagsterInstance.ephemeral()
    cursor, reported = None, []
    with freeze_time(dt.datetime(2024, 2, 10, 12, tzinfo=LONDON)):
        for _ in range(4):
            data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
            batch = [m.partition for m in materializations(data)]
            assert len(batch) == 100 and len(data.asset_events) == 200  # with their observations
            reported += batch
            cursor = data.cursor
            assert json.loads(cursor)["history"]["date"] == batch[-1]  # advances to the last reported
        last = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
    assert last.asset_events == [] and last.skip_message
    assert reported == [d.isoformat() for d in days]  # each once, oldest first


def test_a_truncated_file_is_not_reported_until_it_is_rewritten(tmp_path: Path) -> None:
    directory = str(tmp_path)
    sensor = build_cache_observation_sensor(assets=[external_cache_asset("raw")], directory=directory)
    instance = dg.DagsterInstance.ephemeral()
    with freeze_time(NOON):
        (tmp_path / "raw_20240116.pkl.gz").write_bytes(b"\x1f\x8b")
        first = tick(sensor, instance, None)
        assert first.asset_events == []
        assert json.loads(first.cursor) == {"raw": {"date": "2024-01-16", "fingerprint": "",
                                                    "days": {"2024-01-16": ""}}}
        assert tick(sensor, instance, first.cursor).asset_events == []
        save_cache([1, 2], "raw", "2024-01-16", directory)
        [m] = materializations(tick(sensor, instance, first.cursor))
        assert m.tags["dagster/data_version"] == cache_fingerprint("raw", "2024-01-16", directory).fingerprint


def test_an_unreadable_cursor_is_an_error_not_a_silent_replay(tmp_path: Path) -> None:
    sensor = build_cache_observation_sensor(assets=[external_cache_asset("raw")], directory=str(tmp_path))
    with pytest.raises(ValueError, match="unreadable cursor"):
        sensor.evaluate_tick(dg.build_sensor_context(cursor="2024-01-16"))


# --- consumers: the IO manager, staleness, automation ---------------------------------------------


def pair(
    partitions_def: dg.PartitionsDefinition | None, reads_from: str | None = None
) -> tuple[dg.AssetSpec, dg.AssetsDefinition]:
    """An external cache (asset key vendor/fx, prefix fx_rates) and an eager Dagster asset reading it:
    as an input, through the IO manager; or, given `reads_from` (a directory), as a dependency
    without an input, reading the file with cache_utils itself."""
    spec = external_cache_asset("fx_rates", key=["vendor", "fx"], partitions_def=partitions_def)
    eager = dg.AutomationCondition.eager()

    if reads_from is None:
        @dg.asset(partitions_def=partitions_def, ins={"rates": dg.AssetIn(["vendor", "fx"])},
                  automation_condition=eager)
        def fx_report(rates: dict) -> int:
            return round(rates["EURUSD"] * 100)

        return spec, fx_report

    @dg.asset(partitions_def=partitions_def, deps=[spec], automation_condition=eager)
    def fx_report_direct(context: dg.AssetExecutionContext) -> int:
        day = context.partition_key if context.has_partition_key else "2024-01-16"
        return round(read_cache("fx_rates", day, reads_from)["EURUSD"] * 100)

    return spec, fx_report_direct




@pytest.mark.parametrize(
    ("partitioned", "io_input"),
    [
        pytest.param(False, True, id="unpartitioned-io-manager-input"),
        pytest.param(False, False, id="unpartitioned-deps"),
        pytest.param(True, False, id="daily-deps"),
        pytest.param(True, True, id="daily-io-manager-input"),
    ],
)
def test_downstream_is_unsynced_when_the_file_changes_not_when_identical_data_is_rewritten(
    tmp_path: Path, partitioned: bool, io_input: bool
) -> None:
    directory = str(tmp_path)
    spec, fx_report = pair(DAILY if partitioned else None, None if io_input else directory)
    sensor = build_cache_observation_sensor(assets=[spec], directory=directory, timezone="Europe/London")
    io_manager = DatedCacheIOManager(directory=directory, timezone="Europe/London")
    defs = dg.Definitions(assets=[spec, fx_report], sensors=[sensor], resources={"io_manager": io_manager})
    partition = "2024-01-16" if partitioned else None
    with dg.instance_for_test() as instance, freeze_time(NOON, tick=True):
        def run() -> int:
            result = dg.materialize([spec, fx_report], instance=instance, partition_key=partition,
                                    resources={"io_manager": io_manager}, selection=[fx_report])
            return result.output_for_node(fx_report.op.name)

        save_cache({"EURUSD": 1.08}, "fx_rates", "2024-01-16", directory)
        cursor = tick(sensor, instance, None).cursor
        assert run() == 108  # with an input: DatedCacheIOManager read it through the spec's prefix
        assert stale(instance, defs, fx_report.key, partition) == (StaleStatus.FRESH, [])

        save_cache({"EURUSD": 1.08}, "fx_rates", "2024-01-16", directory)  # the same data again
        assert tick(sensor, instance, cursor).asset_events == []
        assert stale(instance, defs, fx_report.key, partition) == (StaleStatus.FRESH, [])

        save_cache({"EURUSD": 1.09}, "fx_rates", "2024-01-16", directory)  # new data
        cursor = tick(sensor, instance, cursor).cursor
        status, causes = stale(instance, defs, fx_report.key, partition)
        assert status == StaleStatus.STALE
        assert [reason for reason, _dep in causes] == ["has a new dependency data version"]
        assert causes[0][1].asset_key == spec.key
        record = instance.get_latest_data_version_record(spec.key, partition_key=partition)
        new_version = cache_fingerprint("fx_rates", "2024-01-16", directory).fingerprint
        assert record is not None and record.event_log_entry.tags["dagster/data_version"] == new_version

        assert run() == 109
        assert stale(instance, defs, fx_report.key, partition) == (StaleStatus.FRESH, [])


@pytest.mark.parametrize("partitioned", [False, True], ids=["unpartitioned", "daily"])
def test_an_eager_downstream_is_requested_after_a_new_file_and_not_again_without_one(
    tmp_path: Path, partitioned: bool
) -> None:
    directory = str(tmp_path)
    spec, fx_report = pair(DAILY if partitioned else None)
    sensor = build_cache_observation_sensor(assets=[spec], directory=directory, timezone="Europe/London")
    defs = dg.Definitions(assets=[spec, fx_report], sensors=[sensor],
                          resources={"io_manager": DatedCacheIOManager(directory=directory)})
    wanted = {"2024-01-16"} if partitioned else {None}
    instance = dg.DagsterInstance.ephemeral()
    with freeze_time(NOON, tick=True):
        state = dg.evaluate_automation_conditions(defs=defs, instance=instance)  # the daemon's earlier tick
        assert state.total_requested == 0  # nothing to read yet: the external asset is missing

        save_cache({"EURUSD": 1.08}, "fx_rates", "2024-01-16", directory)
        cursor = tick(sensor, instance, None).cursor
        state = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=state.cursor)
        assert state.get_requested_partitions(fx_report.key) == wanted

        state = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=state.cursor)
        assert state.total_requested == 0  # requested once, not on every tick

        save_cache({"EURUSD": 1.08}, "fx_rates", "2024-01-16", directory)  # identical: nothing reported
        cursor = tick(sensor, instance, cursor).cursor
        state = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=state.cursor)
        assert state.total_requested == 0

        save_cache({"EURUSD": 1.09}, "fx_rates", "2024-01-16", directory)  # changed: reported again
        tick(sensor, instance, cursor)
        state = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=state.cursor)
        assert state.get_requested_partitions(fx_report.key) == wanted


# --- S3 -------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_on_s3_the_sensor_lists_by_prefix_and_reports_rewrites(
    s3: MotoS3, bucket: str, listings: list[tuple[str, str | None]]
) -> None:
    directory, options = f"s3://{bucket}/caches", s3.options()
    spec, fx_report = pair(DAILY)
    sensor = build_cache_observation_sensor(assets=[spec], directory=directory, storage_options=options)
    io_manager = DatedCacheIOManager(directory=directory, storage_options=options, timezone="Europe/London")
    with dg.instance_for_test() as instance, freeze_time(NOON, tick=True):
        for day in ("2024-01-15", "2024-01-16"):
            save_cache({"EURUSD": 1.08}, "fx_rates", day, directory, storage_options=options)
        save_cache("another team's", "fx_rates_raw", "2024-01-16", directory, storage_options=options)

        first = tick(sensor, instance, None)
        mats = materializations(first)
        assert [m.partition for m in mats] == ["2024-01-15", "2024-01-16"]
        newest = cache_fingerprint("fx_rates", "2024-01-16", directory, storage_options=options)
        assert mats[-1].metadata["path"].value == newest.path
        assert newest.path == f"s3://{bucket}/caches/fx_rates_20240116.pkl.gz"
        assert mats[-1].tags["dagster/data_version"] == newest.fingerprint
        assert listings == [(directory, "fx_rates")]

        result = dg.materialize([spec, fx_report], instance=instance, partition_key="2024-01-16",
                                resources={"io_manager": io_manager}, selection=[fx_report])
        assert result.output_for_node("fx_report") == 108

        save_cache({"EURUSD": 1.08}, "fx_rates", "2024-01-16", directory, storage_options=options)
        assert tick(sensor, instance, first.cursor).asset_events == []
        save_cache({"EURUSD": 1.1}, "fx_rates", "2024-01-16", directory, storage_options=options)
        [m] = materializations(tick(sensor, instance, first.cursor))
        assert m.partition == "2024-01-16" and m.tags["dagster/data_version"] != newest.fingerprint
        assert listings == [(directory, "fx_rates")] * 3
