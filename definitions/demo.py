"""`make demo`: materialize today's partition of the example assets with the Dagster CLI, list the
cache files with `cache-utils ls`, then say what was written, where, and what to try next.
`make ui` (`python -m definitions.demo ui`) starts `dagster dev` on the same instance.

The demo's Dagster instance, `DAGSTER_HOME` (default `./.dagster_home`), gets a `dagster.yaml` when
it has none: telemetry off (no banner, no usage statistics) and run logs at INFO, so a run prints
its own messages, warnings and errors instead of a DEBUG line per engine event. An existing
`dagster.yaml` is left as it is.

Dagster 1.13 marks `dagster asset materialize` and `dagster dev` as superseded by `dg launch` and
`dg dev`, but `dg` is a separate package (dagster-dg-cli) this project does not install: the demo
keeps the `dagster` commands and mutes exactly those two notices (by their text, in the processes
it starts), which a user of the demo cannot act on. Every other warning still shows.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cache_utils import list_caches, resolve_zone

INSTANCE_SETTINGS = """\
# The example's Dagster instance, written by `make demo` / `make ui` (definitions/demo.py) because
# this DAGSTER_HOME had no dagster.yaml. It is never overwritten: edit it freely.
telemetry:
  enabled: false            # no usage statistics, and no telemetry banner
python_logs:
  python_log_level: INFO    # run logs at INFO and above; DEBUG prints a line per engine event
"""
# The supersession notices of the two commands the demo runs (see the module docstring), as
# `-W` filters: a message prefix, matched exactly.
SUPERSEDED = (
    "ignore:Function `asset_materialize_command` is superseded",
    "ignore:Function `dev_command` is superseded",
)
UI_URL = "http://127.0.0.1:3000"


def _tool(name: str) -> str:
    """The console script installed next to this interpreter (the venv's), else on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name!r} is not installed: run `make install` first")
    return found


REPO = Path(__file__).resolve().parent.parent

def demo_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the demo's commands: DAGSTER_HOME made absolute, created and given the
    demo's instance settings if it has none, and the two supersession notices muted."""
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
    env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS", ""), *SUPERSEDED]))
    return env


def _show(cmd: Sequence[str]) -> None:
    print("$", " ".join(Path(c).name if i == 0 else c for i, c in enumerate(cmd)), flush=True)


def demo() -> int:
    """Run the demo; return the first failing command's exit status, else 0."""
    env = demo_env()
    cache_dir = env.get("CACHE_DIR") or "data"
    today = dt.datetime.now(resolve_zone(env.get("CACHE_TZ") or "UTC")).date()
    steps = [
        # One run: the daily assets get today's partition, the unpartitioned one is written for today.
        [_tool("dagster"), "asset", "materialize", "-m", "definitions",
         "--select", "sales_data,sales_summary,exchange_rates", "--partition", today.isoformat()],
        [_tool("cache-utils"), "ls", "--dir", cache_dir],
    ]
    for cmd in steps:
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
    print(f"Next: make ui  (the Dagster UI on {UI_URL}: this run, the partitions and the cache checks)")
    return 0


def ui(args: Sequence[str]) -> int:
    """`dagster dev` on the demo's instance, in place of this process."""
    env = demo_env()
    dagster = _tool("dagster")
    _show([dagster, "dev", *args])
    os.execve(dagster, [dagster, "dev", *args], env)
    return 1  # pragma: no cover - execve does not return


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["ui"]:
        return ui(args[1:])
    if args:
        raise SystemExit(f"usage: python -m definitions.demo [ui [DAGSTER_DEV_OPTIONS...]], got {args}")
    return demo()


if __name__ == "__main__":
    sys.exit(main())
