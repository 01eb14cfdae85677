"""Issue 19, items 4, 6, 7 and 10, each run through real Dagster execution: retention never eats a
fresh write and `keep_days` counts days; the observation sensor reports late and corrected files;
a run's own unpartitioned output is read by run, not by the reader's clock; long keys and
`allow_missing_partitions` behave as Dagster's `UPathIOManager` does."""


import datetime as dt
import json
import os
from pathlib import Path

import dagster as dg
import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest
from freezegun import freeze_time

from cache_utils import cache_dates, cache_fingerprint, prune, read_cache, save_cache
from dagster_cache import (
    CachePartitionError,
    DatedCacheIOManager,
    build_cache_observation_sensor,
    build_cache_retention_checks,
    external_cache_asset,
)

UTC_DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)


def ours(tmp_path: Path, **fields: object) -> DatedCacheIOManager:
    return DatedCacheIOManager(directory=str(tmp_path / "ours"), **fields)  # type: ignore[arg-type]


def days(tmp_path: Path, prefix: str) -> list[str]:
    return [d.isoformat() for d in cache_dates(prefix, str(tmp_path / "ours"))]


# --- 4. retention ------------------------------------------------------------------------------


@dg.asset(partitions_def=UTC_DAILY)
def ledger(context: dg.AssetExecutionContext) -> str:
    return f"ledger {context.partition_key}"


@dg.asset(partitions_def=UTC_DAILY)
def ledger_report(ledger: str) -> str:
    return ledger.upper()


@freeze_time("2024-03-10 12:00:00")
def test_backfilling_an_old_day_keeps_the_file_the_run_just_wrote(tmp_path: Path) -> None:
    """keep_days=3 and a backfill of 2024-02-01: the step must not prune the partition it has just
    written (today the materialization points at a deleted file and ledger_report fails, since no
    earlier file exists to fall back to). Dagster's FilesystemIOManager is the control."""
    for day in ("2024-03-08", "2024-03-09", "2024-03-10"):
        save_cache(f"ledger {day}", "ledger", day, str(tmp_path / "ours"))
    control = dg.materialize([ledger, ledger_report], partition_key="2024-02-01",
                             resources={"io_manager": dg.FilesystemIOManager(base_dir=str(tmp_path / "fs"))})
    assert control.output_for_node("ledger_report") == "LEDGER 2024-02-01"

    result = dg.materialize([ledger, ledger_report], partition_key="2024-02-01",
                            resources={"io_manager": ours(tmp_path, keep_days=3)}, raise_on_error=False)
    assert result.success
    assert result.output_for_node("ledger_report") == "LEDGER 2024-02-01"
    written = result.asset_materializations_for_node("ledger")[0]
    assert os.path.exists(written.metadata["path"].value)
    assert "2024-02-01" in days(tmp_path, "ledger")


@dg.asset(partitions_def=UTC_DAILY, backfill_policy=dg.BackfillPolicy.single_run())
def bulk(context: dg.AssetExecutionContext) -> dict[str, str]:
    return {key: f"bulk {key}" for key in context.partition_keys}


@freeze_time("2024-03-10 12:00:00")
def test_a_single_run_backfill_keeps_every_day_it_wrote(tmp_path: Path) -> None:
    """A 10-day single-run backfill with keep_days=3 recorded 10 materializations and left 3 files.
    Every file the run wrote stays; the next run applies keep_days as days: more than 3 days before
    today (the 7th and later stay on the 10th), reported in metadata and the log."""
    io = ours(tmp_path, keep_days=3)
    tags = {"dagster/asset_partition_range_start": "2024-03-01",
            "dagster/asset_partition_range_end": "2024-03-10"}  # what a single-run backfill tags
    result = dg.materialize([bulk], resources={"io_manager": io}, tags=tags)
    assert len(result.asset_materializations_for_node("bulk")) == 10
    assert len(days(tmp_path, "bulk")) == 10

    with dg.instance_for_test() as instance:
        again = dg.materialize([bulk], resources={"io_manager": io}, partition_key="2024-03-10",
                               instance=instance)
        assert days(tmp_path, "bulk") == ["2024-03-10", "2024-03-09", "2024-03-08", "2024-03-07"]
        meta = again.asset_materializations_for_node("bulk")[0].metadata
        assert meta["dagster_cache/pruned"].value == 6
        assert meta["dagster_cache/pruned_dates"].value == {
            "bulk": [f"2024-03-0{d}" for d in range(1, 7)]}
        logs = [e.message for e in instance.all_logs(again.run_id) if "retention" in (e.message or "")]
        assert any("removed 6 bulk file(s) dated 2024-03-01" in m for m in logs), logs


@freeze_time("2024-03-10 12:00:00")
def test_keep_days_counts_days_and_keep_files_counts_files(tmp_path: Path) -> None:
    """Files of the 1st, 2nd and 9th, then today's: keep_days=3 deletes the 1st and 2nd (more than 3
    days old) where "the newest 3 files" kept the 2nd; keep_files=3 is that count rule."""
    for prefix in ("ledger", "counted"):
        for day in ("2024-03-01", "2024-03-02", "2024-03-09"):
            save_cache(day, prefix, day, str(tmp_path / "ours"))
    dg.materialize([ledger], partition_key="2024-03-10",
                   resources={"io_manager": ours(tmp_path, keep_days=3)})
    assert days(tmp_path, "ledger") == ["2024-03-10", "2024-03-09"]

    @dg.asset(partitions_def=UTC_DAILY, metadata={"cache_prefix": "counted"})
    def counted() -> str:
        return "c"

    dg.materialize([counted], partition_key="2024-03-10",
                   resources={"io_manager": ours(tmp_path, keep_files=3)})
    assert days(tmp_path, "counted") == ["2024-03-10", "2024-03-09", "2024-03-02"]


def test_prune_older_than_keeps_its_original_signature(tmp_path: Path) -> None:
    """The library: `prune(prefix, keep, directory)` as before; `older_than` deletes by date, `spare`
    keeps given days, and with `keep` too a file goes only when neither rule keeps it."""
    where = str(tmp_path)
    for day in range(1, 8):
        save_cache(day, "p", f"2024-03-0{day}", where)
    with freeze_time("2024-03-07 12:00:00"):
        assert len(prune("p", 6, where)) == 1  # the 1st
        gone = prune("p", older_than="2024-03-05", spare=["2024-03-02"], directory=where)
        assert sorted(os.path.basename(p) for p in gone) == ["p_20240303.pkl.gz", "p_20240304.pkl.gz"]
        assert prune("p", 1, where, older_than=dt.date(2024, 3, 2), dry_run=True) == []
        with pytest.raises(TypeError, match="keep .* or older_than"):
            prune("p", directory=where)
    assert [d.day for d in cache_dates("p", where)] == [7, 6, 5, 2]


@freeze_time("2024-03-10 12:00:00")
def test_retention_check_says_which_days_are_gone(tmp_path: Path) -> None:
    """A pruned partition stays "materialized" in Dagster: the check lists the days retention
    deleted (passes), and fails naming a materialized day whose file is gone for another reason."""
    io = ours(tmp_path, keep_days=3)
    checks = build_cache_retention_checks(assets=[ledger])
    with dg.instance_for_test() as instance:
        for day in ("2024-03-01", "2024-03-05", "2024-03-09"):
            with freeze_time(f"{day} 12:00:00"):
                dg.materialize([ledger], partition_key=day, resources={"io_manager": io}, instance=instance)
        result = dg.materialize([ledger, *checks], partition_key="2024-03-10", instance=instance,
                                resources={"io_manager": io})
        check = result.get_asset_check_evaluations()[0]
        assert check.passed and "2024-03-01" in (check.description or "")
        assert check.metadata["pruned_days"].value == ["2024-03-01", "2024-03-05"]
        os.remove(str(tmp_path / "ours" / "ledger_20240309.pkl.gz"))
        result = dg.materialize([ledger, *checks], instance=instance, resources={"io_manager": io},
                                selection=dg.AssetSelection.all_asset_checks())
        check = result.get_asset_check_evaluations()[0]
        assert not check.passed and check.metadata["unexplained"].value == ["2024-03-09"]


# --- 7. a run across midnight reads its own unpartitioned output by run -------------------------

CLOCK: list = []  # the running freezegun clock, moved by `midnight_passes`


@dg.asset
def snapshot() -> str:
    return "written at 23:59:58"


@dg.asset(deps=[snapshot])
def midnight_passes() -> None:
    CLOCK[0].move_to("2024-03-11 00:00:04")


@dg.asset(deps=[midnight_passes])
def reader(snapshot: str) -> str:
    return snapshot + ", read after midnight"


@dg.op(out=dg.Out(metadata={"cache_prefix": "shared_rates"}))
def rates_op() -> str:
    return "rates of the 10th"


@dg.op
def tick(rates: str) -> str:
    CLOCK[0].move_to("2024-03-11 00:00:04")
    return rates


@dg.op
def use_rates(rates: str, after: str) -> str:
    return rates + "!"


@dg.job
def rates_job() -> None:
    rates = rates_op()
    use_rates(rates, tick(rates))


@pytest.mark.parametrize("fallback", [True, False])
def test_a_run_across_midnight_reads_its_own_unpartitioned_output(tmp_path: Path, fallback: bool) -> None:
    """snapshot is written at 23:59:58 on the 10th; reader loads it 6 s later, on the 11th. It is the
    run's own output: not "1 day stale" (warning, alert, run tag), and with fallback_to_latest=False
    not a failure. FilesystemIOManager reads it by run, as the control."""
    with freeze_time("2024-03-10 23:59:58") as clock:
        CLOCK[:] = [clock]
        fs = dg.FilesystemIOManager(base_dir=str(tmp_path / "fs"))
        control = dg.materialize([snapshot, midnight_passes, reader], resources={"io_manager": fs})
        assert control.output_for_node("reader") == "written at 23:59:58, read after midnight"
    with freeze_time("2024-03-10 23:59:58") as clock, dg.instance_for_test() as instance:
        CLOCK[:] = [clock]
        result = dg.materialize([snapshot, midnight_passes, reader], instance=instance, raise_on_error=False,
                                resources={"io_manager": ours(tmp_path, fallback_to_latest=fallback)})
        assert result.success
        assert result.output_for_node("reader") == "written at 23:59:58, read after midnight"
        assert "dagster_cache/stale_inputs" not in instance.get_run_by_id(result.run_id).tags
        stale = [e for e in instance.all_logs(result.run_id) if "stale" in (e.message or "")]
        assert stale == []
    with freeze_time("2024-03-10 23:59:58") as clock:  # a cache_prefix op output: a shared daily file
        CLOCK[:] = [clock]
        io = ours(tmp_path, fallback_to_latest=fallback)
        job = dg.Definitions(jobs=[rates_job], resources={"io_manager": io}).get_job_def("rates_job")
        ran = job.execute_in_process(raise_on_error=False)
        assert ran.success and ran.output_for_node("use_rates") == "rates of the 10th!"
        assert "dagster_cache/stale_inputs" not in ran.dagster_run.tags


UNPARTITIONED_ENV = "RETENTION_REEXEC_DIR"
FLAKY = {"fail": 0}


@dg.asset
def daily_rates() -> str:
    return "rates of the 15th"


@dg.asset
def rates_report(daily_rates: str) -> str:
    if FLAKY["fail"] > 0:
        FLAKY["fail"] -= 1
        raise RuntimeError("transient failure")
    return daily_rates + " reported"


def define_strict_rates() -> dg.JobDefinition:
    io = DatedCacheIOManager(directory=os.environ[UNPARTITIONED_ENV], fallback_to_latest=False)
    defs = dg.Definitions(assets=[daily_rates, rates_report], resources={"io_manager": io},
                          jobs=[dg.define_asset_job("rates_assets", executor_def=dg.in_process_executor)])
    return defs.resolve_job_def("rates_assets")


@pytest.mark.integration  # several runs on one instance
def test_reexecution_days_later_reads_the_parent_runs_unpartitioned_asset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rates_report fails on the 15th; re-executed from failure on the 17th, it must read the
    daily_rates file its parent run wrote (the 15th's) without calling it stale: with
    fallback_to_latest=False today's code looks for the 17th and fails."""
    monkeypatch.setenv(UNPARTITIONED_ENV, str(tmp_path))
    job = dg.reconstructable(define_strict_rates)
    with dg.instance_for_test() as instance:
        FLAKY["fail"] = 1
        with freeze_time("2024-01-15 23:00:00"):
            first = dg.execute_job(job, instance=instance)
            assert not first.success
        with freeze_time("2024-01-17 09:00:00"):
            options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
            with dg.execute_job(job, instance=instance, reexecution_options=options) as again:
                assert again.success
                assert "dagster_cache/stale_inputs" not in instance.get_run_by_id(again.run_id).tags
    assert read_cache("rates_report", "2024-01-17", str(tmp_path)) == "rates of the 15th reported"


# --- 10. long keys; allow_missing_partitions as UPathIOManager has it -------------------------------


def test_a_key_too_long_for_a_file_name_names_the_asset_and_asks_for_a_cache_prefix(tmp_path: Path) -> None:
    long_key = ["segment_" + "x" * 110, "segment_" + "y" * 110]

    @dg.asset(key=long_key)
    def long_named() -> int:
        return 1

    result = dg.materialize([long_named], resources={"io_manager": ours(tmp_path)}, raise_on_error=False)
    assert not result.success
    error = result.get_step_failure_events()[0].step_failure_data.error
    assert error is not None and error.cause is not None
    assert error.cause.cls_name == "CachePartitionError", error.cause.cls_name
    assert "segment_xxx" in error.cause.message and "cache_prefix" in error.cause.message

    @dg.op(out=dg.DynamicOut(str))
    def fan_out():
        yield dg.DynamicOutput("v", mapping_key="k" * 240)

    @dg.op
    def echo(value: str) -> str:
        return value

    @dg.job(resource_defs={"io_manager": ours(tmp_path)})
    def fan() -> None:
        fan_out().map(echo)

    with pytest.raises(CachePartitionError, match=r"op fan_out.*mapping keys.*cache_prefix"):
        fan.execute_in_process()


@dg.asset(partitions_def=UTC_DAILY)
def quote(context: dg.AssetExecutionContext) -> str:
    return f"quote {context.partition_key}"


@dg.asset(partitions_def=UTC_DAILY, ins={"quote": dg.AssetIn(metadata={"allow_missing_partitions": True})})
def quote_copy(quote: str | None) -> str:
    return f"got {quote}"


@dg.asset(partitions_def=UTC_DAILY, ins={"quote": dg.AssetIn(
    metadata={"allow_missing_partitions": True, "fallback_to_latest": True})})
def quote_or_older(quote: str | None) -> str:
    return f"got {quote}"


@freeze_time("2024-03-10 12:00:00")
def test_allow_missing_partitions_loads_none_as_upath_io_manager_does(tmp_path: Path) -> None:
    """The 9th exists, the 10th does not. With input metadata allow_missing_partitions=True, Dagster's
    UPathIOManager (FilesystemIOManager) loads None; ours fell back to the 9th because the manager's
    fallback_to_latest is on. The input's own fallback_to_latest=True still chooses the fallback."""
    results = {}
    for name, io in (("fs", dg.FilesystemIOManager(base_dir=str(tmp_path / "fs"))), ("ours", ours(tmp_path))):
        assets = [quote, quote_copy, quote_or_older]
        dg.materialize([quote], partition_key="2024-03-09", resources={"io_manager": io})
        copy = dg.materialize(assets, selection=[quote_copy], partition_key="2024-03-10",
                              resources={"io_manager": io})
        results[name] = copy.output_for_node("quote_copy")
        if name == "ours":
            older = dg.materialize(assets, selection=[quote_or_older], partition_key="2024-03-10",
                                   resources={"io_manager": io})
            assert older.output_for_node("quote_or_older") == "got quote 2024-03-09"
    assert results == {"fs": "got None", "ours": "got None"}


# --- 6. the observation sensor reports late and corrected files -------------------------------------

LONDON_DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1, timezone="Europe/London")


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None) -> tuple[list, str]:
    """One tick as the daemon runs it; ([(partition, data version)] materialized, new cursor)."""
    data = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))
    for event in data.asset_events:
        instance.report_runless_asset_event(event)
    mats = [(e.partition, e.tags["dagster/data_version"]) for e in data.asset_events
            if isinstance(e, dg.AssetMaterialization)]
    return mats, data.cursor or cursor or ""


def test_late_and_corrected_files_are_reported_once_within_the_lookback_window(tmp_path: Path) -> None:
    """Its cursor kept only the newest date: the 15th delivered after the 16th, and a corrected 14th,
    were never reported. Each new or changed file within lookback_days is reported once, with its
    data version; older late files are not, and the cursor holds only the window's days."""
    where = str(tmp_path)
    spec = external_cache_asset("fx", partitions_def=LONDON_DAILY)
    sensor = build_cache_observation_sensor(assets=[spec], directory=where, timezone="Europe/London",
                                            lookback_days=7)
    narrow = build_cache_observation_sensor(assets=[spec], directory=where, timezone="Europe/London",
                                            lookback_days=0, name="narrow")
    instance = dg.DagsterInstance.ephemeral()
    with freeze_time("2024-01-16 12:00:00"):
        save_cache("14th", "fx", "2024-01-14", where)
        save_cache("16th", "fx", "2024-01-16", where)
        mats, cursor = _tick(sensor, instance, None)
        assert [p for p, _v in mats] == ["2024-01-14", "2024-01-16"]
        narrow_mats, narrow_cursor = _tick(narrow, instance, None)

        save_cache("15th, late", "fx", "2024-01-15", where)
        save_cache("5th, too late", "fx", "2024-01-05", where)
        mats, cursor = _tick(sensor, instance, cursor)
        assert mats == [("2024-01-15", cache_fingerprint("fx", "2024-01-15", where).fingerprint)]
        assert _tick(sensor, instance, cursor)[0] == []  # once
        assert _tick(narrow, instance, narrow_cursor)[0] == []  # lookback_days=0: today only

        save_cache("14th", "fx", "2024-01-14", where)  # identical data rewritten: no new version
        assert _tick(sensor, instance, cursor)[0] == []
        save_cache("14th, corrected", "fx", "2024-01-14", where)
        mats, cursor = _tick(sensor, instance, cursor)
        assert mats == [("2024-01-14", cache_fingerprint("fx", "2024-01-14", where).fingerprint)]
        assert _tick(sensor, instance, cursor)[0] == []
        record = instance.get_latest_data_version_record(spec.key, partition_key="2024-01-14")
        assert record is not None
        assert record.event_log_entry.tags["dagster/data_version"] == mats[0][1]

    with freeze_time("2024-02-20 12:00:00"):  # the window has moved past every file: cursor bounded
        mats, cursor = _tick(sensor, instance, cursor)
        assert mats == []
        entry = json.loads(cursor)["fx"]
        assert entry["date"] == "2024-01-16" and entry["days"] == {}


def test_a_cursor_from_before_the_window_does_not_replay_the_window(tmp_path: Path) -> None:
    """A cursor written by the previous release ({date, fingerprint} only) keeps its meaning: the
    files up to its date are not reported again, and a later correction is."""
    where = str(tmp_path)
    spec = external_cache_asset("fx", partitions_def=LONDON_DAILY)
    sensor = build_cache_observation_sensor(assets=[spec], directory=where, timezone="Europe/London")
    instance = dg.DagsterInstance.ephemeral()
    with freeze_time("2024-01-16 12:00:00"):
        for day in ("2024-01-14", "2024-01-15", "2024-01-16"):
            save_cache(day, "fx", day, where)
        old = json.dumps({"fx": {"date": "2024-01-16",
                                 "fingerprint": cache_fingerprint("fx", "2024-01-16", where).fingerprint}})
        mats, cursor = _tick(sensor, instance, old)
        assert mats == []
        save_cache("15th, corrected", "fx", "2024-01-15", where)
        assert [p for p, _v in _tick(sensor, instance, cursor)[0]] == ["2024-01-15"]
