"""Signing keys rotate (issue 18, item 17): `signing_key` may be a list (the first signs, all
verify), `CACHE_UTILS_SIGNING_KEY_FALLBACKS` holds older keys, and the IO manager and the CLI take
the same; the rotation procedure of docs/file-format.md, end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest
from freezegun import freeze_time

from cache_utils import (
    CorruptCacheError,
    GzipPickleSerializer,
    NullAlerter,
    load_cache,
    prune,
    read_cache,
    save_cache,
    split_signing_keys,
    verify_cache,
)
from dagster_cache import DatedCacheIOManager

ROOT = Path(__file__).resolve().parents[2]
OLD, NEW = "old-key-0f3c", "new-key-9a1e"
KEY_ENV, FALLBACKS_ENV = "CACHE_UTILS_SIGNING_KEY", "CACHE_UTILS_SIGNING_KEY_FALLBACKS"


@pytest.fixture(autouse=True)
def _no_keys_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(FALLBACKS_ENV, raising=False)


def test_a_list_of_keys_signs_with_the_first_and_verifies_with_any(tmp_path: Path) -> None:
    d = str(tmp_path)
    save_cache("old", "p", "2024-01-14", d, signing_key=OLD)
    save_cache("new", "p", "2024-01-15", d, signing_key=[NEW, OLD])
    assert read_cache("p", "2024-01-14", d, signing_key=[NEW, OLD]) == "old"
    assert read_cache("p", "2024-01-15", d, signing_key=(NEW, OLD)) == "new"
    assert read_cache("p", "2024-01-15", d, signing_key=NEW) == "new"  # signed by the first
    with pytest.raises(CorruptCacheError, match="signature does not match"):
        read_cache("p", "2024-01-15", d, signing_key=OLD)
    with pytest.raises(CorruptCacheError, match="any of the 2 configured keys"):
        read_cache("p", "2024-01-14", d, signing_key=[NEW, "third"])


@pytest.mark.parametrize("keys", [[NEW, ""], [NEW, None], ["", OLD]])
def test_an_empty_key_in_a_list_is_an_error_naming_its_position(keys: list[object]) -> None:
    with pytest.raises((ValueError, TypeError), match=r"signing key \d of 2") as e:
        GzipPickleSerializer(signing_key=keys)  # type: ignore[arg-type]
    assert NEW not in str(e.value) and OLD not in str(e.value)


def test_a_set_of_keys_is_refused_it_has_no_first() -> None:
    with pytest.raises(TypeError, match="list or tuple"):
        GzipPickleSerializer(signing_key={NEW, OLD})  # type: ignore[arg-type]


def test_fallbacks_are_comma_separated_and_an_empty_entry_never_prints_a_key() -> None:
    assert split_signing_keys(" a , b c,d ") == (b"a", b"b c", b"d")
    assert split_signing_keys("") == split_signing_keys("  ") == split_signing_keys(None) == ()
    cases = ((f"{OLD},,{NEW}", "entry 2 of 3"), (f"{OLD},", "entry 2 of 2"), (f",{OLD}", "entry 1 of 2"),
             (f"{OLD}, ,{NEW}", "entry 2 of 3"))
    for text, where in cases:
        with pytest.raises(ValueError, match=where) as e:
            split_signing_keys(text)
        assert FALLBACKS_ENV in str(e.value)
        assert OLD not in str(e.value) and NEW not in str(e.value)


def test_fallbacks_in_the_env_without_a_signing_key_are_an_error(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    save_cache("x", "p", "2024-01-15", str(tmp_path))
    monkeypatch.setenv(FALLBACKS_ENV, OLD)
    with pytest.raises(ValueError, match=f"{FALLBACKS_ENV} is set but {KEY_ENV} is not") as e:
        read_cache("p", "2024-01-15", str(tmp_path))
    assert OLD not in str(e.value)
    monkeypatch.setenv(KEY_ENV, NEW)
    monkeypatch.setenv(FALLBACKS_ENV, f"{OLD},")
    with pytest.raises(ValueError, match="entry 2 of 2 is empty") as e:
        save_cache("x", "p", "2024-01-15", str(tmp_path))
    assert OLD not in str(e.value) and NEW not in str(e.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TZ": "UTC"}
    return subprocess.run([sys.executable, "-m", "cache_utils", *args], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env=env)


def test_rotation_end_to_end_through_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Write with the old key; rotate (new key, old one as fallback): everything loads; a rewrite
    signs with the new key; drop the fallback: old-key files are refused, rewritten ones load."""
    d = str(tmp_path)
    monkeypatch.setenv(KEY_ENV, OLD)
    for day in ("2024-01-13", "2024-01-14", "2024-01-15"):
        save_cache({"day": day}, "p", day, d)

    monkeypatch.setenv(KEY_ENV, NEW)  # rotate: without a fallback, every existing file is refused
    with pytest.raises(CorruptCacheError, match="signature does not match"):
        read_cache("p", "2024-01-15", d)
    monkeypatch.setenv(FALLBACKS_ENV, f" {OLD} ")
    assert read_cache("p", "2024-01-15", d) == {"day": "2024-01-15"}
    with freeze_time("2024-01-15 12:00:00"):
        data, _ = load_cache("p", "08:00", d, tz="UTC", alerter=NullAlerter())
        assert data == {"day": "2024-01-15"}
        assert prune("p", 2, d, tz="UTC", dry_run=True) == [os.path.join(d, "p_20240113.pkl.gz")]
    shown = _cli("show", "p", "--date", "2024-01-14", "--dir", d)  # the CLI reads both variables
    assert shown.returncode == 0 and "2024-01-14" in shown.stdout, shown.stderr

    save_cache({"day": "2024-01-15", "v": 2}, "p", "2024-01-15", d)  # rewritten: signed with NEW
    verify_cache("p", "2024-01-15", d, signing_key=NEW)
    with pytest.raises(CorruptCacheError):
        verify_cache("p", "2024-01-15", d, signing_key=OLD)

    monkeypatch.delenv(FALLBACKS_ENV)  # the rotation is over
    assert read_cache("p", "2024-01-15", d) == {"day": "2024-01-15", "v": 2}
    with pytest.raises(CorruptCacheError, match="signature does not match"):
        read_cache("p", "2024-01-14", d)
    shown = _cli("show", "p", "--date", "2024-01-14", "--dir", d)
    assert shown.returncode == 1 and "signature does not match" in shown.stderr
    assert OLD not in shown.stderr and NEW not in shown.stderr


@dg.asset
def prices() -> dict:
    return {"p": 1}


@dg.asset
def report(prices: dict) -> int:
    return len(prices)


def test_io_manager_rotation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = str(tmp_path)

    def manager(**keys: object) -> DatedCacheIOManager:
        return DatedCacheIOManager(directory=d, timezone="UTC", **keys)  # type: ignore[arg-type]

    with freeze_time("2024-01-15 12:00:00"):
        assert dg.materialize([prices], resources={"io_manager": manager(signing_key=OLD)}).success
        # Rotated without a fallback: the consumer refuses the old file (and has nothing older).
        result = dg.materialize([prices, report], selection=[report], raise_on_error=False,
                                resources={"io_manager": manager(signing_key=NEW)})
        assert not result.success
        monkeypatch.setenv("ROTATION_FALLBACKS", OLD)
        rotating = manager(signing_key=NEW, signing_key_fallbacks=dg.EnvVar("ROTATION_FALLBACKS"))
        assert OLD not in repr(rotating)
        result = dg.materialize([prices, report], selection=[report], resources={"io_manager": rotating})
        assert result.output_for_node("report") == 1
        assert dg.materialize([prices], resources={"io_manager": rotating}).success  # rewrite: NEW signs
    verify_cache("prices", "2024-01-15", d, signing_key=NEW)
    with freeze_time("2024-01-15 12:00:00"):
        result = dg.materialize([prices, report], selection=[report],
                                resources={"io_manager": manager(signing_key=NEW)})
        assert result.output_for_node("report") == 1
        bad = dg.materialize([prices], raise_on_error=False,
                             resources={"io_manager": manager(signing_key_fallbacks=OLD)})
    assert not bad.success
    errors = [e for e in bad.all_events if e.is_failure]
    text = " ".join(str(e.event_specific_data) for e in errors)
    assert "signing_key_fallbacks is set but signing_key is not" in text and OLD not in text


def test_the_verifies_check_accepts_a_fallback_key(tmp_path: Path) -> None:
    from dagster_cache import build_cache_file_checks

    save_cache({"p": 1}, "prices", "2024-01-15", str(tmp_path), signing_key=OLD)

    def verifies(**keys: object) -> bool:
        resources = {"io_manager": DatedCacheIOManager(directory=str(tmp_path), timezone="UTC", **keys)}  # type: ignore[arg-type]
        result = dg.materialize([prices, *build_cache_file_checks(assets=[prices])], resources=resources,
                                selection=dg.AssetSelection.all_asset_checks())
        return next(e.passed for e in result.get_asset_check_evaluations()
                    if e.check_name == "cache_file_verifies")

    with freeze_time("2024-01-15 12:00:00"):
        assert not verifies(signing_key=NEW)
        assert verifies(signing_key=NEW, signing_key_fallbacks=OLD)


def test_an_owned_file_signed_with_a_rotated_out_key_keeps_its_owner(tmp_path: Path) -> None:
    """The owner record's MAC is checked with the key that signed the file, not only the first."""
    from cache_utils import cache_owner, write_cache

    write_cache({"a": 1}, "px", "2024-01-05", str(tmp_path), signing_key="old-key", owner="asset sales")
    keys = ["new-key", "old-key"]
    assert cache_owner("px", "2024-01-05", str(tmp_path), signing_key=keys) == "asset sales"
    assert read_cache("px", "2024-01-05", str(tmp_path), signing_key=keys) == {"a": 1}
    with pytest.raises(CorruptCacheError):
        cache_owner("px", "2024-01-05", str(tmp_path), signing_key=["new-key"])
