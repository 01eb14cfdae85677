"""The documentation site as a reader meets it: works offline (no font or other asset fetched from the
internet), no placeholder repository link, code that wraps, tables that fit, names that never break
mid-word, search that finds `stale_inputs`, and the Dagster page naming every public name."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import dagster_cache

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def config() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)  # mkdocs' !ENV and the like
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)  # noqa: S506 - SafeLoader subclass


def test_no_placeholder_repository_and_no_web_fonts() -> None:
    conf = config()
    assert "example.invalid" not in (ROOT / "mkdocs.yml").read_text()
    assert conf["theme"].get("font") is False


def test_css_wraps_code_fits_tables_and_keeps_first_column_names_whole() -> None:
    conf = config()
    css = "\n".join((DOCS / path).read_text() for path in conf["extra_css"])
    assert re.search(r"pre > code\s*{[^}]*white-space:\s*pre-wrap", css)
    assert re.search(r"table:not\(\[class\]\)\s*{[^}]*width:\s*100%", css)
    assert re.search(r"td:first-child\s*{[^}]*white-space:\s*nowrap", css)


def test_the_dagster_page_lists_every_public_name_up_front() -> None:
    text = (DOCS / "dagster.md").read_text()
    intro = text[: text.index("## `DatedCacheIOManager`")]
    listed = set(re.findall(r"^\| `([A-Za-z_]+)` \|", intro, re.M))
    assert listed == set(dagster_cache.__all__)


@pytest.mark.integration
def test_built_site_is_offline_and_search_finds_stale_inputs(tmp_path: Path) -> None:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for page in tmp_path.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        assert "fonts.googleapis" not in html and "fonts.gstatic" not in html, page
        assert "example.invalid" not in html, page
        # Every stylesheet and script is the site's own.
        assert not re.findall(r'<(?:link|script)[^>]+(?:href|src)="https?://', html), page
    index = json.loads((tmp_path / "search" / "search_index.json").read_text())
    separator = re.compile(index["config"]["separator"])
    texts = [re.sub("<[^>]+>", " ", doc["text"]) for doc in index["docs"]]
    tokens = {t.lower() for text in texts for t in separator.split(text)}
    assert "stale_inputs" in tokens
