"""`import cache_utils` stays light: no dagster, pandas, opsgenie_sdk or fsspec until needed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("dagster", "pandas", "opsgenie_sdk", "fsspec", "numpy", "s3fs", "dateutil")


def imported_after(code: str) -> set[str]:
    """Top-level package names present in sys.modules after running `code` in a fresh interpreter."""
    script = code + "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def test_import_cache_utils_is_light() -> None:
    loaded = imported_after("import cache_utils")
    assert "cache_utils" in loaded
    assert not loaded.intersection(HEAVY), sorted(loaded.intersection(HEAVY))


@pytest.mark.parametrize(
    "code",
    [
        "from cache_utils import cache_filename; cache_filename('s', None)",
        "import cache_utils.cli",
        "from cache_utils import InMemoryCache; InMemoryCache.put({'a': [1]}, 'k'); InMemoryCache.get('k')",
        "import tempfile; from cache_utils import save_cache, load_cache;"
        "d = tempfile.mkdtemp(); save_cache({'a': 1}, 's', None, d); load_cache('s', '09:00', d)",
    ],
)
def test_common_calls_stay_light(code: str) -> None:
    loaded = imported_after(code)
    assert not loaded.intersection({"dagster", "pandas", "opsgenie_sdk", "fsspec"}), code


def test_date_strings_load_dateutil_only_when_parsed() -> None:
    code = "from cache_utils import cache_filename; cache_filename('s', '15 Jan 2024')"
    assert "dateutil" in imported_after(code)


def test_no_dagster_even_with_alerts_configured() -> None:
    loaded = imported_after(
        "import cache_utils; cache_utils.configure_alerts(api_key='k', api_url='http://127.0.0.1:9')"
    )
    assert not loaded.intersection({"dagster", "opsgenie_sdk"})  # the SDK loads only to send
