"""`DailyCacheComponent` through Dagster's public component testing utilities
(`dagster.components.testing.create_defs_folder_sandbox`): scaffolded, loaded from YAML, and the
definitions it builds; then `dg` itself on the example project (list components, check defs)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd  # noqa: F401 - before any freeze_time (pandas 3)
import pytest
import yaml
from dagster.components.testing import create_defs_folder_sandbox

from cache_utils import save_cache
from dagster_cache import DailyCacheComponent, DatedCacheIOManager

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def contract(directory: str) -> dict:
    return {
        "type": "dagster_cache.DailyCacheComponent",
        "attributes": {
            "cb_time": "07:15",
            "io_manager": {"key": "vendor_io", "directory": directory, "timezone": "Europe/London",
                           "signing_key_env": "TEST_COMPONENT_SIGNING_KEY", "keep_days": 5,
                           "storage_options": {}},
            "assets": [{"key": "sales", "partitioned": True}, {"key": "rates"}],
            "refresh": [{"prefix": "sales", "assets": ["sales"], "job_name": "refresh_sales",
                         "retry_interval_minutes": 20}],
            "external": [{"prefix": "fx_rates", "group_name": "vendor"},
                         {"prefix": "fx_daily", "partitioned": True}],
            "start_date": "2024-01-01",
        },
    }


@dg.asset(partitions_def=dg.DailyPartitionsDefinition("2024-01-01", end_offset=1), io_manager_key="vendor_io")
def sales() -> int:
    return 1


@dg.asset(io_manager_key="vendor_io")
def rates() -> int:
    return 2


def test_scaffold_writes_a_loadable_defs_yaml() -> None:
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(component_cls=DailyCacheComponent, defs_path="caches")
        written = yaml.safe_load((path / "defs.yaml").read_text())
        assert written["type"].endswith("DailyCacheComponent")
        assert written["attributes"]["io_manager"]["key"] == "cache_io_manager"
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            assert isinstance(component, DailyCacheComponent)
            assert isinstance(defs.resources["cache_io_manager"], DatedCacheIOManager)
            assert dg.AssetKey("my_vendor_file") in defs.resolve_asset_graph().get_all_asset_keys()


def test_one_yaml_block_builds_the_whole_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_COMPONENT_SIGNING_KEY", "not-in-the-ui")
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(component_cls=DailyCacheComponent, defs_path="vendor",
                                          defs_yaml_contents=contract(str(tmp_path)))
        with sandbox.load_component_and_build_defs(defs_path=path) as (_component, defs):
            manager = defs.resources["vendor_io"]
            assert isinstance(manager, DatedCacheIOManager)
            assert (manager.directory, manager.timezone, manager.keep_days) == (
                str(tmp_path), "Europe/London", 5)
            # The signing key is read from the environment at run time: the config holds the variable.
            assert "not-in-the-ui" not in repr(manager)
            assert isinstance(manager.signing_key, dg.EnvVar)

            merged = dg.Definitions.merge(defs, dg.Definitions(assets=[sales, rates]))
            repo = merged.get_repository_def()
            checks = {(k.asset_key.to_user_string(), k.name) for k in repo.asset_graph.asset_check_keys}
            for asset in ("sales", "rates", "fx_rates", "fx_daily"):
                assert (asset, "cache_file_exists") in checks
            freshness = {a for a, name in checks if "freshness" in name}
            assert freshness == {"sales", "fx_daily"}  # the unpartitioned ones: a FreshnessPolicy

            fx = repo.asset_graph.get(dg.AssetKey("fx_rates"))
            assert isinstance(fx.freshness_policy, dg.FreshnessPolicy)
            assert repo.asset_graph.get(dg.AssetKey("fx_daily")).freshness_policy is None
            assert merged.resolve_assets_def("fx_rates").get_io_manager_key_for_asset_key(
                dg.AssetKey("fx_rates")) == "vendor_io"

            assert repo.get_schedule_def("refresh_sales_schedule").cron_schedule == "15 7 * * *"
            sensor = repo.get_sensor_def("refresh_sales_sensor")
            assert "every 20 minutes" in (sensor.description or "")
            names = {s.name for s in repo.sensor_defs}
            assert names >= {"vendor_io_observation", "vendor_io_freshness_checks"}
            assert repo.get_job("refresh_sales") is not None

            # The observation sensor reports a vendor's file and says so in its tick.
            save_cache({"EURUSD": 1.1}, "fx_rates", dt.date.today(), str(tmp_path))
            with dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), repository_def=repo) as ctx:
                result = repo.get_sensor_def("vendor_io_observation").evaluate_tick(ctx)
            assert [e.asset_key for e in result.asset_events] == [dg.AssetKey("fx_rates")]
            assert result.skip_message.startswith("Reported 1 new file (as materializations): fx_rates ")


def test_a_bad_value_names_itself() -> None:
    bad = contract("data")
    bad["attributes"]["io_manager"]["keep_days"] = 0
    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(component_cls=DailyCacheComponent, defs_path="bad",
                                          defs_yaml_contents=bad)
        with pytest.raises(Exception) as raised, sandbox.load_component_and_build_defs(defs_path=path):
            pass
    chain, e = [], raised.value
    while e is not None:
        chain.append(str(e))
        e = e.__cause__
    assert "keep_days" in "\n".join(chain)


def _dg(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CACHE_"))}
    env.update(PYTHONPATH=str(ROOT), VIRTUAL_ENV=str(BIN.parent), CACHE_START_DATE="2024-01-01",
               PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               DAGSTER_HOME=str(tmp_path), CACHE_DIR=str(tmp_path / "data"), COLUMNS="200")
    return subprocess.run([str(BIN / "dg"), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.integration
def test_dg_lists_the_component_and_checks_the_example(tmp_path: Path) -> None:
    if not (BIN / "dg").exists():
        pytest.fail("dg is not installed in this environment: `make install` (dagster-dg-cli, dev extra)")
    listed = _dg("list", "components", tmp_path=tmp_path)
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert "dagster_cache.DailyCacheComponent" in listed.stdout
    checked = _dg("check", "defs", tmp_path=tmp_path)
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    defs = _dg("list", "defs", "--json", tmp_path=tmp_path)
    assert defs.returncode == 0, defs.stderr[-3000:]
    for name in ("sales_data", "market_prices", "refresh_sales", "market_prices_files"):
        assert name in defs.stdout, name


@pytest.mark.integration
def test_dg_launch_materializes_a_partition_from_the_project_root(tmp_path: Path) -> None:
    launched = _dg("launch", "--assets", "sales_data,sales_summary", "--partition", "2024-01-15",
                   tmp_path=tmp_path)
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "sales_data_20240115.pkl.gz", "sales_summary_20240115.pkl.gz"]


def test_make_ui_takes_a_port() -> None:
    shown = subprocess.run(["make", "-n", "ui", "PORT=3001"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    line = next(line for line in shown.stdout.splitlines() if "definitions.demo ui" in line)
    assert line.endswith("--port 3001")
