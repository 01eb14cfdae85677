"""The layering rules: definitions -> dagster_cache -> cache_utils, no cycles, public names only.

`lint-imports` (import-linter, configured in pyproject.toml) checks the import graph in `make test`;
these tests check what it cannot (names against `cache_utils.__all__`) and that its contracts bite.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cache_utils

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _cache_utils_names(path: Path) -> set[str]:
    """Names a module takes from cache_utils: `from cache_utils import x` and `cache_utils.x`."""
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "cache_utils" and node.level == 0:
            names.update(alias.name for alias in node.names)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "cache_utils"):
            names.add(node.attr)
    return names


@pytest.mark.parametrize("package", ["dagster_cache", "definitions"])
def test_the_dagster_layer_uses_only_names_in_cache_utils_all(package: str) -> None:
    used = {f"{path.name}: {name}" for path in sorted((ROOT / package).glob("*.py"))
            for name in _cache_utils_names(path) if name not in cache_utils.__all__}
    assert used == set(), "import these through cache_utils.__all__ (or add them to it)"


def test_every_name_in_all_exists_and_all_has_no_duplicates() -> None:
    assert len(cache_utils.__all__) == len(set(cache_utils.__all__))
    missing = [name for name in cache_utils.__all__ if not hasattr(cache_utils, name)]
    assert missing == []


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


def test_import_contracts_hold() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # naming is imported by files: a lazy import back is a cycle all the same.
        ("cache_utils/naming.py", "def _back():\n    from . import files\n", "No import cycles"),
        ("dagster_cache/refresh.py", "from cache_utils.timing import at_time\n", "public package only"),
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
