"""The layering rules: definitions -> dagster_cache -> cache_utils, no cycles, public names only.

`lint-imports` (import-linter, configured in pyproject.toml) checks the import graph in `make test`;
these tests check what it cannot (names against `cache_utils.__all__`) and that its contracts bite.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cache_utils
from cache_utils import integration

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _cache_utils_names(path: Path, module: str = "cache_utils") -> set[str]:
    """Names a module takes from `module`: `from <module> import x` (and `cache_utils.x`)."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == module and node.level == 0:
            names.update(alias.name for alias in node.names)
        elif (module == "cache_utils" and isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "cache_utils"):
            names.add(node.attr)
    return names


@pytest.mark.parametrize("package", ["dagster_cache", "definitions"])
def test_the_dagster_layer_uses_only_names_in_cache_utils_all(package: str) -> None:
    used = {f"{path.name}: {name}" for path in sorted((ROOT / package).glob("*.py"))
            for name in _cache_utils_names(path) if name not in cache_utils.__all__}
    assert used == set(), "import these through cache_utils.__all__ (or cache_utils.integration)"


@pytest.mark.parametrize("package", ["dagster_cache", "definitions"])
def test_the_dagster_layer_takes_only_listed_names_from_the_integration_surface(package: str) -> None:
    used = {f"{path.name}: {name}" for path in sorted((ROOT / package).glob("*.py"))
            for name in _cache_utils_names(path, "cache_utils.integration")
            if name not in integration.__all__}
    assert used == set(), "add these to cache_utils.integration.__all__ (and document them) or use __all__"


def test_every_name_in_all_exists_and_all_has_no_duplicates() -> None:
    for names, module in ((cache_utils.__all__, cache_utils), (integration.__all__, integration)):
        assert len(names) == len(set(names))
        missing = [name for name in names if not hasattr(module, name)]
        assert missing == []


def test_the_public_api_is_narrow_and_nothing_left_it() -> None:
    """At most about 35 stable names (issue 20); the integration surface is apart from them; every
    name __all__ listed before the split (59) still imports from `cache_utils`."""
    assert len(cache_utils.__all__) <= 35
    assert set(cache_utils.__all__).isdisjoint(integration.__all__)
    assert all(getattr(cache_utils, name) is getattr(integration, name) for name in integration.__all__)
    before = (ROOT / "tests" / "fixtures" / "all_before_issue_20.txt").read_text().split()
    assert len(before) == 59
    assert [name for name in before if not hasattr(cache_utils, name)] == []
    assert set(before) <= set(cache_utils.__all__) | set(integration.__all__)


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


def test_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_the_integration_surface_is_the_one_submodule_the_dagster_layer_may_import(tmp_path: Path) -> None:
    for name in ("cache_utils", "dagster_cache", "definitions"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with open(tmp_path / "dagster_cache" / "refresh.py", "a") as f:
        f.write("\nfrom cache_utils.integration import at_time\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # naming is imported by files: a lazy import back is a cycle all the same.
        ("cache_utils/naming.py", "def _back():\n    from . import files\n", "No import cycles"),
        ("dagster_cache/refresh.py", "from cache_utils.timing import at_time\n", "public package and"),
        ("cache_utils/files.py", "import dagster\n", "never imports dagster"),
        ("cache_utils/naming.py", "import dagster_cache\n", "Layers"),
        # the format's writer and reader stay independent (no cycle: its own layering contract)
        ("cache_utils/format/writer.py", "from . import reader\n", "file format's modules"),
    ],
)
def test_the_import_check_fails_on_a_violation(tmp_path: Path, module: str, line: str, broken: str) -> None:
    for name in ("cache_utils", "dagster_cache", "definitions"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    assert _lint_imports(tmp_path).returncode == 0  # the copy starts clean
    with open(tmp_path / module, "a") as f:
        f.write("\n" + line)
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert broken in result.stdout.split("Broken contracts")[-1]


# --- the tests' own layout ------------------------------------------------------------------------

SUBJECTS = {"cache_utils", "stores", "dagster_cache", "cli", "system"}


def _imported_modules(path: Path) -> set[str]:
    modules: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module)
    return modules


def test_tests_live_in_subject_folders_named_by_subject() -> None:
    """tests/<subject>/test_<what>.py, helpers in tests/support; the round that found a bug goes in
    a docstring, never in a file name."""
    tests = ROOT / "tests"
    test_files = sorted(tests.rglob("test_*.py"))
    assert test_files, "no test files found"
    misplaced = [str(p.relative_to(tests)) for p in test_files
                 if p.relative_to(tests).parts[0] not in SUBJECTS]
    assert misplaced == [], f"test files outside the subject folders {sorted(SUBJECTS)}: {misplaced}"
    historic = [p.name for p in test_files if re.search(r"redteam|red_team|round|[a-z]{2,}\d+\.py$", p.name)]
    assert historic == [], f"file names that tell history rather than subject: {historic}"


def test_tests_never_import_benchmarks_or_other_test_modules() -> None:
    """Benchmarks may import tests/support; never the reverse. A test module imports helpers from
    tests/support (or a folder's conftest), never another test module."""
    bad = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        wrong = {m for m in _imported_modules(path)
                 if m.split(".")[0] == "benchmarks" or re.search(r"(^|\.)test_\w+$", m)}
        if wrong:
            bad[str(path.relative_to(ROOT))] = sorted(wrong)
    assert bad == {}, bad
