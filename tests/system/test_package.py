"""The package builds, passes `twine check`, is typed, and its wheel holds only the two libraries."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import cache_utils

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, "-m", "build", "--sdist", "--wheel", "--outdir", str(out), str(ROOT)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


def test_twine_check_passes(dist: Path) -> None:
    files = sorted(str(p) for p in dist.iterdir())
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *files],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2


def test_the_wheel_holds_the_libraries_typed_and_versioned_from_one_place(dist: Path) -> None:
    [wheel] = dist.glob("*.whl")
    assert wheel.name.startswith(f"dated_caches-{cache_utils.__version__}-")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.startswith("dated_caches-")}
    assert tops == {"cache_utils", "dagster_cache"}
    assert {"cache_utils/py.typed", "dagster_cache/py.typed", "cache_utils/stores/fsspec.py"} <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "definitions/"))]
    # Every module of the source tree is in the wheel (subpackages included).
    source = {p.relative_to(ROOT).as_posix() for top in ("cache_utils", "dagster_cache")
              for p in (ROOT / top).rglob("*.py")}
    assert source <= set(names), sorted(source - set(names))
