"""Runs every ```python block of README.md and docs/*.md (Sybil), and isolates every test.

The blocks of one page run in order in one namespace, in a fresh temporary working directory with
its own DAGSTER_HOME, so a later block may use what an earlier one defined or wrote. Pages never
share state. A block opts out with `<!-- skip: next -->` right before it (Sybil's skip syntax).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

import cache_utils
from cache_utils import InMemoryCache

# Settings that would leak alerts, keys or signatures from the developer's shell into examples and tests.
_ENV_KEYS = ("OPSGENIE_API_KEY", "OPSGENIE_API_URL", "JSM_OPS_API_KEY", "JSM_OPS_API_URL",
             "CACHE_UTILS_ALERT_TIMEOUT", "CACHE_UTILS_ALERT_DEDUPE_WINDOW", "CACHE_UTILS_SIGNING_KEY")


def _reset() -> None:
    cache_utils.configure_alerts()
    InMemoryCache.clear()


@pytest.fixture(autouse=True)
def _isolated(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test sees another's alert config, signing key or in-memory entries. (A docs page is
    isolated as a whole by `_page_setup`: its blocks share state.)"""
    if request.node.__class__.__module__.startswith("sybil"):
        yield
        return
    for name in _ENV_KEYS:
        monkeypatch.delenv(name, raising=False)
    _reset()
    yield
    _reset()


def _page_setup(namespace: dict[str, Any]) -> None:
    work = tempfile.mkdtemp(prefix="docs-")
    saved = {"cwd": os.getcwd(), "env": {k: os.environ.get(k) for k in (*_ENV_KEYS, "DAGSTER_HOME")}}
    for name in _ENV_KEYS:
        os.environ.pop(name, None)
    os.makedirs(os.path.join(work, "dagster_home"))
    os.environ["DAGSTER_HOME"] = os.path.join(work, "dagster_home")
    os.chdir(work)
    _reset()
    namespace["__docs_page__"] = (work, saved)


def _page_teardown(namespace: dict[str, Any]) -> None:
    work, saved = namespace.pop("__docs_page__")
    os.chdir(saved["cwd"])
    for name, value in saved["env"].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    _reset()
    shutil.rmtree(work, ignore_errors=True)


pytest_collect_file = Sybil(
    parsers=[PythonCodeBlockParser(), SkipParser()],
    patterns=["README.md", "docs/*.md"],
    setup=_page_setup,
    teardown=_page_teardown,
).pytest()
