"""The private Dagster names this package needs live in dagster_cache/compat.py alone, and this test
fails loudly the day Dagster moves one (the package itself keeps working on the fallback values)."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import dagster as dg
import pytest

from dagster_cache import compat

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(compat.PRIVATE_HOMES))
def test_each_private_name_is_still_where_dagster_keeps_it(name: str) -> None:
    home = compat.PRIVATE_HOMES[name]
    try:
        module = importlib.import_module(home)
    except ImportError as e:
        pytest.fail(f"Dagster {dg.__version__} moved {home} (for {name}): "
                    f"update dagster_cache/compat.py ({e})")
    assert hasattr(module, name), f"Dagster {dg.__version__} moved {name} out of {home}: update compat.py"
    assert getattr(module, name) == getattr(compat, name)


def test_no_other_module_imports_dagster_privates() -> None:
    offenders = []
    paths = [*sorted((ROOT / "dagster_cache").glob("*.py")), *sorted((ROOT / "definitions").rglob("*.py"))]
    for path in paths:
        if path.name == "compat.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.startswith("dagster._")]
    assert offenders == []


def test_importing_the_example_raises_no_deprecation_warning(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "CACHE_"))}
    env.update(PYTHONPATH=str(ROOT), CACHE_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", "import definitions"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]


def test_building_cache_checks_leaks_no_supersession_warning() -> None:
    from dagster_cache import build_cache_checks

    @dg.asset(partitions_def=dg.DailyPartitionsDefinition("2024-01-01", end_offset=1))
    def daily_cache() -> int:
        return 1

    @dg.asset
    def plain_cache() -> int:
        return 1

    with warnings.catch_warnings():
        warnings.simplefilter("error", dg.SupersessionWarning)
        built = build_cache_checks(assets=[daily_cache, plain_cache], cb_time="06:30")
    assert built.sensors
