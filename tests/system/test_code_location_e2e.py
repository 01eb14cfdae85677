"""The example code location through the real tools: `dagster definitions validate`, `make demo`'s
runs (launched through `dg dev`'s GraphQL API, then re-executed the way the UI's button does), and a
`dagster-webserver` launching the refresh job over GraphQL."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from cache_utils import read_cache

# The dagster CLI, `dagster dev`'s webserver and `make demo` run as subprocesses.
pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def env_for(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    # Runs start at once (no daemon needed), and no telemetry from tests.
    (home / "dagster.yaml").write_text(
        "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
        "telemetry:\n  enabled: false\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSGENIE_", "DAGSTER_", "CACHE_"))}
    env.update(DAGSTER_HOME=str(home), CACHE_DIR=str(tmp_path / "data"), CACHE_TZ="UTC",
               CACHE_START_DATE="2024-01-01", PYTHONPATH=str(ROOT))
    return env


def test_definitions_validate(tmp_path: Path) -> None:
    proc = subprocess.run([str(BIN / "dagster"), "definitions", "validate"], cwd=ROOT, env=env_for(tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful for code location dated_caches" in proc.stdout + proc.stderr


def test_make_demo_runs_are_reexecutable_from_the_ui(tmp_path: Path) -> None:
    """`make demo` launches its run in the code location `make ui` shows; re-executing it through the
    webserver's GraphQL API (what the UI's Re-execute button sends) succeeds."""
    from definitions.demo import (
        LOCATION,
        STATUS,
        demo_env,
        free_port,
        graphql,
        reexecute,
        start_ui,
        stop_ui,
        wait_for_run,
    )

    work = tmp_path / "cwd"
    work.mkdir()
    env = env_for(tmp_path)
    env["DAGSTER_HOME"] = str(tmp_path / "demo_home")  # none yet: the demo writes its own settings
    proc = subprocess.run([sys.executable, "-m", "definitions.demo"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=540)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    names = sorted(p.name for p in (tmp_path / "data").iterdir())
    # The vendor's market_prices file, then the three assets of the run.
    assert [n.rsplit("_", 1)[0] for n in names] == ["exchange_rates", "market_prices", "sales_data",
                                                    "sales_summary"]
    assert len({n.rsplit("_", 1)[1] for n in names}) == 1  # all for the same day
    listing = proc.stdout[proc.stdout.index("cache-utils ls"):]
    for prefix in ("exchange_rates", "sales_data", "sales_summary"):
        assert prefix in listing
    output = proc.stdout + proc.stderr
    for banner in ("Telemetry", "Welcome to Dagster", "No dagster instance configuration file",
                   "SupersessionWarning", "Traceback"):
        assert banner not in output, banner
    assert "enabled: false" in (tmp_path / "demo_home" / "dagster.yaml").read_text()
    # It says which sensors to switch on, and ends with what was written, where, and the next command.
    assert "market_prices_files" in proc.stdout and "default_automation_condition_sensor" in proc.stdout
    assert f"in {tmp_path / 'data'}:" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("Next: make ui")
    run_id = next(line.split()[1].rstrip(":") for line in proc.stdout.splitlines()
                  if line.startswith("Run ") and line.rstrip().endswith("SUCCESS"))

    # `make ui` on the same instance: the run is in its code location and re-executes.
    port = free_port()
    ui_env = demo_env(env)
    with (tmp_path / "ui.log").open("wb") as log:
        ui = start_ui(ui_env, port, log)
        try:
            deadline = time.monotonic() + 240
            parent = None
            while parent is None:
                assert ui.poll() is None, (tmp_path / "ui.log").read_text()[-3000:]
                try:
                    parent = graphql(port, STATUS, {"id": run_id})["runOrError"]
                except (OSError, RuntimeError):
                    assert time.monotonic() < deadline, "dg dev never answered"
                    time.sleep(1)
            assert parent["repositoryOrigin"]["repositoryLocationName"] == LOCATION
            child = None
            while child is None:  # the code location may still be loading
                try:
                    child = reexecute(port, run_id)
                except (OSError, RuntimeError) as e:
                    assert time.monotonic() < deadline, f"re-execution refused: {e}"
                    time.sleep(2)
            assert wait_for_run(port, child, time.monotonic() + 300) == "SUCCESS", (
                (tmp_path / "ui.log").read_text()[-3000:])
        finally:
            stop_ui(ui)


def test_demo_instance_settings_are_written_once(tmp_path: Path) -> None:
    from definitions.demo import demo_env

    home = tmp_path / "home"
    env = demo_env({"DAGSTER_HOME": str(home), "PYTHONWARNINGS": "error::ResourceWarning"})
    settings = (home / "dagster.yaml").read_text()
    assert "telemetry:\n  enabled: false" in settings and "python_log_level: INFO" in settings
    assert env["PYTHONWARNINGS"] == "error::ResourceWarning"  # nothing muted for the user
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: true\n")  # the user's own: kept
    demo_env({"DAGSTER_HOME": str(home)})
    assert (home / "dagster.yaml").read_text() == "telemetry:\n  enabled: true\n"


EXAMPLE_CHECKS = """
import datetime as dt, os
import dagster as dg
import definitions
from dagster_cache import DatedCacheIOManager
defs = definitions.defs
assert definitions.daily.start == dt.datetime(2024, 1, 1, tzinfo=definitions.daily.start.tzinfo)
for key in ("sales_data", "sales_summary", "exchange_rates"):
    spec = defs.resolve_assets_def(key).specs_by_key[dg.AssetKey(key)]
    assert "`" not in spec.description and "<" not in spec.description, spec.description  # plain words
    assert key + "_YYYYMMDD.pkl.gz" in spec.description or key == "sales_summary", spec.description
    io_key = defs.resolve_assets_def(key).get_io_manager_key_for_asset_key(dg.AssetKey(key))
    assert io_key == "cache_io_manager", io_key
assert not isinstance(defs.resources.get("io_manager"), DatedCacheIOManager)
result = defs.resolve_job_def("memory_cache_job").execute_in_process(instance=dg.DagsterInstance.ephemeral())
assert result.success
print(sorted(os.listdir(os.environ["CACHE_DIR"])) if os.path.isdir(os.environ["CACHE_DIR"]) else [])
"""


def test_example_binds_the_cache_manager_only_to_daily_caches(tmp_path: Path) -> None:
    """Op jobs keep Dagster's default IO manager: nothing of theirs lands in the cache directory."""
    proc = subprocess.run([sys.executable, "-c", EXAMPLE_CHECKS], cwd=ROOT, env=env_for(tmp_path),
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_example_partitions_start_near_today_by_default(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    del env["CACHE_START_DATE"]
    code = ("import definitions, datetime as dt\n"
            "print((dt.date.today() - definitions.daily.start.date()).days)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 29 <= int(proc.stdout.strip().splitlines()[-1]) <= 31


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def webserver(tmp_path: Path):
    port = free_port()
    log = (tmp_path / "webserver.log").open("w")
    proc = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-m", "definitions", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=env_for(tmp_path), stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        yield port, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)
        log.close()


def test_webserver_launches_refresh_job_over_graphql(tmp_path: Path, webserver: tuple) -> None:
    from dagster_graphql import DagsterGraphQLClient, DagsterGraphQLClientError

    port, proc = webserver
    client = DagsterGraphQLClient("127.0.0.1", port_number=port, timeout=30)
    deadline = time.monotonic() + 150  # generous: only proves it does not hang
    run_id = None
    while run_id is None:
        assert proc.poll() is None, (tmp_path / "webserver.log").read_text()[-3000:]
        try:
            run_id = client.submit_job_execution("refresh_sales", tags={"dagster/partition": "2024-01-15"})
        except DagsterGraphQLClientError as e:
            if time.monotonic() > deadline:
                raise AssertionError(f"webserver never accepted the run: {e}") from e
            time.sleep(1)
    status = None
    while status not in ("SUCCESS", "FAILURE", "CANCELED"):
        assert time.monotonic() < deadline, f"run {run_id} still {status}"
        time.sleep(1)
        status = client.get_run_status(run_id).value
    assert status == "SUCCESS", (tmp_path / "webserver.log").read_text()[-3000:]
    frame = read_cache("sales_data", "2024-01-15", str(tmp_path / "data"))
    assert isinstance(frame, pd.DataFrame)
    assert set(frame["date"]) == {"2024-01-15"}
    summary = read_cache("sales_summary", "2024-01-15", str(tmp_path / "data"))
    assert summary["units"].iloc[0] == frame["units"].sum()
