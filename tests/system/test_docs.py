"""What the docs promise about themselves: every public name is explained, the library's pages have
runnable examples (Sybil runs them, see conftest.py) and no opt-outs, and the site builds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import cache_utils
import dagster_cache

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# Pages whose examples must all run: the library's own, with no `<!-- skip -->`.
OWN_PAGES = ("library.md", "file-format.md", "alerts.md", "cli.md", "original-api.md")


def _text(*pages: str) -> str:
    return "\n".join((DOCS / page).read_text(encoding="utf-8") for page in pages)


@pytest.mark.parametrize(
    ("module", "pages"),
    [(cache_utils, ("library.md", "file-format.md", "alerts.md")), (dagster_cache, ("dagster.md",))],
    ids=["cache_utils", "dagster_cache"],
)
def test_every_public_name_is_explained_in_prose(module: object, pages: tuple[str, ...]) -> None:
    text = _text(*pages)
    missing = [name for name in module.__all__ if not re.search(rf"\b{re.escape(name)}\b", text)]  # type: ignore[attr-defined]
    assert missing == []


@pytest.mark.parametrize("page", OWN_PAGES)
def test_the_librarys_pages_have_runnable_examples_and_no_opt_outs(page: str) -> None:
    text = _text(page)
    assert "```python" in text
    assert "<!-- skip" not in text


@pytest.mark.parametrize("path", sorted([*DOCS.glob("*.md"), ROOT / "README.md"]), ids=lambda p: p.name)
def test_examples_show_errors_as_users_meet_them_not_through_pytest(path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
    assert not [b for b in blocks if "pytest" in b]


def test_readme_stays_short_and_links_only_to_files_in_the_repository() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not link.startswith("http")]
    assert local and [link for link in local if not (ROOT / link).exists()] == []


@pytest.mark.integration
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    api = (tmp_path / "api" / "cache_utils" / "index.html").read_text(encoding="utf-8")
    assert [n for n in cache_utils.__all__ if f'id="cache_utils.{n}"' not in api] == []
