"""`make demo`: write one vendor file, materialize today's partition of the example assets the way
the UI does, list the cache files with `cache-utils ls`, then say what was written, where, and
what to try next. `make ui` (`python -m definitions.demo ui [--port N]`) starts `dg dev`.

Runs are launched the way the UI launches them: `dg dev` (webserver and daemon, on a free local
port, in the background) loads the project as the code location `dated_caches`, the demo sends
the UI's GraphQL `launchPipelineExecution` for the selected assets and today's partition, waits
for the run, and stops `dg dev`. The runs therefore belong to the same code location `make ui`
shows, and "Re-execute" works on them like on any other run. (`dg launch` in Dagster 1.13 runs
the assets in its own process, outside any code location: the UI could not re-execute those.)

The external cache `market_prices` is written as a vendor would: `cache_utils.save_cache`, outside
Dagster. The demo then prints which sensors to switch on in the UI and what each shows.

The demo's Dagster instance, `DAGSTER_HOME` (default `./.dagster_home`), gets a `dagster.yaml` when
it has none: telemetry off (no banner, no usage statistics) and run logs at INFO. An existing
`dagster.yaml` is left as it is.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cache_utils import cache_exists, list_caches, save_cache
from cache_utils.integration import resolve_zone

INSTANCE_SETTINGS = """\
# The example's Dagster instance, written by `make demo` / `make ui` (definitions/demo.py) because
# this DAGSTER_HOME had no dagster.yaml. It is never overwritten: edit it freely.
telemetry:
  enabled: false            # no usage statistics, and no telemetry banner
python_logs:
  python_log_level: INFO    # run logs at INFO and above; DEBUG prints a line per engine event
"""
DEFAULT_PORT = 3000
LOCATION = "dated_caches"  # [tool.dg.project] code_location_name in pyproject.toml
DEMO_ASSETS = ("sales_data", "sales_summary", "exchange_rates")
STARTUP_SECONDS = 240  # bound on `dg dev` loading the code location
RUN_SECONDS = 300  # bound on one run
REPO = Path(__file__).resolve().parent.parent

# What to switch on in the UI (Automation page), and what each then shows.
SENSOR_GUIDE = """\
Sensors and schedules start stopped; switch them on in the UI (Automation page) to see them work:
  market_prices_files            reports each new market_prices file (like the one just written) as a
                                 materialization of the external asset market_prices; its tick says
                                 which files it reported.
  default_automation_condition_sensor
                                 runs market_report when market_prices has new data (eager condition).
  refresh_sales_data_sensor      after 06:30, asks for the refresh_sales run every 15 minutes while
                                 today's sales_data file is missing; its tick says why it skipped.
  cache_freshness_checks_sensor  re-runs the freshness checks of sales_data and sales_summary.
  refresh_sales_data_schedule    runs refresh_sales daily at 06:30 unless today's file exists."""


def _tool(name: str) -> str:
    """The console script installed next to this interpreter (the venv's), else on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name!r} is not installed: run `make install` first")
    return found


def demo_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the demo's commands: DAGSTER_HOME made absolute, created and given the
    demo's instance settings if it has none, the example on PYTHONPATH and the venv active."""
    env = dict(os.environ if environ is None else environ)
    # A local instance directory makes the CLI work on a fresh machine and keeps run history.
    home = Path(env.get("DAGSTER_HOME") or ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text(INSTANCE_SETTINGS, encoding="utf-8")
    env["DAGSTER_HOME"] = str(home)
    # The example code location is not part of the installed package: the CLI finds it here.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    # dg runs the project in the active virtual environment: this interpreter's.
    env["VIRTUAL_ENV"] = str(Path(sys.executable).parent.parent)
    env["PATH"] = os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH", "")]))
    return env


def _show(cmd: Sequence[str]) -> None:
    print("$", " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)), flush=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def graphql(port: int, query: str, variables: dict[str, Any] | None = None, timeout: float = 30) -> Any:
    """POST one GraphQL request to the webserver on 127.0.0.1:port; its `data`."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        reply = json.load(answer)
    if reply.get("errors"):
        raise RuntimeError(f"GraphQL error: {reply['errors'][0].get('message')}")
    return reply["data"]


LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
  }
}"""
REEXECUTE = """
mutation Reexecute($parent: String!) {
  launchRunReexecution(reexecutionParams: {parentRunId: $parent, strategy: ALL_STEPS}) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""
STATUS = """
query Status($id: ID!) {
  runOrError(runId: $id) { __typename ... on Run { status repositoryOrigin { repositoryLocationName } } }
}"""
WAITING = ("PipelineNotFoundError", "PythonError")  # the code location is still loading


def launch_assets(port: int, assets: Sequence[str], partition: str | None, deadline: float) -> str:
    """Launch a run of `assets` (and `partition`) as the UI's Materialize button does; its run id.
    Retries while the code location is still loading, until `deadline` (time.monotonic())."""
    params = {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                     "pipelineName": "__ASSET_JOB", "assetSelection": [{"path": [a]} for a in assets],
                     "assetCheckSelection": []},
        "mode": "default",
        "executionMetadata": {
            "tags": [{"key": "dagster/partition", "value": partition}] if partition else []},
    }
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            result = graphql(port, LAUNCH, {"params": params})["launchPipelineExecution"]
        except (OSError, RuntimeError) as e:  # the webserver is still starting
            last = str(e)
        else:
            if result["__typename"] == "LaunchRunSuccess":
                return str(result["run"]["runId"])
            last = f"{result['__typename']}: {result.get('message', '')}"
            if result["__typename"] not in WAITING:
                break
        time.sleep(1)
    raise RuntimeError(f"could not launch the run of {', '.join(assets)}: {last}")


def reexecute(port: int, run_id: str) -> str:
    """Re-execute a run (all steps) as the UI's Re-execute button does; the new run's id."""
    result = graphql(port, REEXECUTE, {"parent": run_id})["launchRunReexecution"]
    if result["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"re-execution of {run_id} refused: {result['__typename']}: "
                           f"{result.get('message', '')}")
    return str(result["run"]["runId"])


def wait_for_run(port: int, run_id: str, deadline: float) -> str:
    """The run's final status (SUCCESS, FAILURE, CANCELED), polled until `deadline`."""
    status = "unknown"
    while time.monotonic() < deadline:
        run = graphql(port, STATUS, {"id": run_id})["runOrError"]
        status = run.get("status", run["__typename"])
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return str(status)
        time.sleep(1)
    raise RuntimeError(f"run {run_id} still {status} after {RUN_SECONDS} s")


def start_ui(env: dict[str, str], port: int, log: Any = None) -> subprocess.Popen[bytes]:
    """`dg dev` (webserver and daemon) on 127.0.0.1:port, in its own process group."""
    cmd = [_tool("dg"), "dev", "--host", "127.0.0.1", "--port", str(port)]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log or subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop_ui(proc: subprocess.Popen[bytes]) -> None:
    """Stop `dg dev` and everything it started (its process group)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # the daemon and code servers, if any outlived it
        os.killpg(proc.pid, signal.SIGKILL)


def write_vendor_file(cache_dir: str, today: dt.date) -> str | None:
    """Today's market_prices file, as a vendor's script would write it (unless it exists)."""
    if cache_exists("market_prices", today, cache_dir):
        return None
    seed = today.toordinal()
    rows = {"ticker": ["ACME", "GLOBEX", "INITECH"],
            "close": [round(100 + (seed * k) % 50 + k / 10, 2) for k in (3, 5, 7)]}
    try:
        import pandas as pd

        data: Any = pd.DataFrame(rows)
    except ImportError:  # pragma: no cover - pandas is in the dagster extra
        data = rows
    return save_cache(data, "market_prices", today, cache_dir)


def demo() -> int:
    """Run the demo; return 1 when a step failed, else 0."""
    env = demo_env()
    cache_dir = env.get("CACHE_DIR") or "data"
    today = dt.datetime.now(resolve_zone(env.get("CACHE_TZ") or "UTC")).date()
    print("$ python -c 'cache_utils.save_cache(prices, \"market_prices\")'  # a vendor's script", flush=True)
    vendor = write_vendor_file(cache_dir, today)
    print(f"  {vendor or 'market_prices for today exists already: not rewritten'}")
    port = free_port()
    log_path = Path(env["DAGSTER_HOME"]) / "demo-dg-dev.log"
    _show([_tool("dg"), "dev", "--host", "127.0.0.1", "--port", str(port)])
    print(f"  (in the background until the run ends; its log: {log_path})", flush=True)
    with log_path.open("wb") as log:
        proc = start_ui(env, port, log)
        try:
            print(f"Materializing {', '.join(DEMO_ASSETS)} for {today} through the UI's GraphQL API...",
                  flush=True)
            run_id = launch_assets(port, DEMO_ASSETS, today.isoformat(), time.monotonic() + STARTUP_SECONDS)
            status = wait_for_run(port, run_id, time.monotonic() + RUN_SECONDS)
        except RuntimeError as e:
            print(f"demo step failed: {e} (see {log_path})", file=sys.stderr)
            return 1
        finally:
            stop_ui(proc)
    print(f"Run {run_id}: {status}")
    if status != "SUCCESS":
        print(f"demo run {run_id} ended {status}: open it in `make ui` for its logs", file=sys.stderr)
        return 1
    cmd = [_tool("cache-utils"), "ls", "--dir", cache_dir]
    _show(cmd)
    code = subprocess.run(cmd, env=env).returncode
    if code:
        print(f"demo step failed with exit status {code}", file=sys.stderr)
        return code
    written = [c for c in list_caches(cache_dir) if c.date == today]
    where = Path(cache_dir).resolve() if "://" not in cache_dir else cache_dir
    print(f"\nWrote {len(written)} cache file(s) for {today} in {where}:")
    width = max((len(Path(c.path).name) for c in written), default=0)
    for c in written:
        print(f"  {Path(c.path).name:<{width}}  {c.size} bytes")
    print(f"Run history and logs: the Dagster instance in {env['DAGSTER_HOME']}")
    print(SENSOR_GUIDE)
    print(f"Next: make ui  (the Dagster UI on http://127.0.0.1:{DEFAULT_PORT}: run {run_id[:8]} can be "
          "re-executed there, the partitions, the checks; make ui PORT=3001 for another port)")
    return 0


def ui(args: Sequence[str]) -> int:
    """`dg dev` on the demo's instance, in place of this process."""
    env = demo_env()
    dg = _tool("dg")
    _show([dg, "dev", *args])
    os.execve(dg, [dg, "dev", *args], env)
    return 1  # pragma: no cover - execve does not return


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["ui"]:
        return ui(args[1:])
    if args:
        raise SystemExit(f"usage: python -m definitions.demo [ui [DG_DEV_OPTIONS...]], got {args}")
    return demo()


if __name__ == "__main__":
    sys.exit(main())
