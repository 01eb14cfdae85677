"""Files and directories this user may not read (issue 18.3): an unreadable file is skipped like a
corrupt one, with a warning naming it, by `load_cache`, `load_latest_cache`, `prune` and the CLI; a
directory that can be listed but not searched is an error naming it, never "no cache files".

The tests run here as root, whom mode bits do not stop (CAP_DAC_OVERRIDE): each scenario runs in
a child process started through `setpriv` with every capability dropped, so that the kernel checks
mode bits for it as for any user (the child keeps uid 0 and so can still run the interpreter under
/root; for it, a file owned by root is governed by the owner bits, one owned by `nobody` by the
"other" bits). As a non-root user the child runs as that user, which mode 000 stops just the same.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache_utils import save_cache

ROOT = Path(__file__).resolve().parents[2]
IS_ROOT = os.geteuid() == 0
NOBODY = 65534


def run_unprivileged(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `code` (Python) without the capabilities that bypass mode bits; it may print JSON."""
    prefix: list[str] = []
    if IS_ROOT:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root without setpriv (util-linux) to drop CAP_DAC_OVERRIDE: mode "
                        "bits cannot be tested")
        prefix = [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"]
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT), "TZ": "UTC",
           "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([*prefix, sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)


@pytest.fixture
def one_unreadable(tmp_path: Path) -> Iterator[Path]:
    """sales on the 13th and 14th readable by all; the 15th (today in the tests) mode 000."""
    data = tmp_path / "data"
    for day in (13, 14, 15):
        path = Path(save_cache({"day": day}, "sales", f"2024-01-{day}", str(data)))
        path.chmod(0o644)
    (data / "sales_20240115.pkl.gz").chmod(0o000)
    yield data
    data.chmod(0o755)  # so that pytest can clean up


LOAD = """
    import json, logging, sys
    import pandas  # before freezegun
    from freezegun import freeze_time
    import cache_utils as cu

    warnings = []
    class Keep(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())
    logging.getLogger("cache_utils").addHandler(Keep(logging.WARNING))

    class Collect(cu.Alerter):
        sent = []
        def create(self, alert):
            self.sent.append(alert.description)
        def close(self, alias, note=""):
            pass

    alerter = Collect()
    directory = sys.argv[1]
    with freeze_time("2024-01-15 09:00:00"):
        data, when = cu.load_cache("sales", "08:00", directory, alerter=alerter)
        hit, skipped = cu.load_latest_cache("sales", None, directory)
    print(json.dumps({"data": data, "when": when.isoformat(), "warnings": warnings,
                      "alerts": alerter.sent, "hit": hit.path,
                      "skipped": [[s.path, s.kind, s.reason] for s in skipped]}))
"""


def test_load_skips_an_unreadable_file_with_a_warning_and_an_alert(one_unreadable: Path) -> None:
    today = str(one_unreadable / "sales_20240115.pkl.gz")
    result = run_unprivileged(LOAD, str(one_unreadable))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["data"] == {"day": 14}
    assert out["hit"] == str(one_unreadable / "sales_20240114.pkl.gz")
    reason = "not readable by this user (permission denied): check its mode and owner"
    assert out["skipped"] == [[today, "unreadable", reason]]
    assert f"skipping unreadable cache file {today}: {reason}" in out["warnings"]
    assert any(f"skipped unreadable file {today}" in a for a in out["alerts"]), out["alerts"]


@pytest.mark.skipif(not IS_ROOT, reason="needs root to give a file to another user (chown)")
def test_another_users_0600_file_is_skipped(one_unreadable: Path) -> None:
    """The realistic case: files are written 0600 by their owner; a reader running as another user."""
    today = one_unreadable / "sales_20240115.pkl.gz"
    os.chown(today, NOBODY, NOBODY)
    today.chmod(0o600)
    result = run_unprivileged(LOAD, str(one_unreadable))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["data"] == {"day": 14} and out["skipped"][0][1] == "unreadable"


PRUNE = """
    import json, logging, sys
    import pandas  # before freezegun
    from freezegun import freeze_time
    import cache_utils as cu

    warnings = []
    class Keep(logging.Handler):
        def emit(self, record):
            warnings.append(record.getMessage())
    logging.getLogger("cache_utils").addHandler(Keep(logging.WARNING))
    with freeze_time("2024-01-15 09:00:00"):
        dry = cu.prune("sales", 1, sys.argv[1], dry_run=True)
    print(json.dumps({"would_delete": dry, "warnings": warnings}))
"""


def test_prune_does_not_count_an_unreadable_file_as_the_kept_one(one_unreadable: Path) -> None:
    """keep=1 keeps the 15th, which this user cannot read: the 14th (which load_cache falls back
    to) is kept too, and only the 13th would go."""
    result = run_unprivileged(PRUNE, str(one_unreadable))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["would_delete"] == [str(one_unreadable / "sales_20240113.pkl.gz")]
    today = one_unreadable / "sales_20240115.pkl.gz"
    assert any(f"skipping unreadable cache file {today}" in w for w in out["warnings"]), out["warnings"]


CLI = """
    import sys
    import pandas  # before freezegun
    from freezegun import freeze_time
    from cache_utils.cli import main

    with freeze_time("2024-01-15 09:00:00"):
        sys.exit(main(sys.argv[1:]))
"""


def test_cli_show_and_prune_skip_an_unreadable_file(one_unreadable: Path) -> None:
    today = one_unreadable / "sales_20240115.pkl.gz"
    show = run_unprivileged(CLI, "show", "sales", "--dir", str(one_unreadable))
    assert show.returncode == 0, show.stderr
    assert show.stdout.startswith("sales 2024-01-14\n")
    assert f"cache-utils: warning: skipping unreadable cache file {today}" in show.stderr
    prune = run_unprivileged(CLI, "prune", "sales", "--keep", "1", "--dry-run", "--dir", str(one_unreadable))
    assert prune.returncode == 0, prune.stderr
    assert prune.stdout.splitlines() == [f"would delete {one_unreadable / 'sales_20240113.pkl.gz'}",
                                         "would delete 1 file(s)"]
    assert f"skipping unreadable cache file {today}" in prune.stderr
    exact = run_unprivileged(CLI, "show", "sales", "--date", "2024-01-15", "--dir", str(one_unreadable))
    assert exact.returncode == 1  # asked for that very file: an error naming it, in one line
    assert exact.stderr == f"cache-utils: {today}: permission denied (check its permissions and owner)\n"


UNSEARCHABLE = """
    import json, sys
    import pandas  # before freezegun
    from freezegun import freeze_time
    import cache_utils as cu

    out = {}
    directory = sys.argv[1]
    calls = {
        "list_caches": lambda: cu.list_caches(directory),
        "cache_dates": lambda: cu.cache_dates("sales", directory),
        "latest": lambda: cu.get_latest_cache_filename("sales", directory),
        "load_cache": lambda: cu.load_cache("sales", "08:00", directory, allow_no_data=True),
        "load_latest_cache": lambda: cu.load_latest_cache("sales", None, directory),
        "cache_exists": lambda: cu.cache_exists("sales", "2024-01-15", directory),
        "check_refresh": lambda: cu.check_refresh("sales", "08:00", directory),
        "prune": lambda: cu.prune("sales", 1, directory, dry_run=True),
    }
    with freeze_time("2024-01-15 09:00:00"):
        for name, call in calls.items():
            try:
                out[name] = repr(call())
            except PermissionError as e:
                out[name] = f"PermissionError: {e.filename}: {e.strerror}"
    print(json.dumps(out))
"""


def test_a_directory_that_can_be_listed_but_not_searched_is_an_error(one_unreadable: Path) -> None:
    (one_unreadable / "sales_20240115.pkl.gz").chmod(0o644)
    one_unreadable.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)  # r--r--r--: names, but no x
    result = run_unprivileged(UNSEARCHABLE, str(one_unreadable))
    assert result.returncode == 0, result.stderr
    expected = (f"PermissionError: {one_unreadable}: cache directory {str(one_unreadable)!r} cannot be "
                f"searched (no execute permission for this user): its files can be listed but not "
                f"opened; check its mode and owner")
    assert json.loads(result.stdout) == dict.fromkeys(
        ["list_caches", "cache_dates", "latest", "load_cache", "load_latest_cache", "cache_exists",
         "check_refresh", "prune"], expected)
    for args in (["ls"], ["show", "sales"], ["prune", "sales", "--keep", "1"]):
        cli = run_unprivileged(CLI, *args, "--dir", str(one_unreadable))
        assert (cli.returncode, cli.stdout) == (1, ""), cli.stderr  # 1: cannot be used; 3 is "not found"
        assert cli.stderr == (f"cache-utils: {one_unreadable}: permission denied (check its permissions "
                              "and owner)\n")
