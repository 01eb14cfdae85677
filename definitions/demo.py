"""`make demo`: materialize today's partition of the example assets with the Dagster CLI, then
list the cache files with `cache-utils ls`."""

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cache_utils import resolve_zone


def _tool(name: str) -> str:
    """The console script installed next to this interpreter (the venv's), else on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise SystemExit(f"{name!r} is not installed: run `make install` first")
    return found


def main() -> int:
    """Run the demo; return the first failing command's exit status, else 0."""
    env = dict(os.environ)
    # A local instance directory makes the CLI work on a fresh machine and keeps run history.
    home = Path(env.get("DAGSTER_HOME") or ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    env["DAGSTER_HOME"] = str(home)
    cache_dir = env.get("CACHE_DIR") or "data"
    today = dt.datetime.now(resolve_zone(env.get("CACHE_TZ") or "UTC")).date().isoformat()
    dagster = _tool("dagster")
    steps = [
        # One run: the daily assets get today's partition, the unpartitioned one is written for today.
        [dagster, "asset", "materialize", "-m", "definitions",
         "--select", "sales_data,sales_summary,exchange_rates", "--partition", today],
        [_tool("cache-utils"), "ls", cache_dir],
    ]
    for cmd in steps:
        print("$", " ".join(Path(cmd[0]).name if i == 0 else c for i, c in enumerate(cmd)), flush=True)
        code = subprocess.run(cmd, env=env).returncode
        if code:
            print(f"demo step failed with exit status {code}", file=sys.stderr)
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
