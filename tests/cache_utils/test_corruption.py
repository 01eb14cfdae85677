"""Damaged cache files are skipped (with an alert) for the newest good one; bit rot
never yields different data."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest
from freezegun import freeze_time

from cache_utils import (
    CacheNotFoundError,
    CorruptCacheError,
    load_cache,
    load_latest_cache,
    read_cache,
    save_cache,
)
from cache_utils.stores import LocalStore
from tests.support.opsgenie_fake import TEST_API_KEY
from tests.support.scenarios import WORKERS, run_bit_rot

GOOD = {"rows": list(range(50)), "name": "yesterday"}
NOW = "2024-01-15 12:00:00"
TODAY = "prices_20240115.pkl.gz"


def _truncated(path: str) -> None:
    save_cache({"big": list(range(5000))}, "prices", "2024-01-15", os.path.dirname(path))
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _write(data: bytes) -> Callable[[str], None]:
    def write(path: str) -> None:
        with open(path, "wb") as f:
            f.write(data)
    return write


def _trailing(extra: bytes) -> Callable[[str], None]:
    def write(path: str) -> None:
        save_cache({"today": 1}, "prices", "2024-01-15", os.path.dirname(path))
        with open(path, "ab") as f:
            f.write(extra)
    return write


def _directory(path: str) -> None:
    os.mkdir(path)


def _vanishing_class(path: str) -> None:
    """Pickle an instance of a class whose module exists only in a child process."""
    module_dir = os.path.join(os.path.dirname(path), "..", "mods")
    os.makedirs(module_dir, exist_ok=True)
    with open(os.path.join(module_dir, "vanishing_module_for_tests.py"), "w") as f:
        f.write(textwrap.dedent("""
            class Gone:
                def __init__(self, x):
                    self.x = x
        """))
    subprocess.run([sys.executable, WORKERS, "vanishing-class", os.path.dirname(path), "prices",
                    module_dir], check=True, capture_output=True)
    assert "vanishing_module_for_tests" not in sys.modules


DAMAGE = {
    "truncated gzip": _truncated,
    "broken pickle in valid gzip": _write(gzip.compress(b"\x80\x05\x95garbage, not a pickle")),
    "zero bytes": _write(b""),
    "not gzip at all": _write(b"PK\x03\x04 a zip file"),
    "trailing garbage": _trailing(b"garbage"),
    "trailing second gzip member": _trailing(gzip.compress(pickle.dumps("extra"))),
    "directory with the cache name": _directory,
    "class no longer exists": _vanishing_class,
}


@pytest.mark.parametrize("damage", DAMAGE, ids=list(DAMAGE))
def test_load_cache_skips_damaged_file_and_alerts(tmp_path, opsgenie, caplog, damage):
    d = str(tmp_path / "data")
    save_cache(GOOD, "prices", "2024-01-14", d)
    DAMAGE[damage](os.path.join(d, TODAY))
    with pytest.raises((CorruptCacheError, FileNotFoundError)) as info:
        read_cache("prices", "2024-01-15", d)
    assert info.type is CorruptCacheError, info.value  # damaged is never mistaken for missing
    with freeze_time(NOW):
        data, _ = load_cache("prices", "23:00", d, tz="UTC")
    assert data == GOOD
    creates = opsgenie.creates()
    assert len(creates) == 1
    assert creates[0].body["alias"] == "cache_utils:prices"
    assert TODAY in creates[0].body["description"]
    assert any("skipping corrupt cache file" in r.getMessage() and TODAY in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("damage", ["zero bytes", "truncated gzip", "directory with the cache name"])
def test_no_good_file_is_no_data(tmp_path, opsgenie, damage):
    d = str(tmp_path / "data")
    os.makedirs(d)
    DAMAGE[damage](os.path.join(d, TODAY))
    with freeze_time(NOW):
        data, when = load_cache("prices", "23:00", d, allow_no_data=True, tz="UTC")
        assert data == {}
        with pytest.raises(CacheNotFoundError, match="prices"):
            load_cache("prices", "23:00", d, tz="UTC")
    assert opsgenie.creates() and opsgenie.open_aliases() == {"cache_utils:prices"}


def test_several_damaged_files_fall_back_to_newest_good(tmp_path, opsgenie):
    d = str(tmp_path)
    save_cache({"day": 12}, "prices", "2024-01-12", d)
    save_cache({"day": 13}, "prices", "2024-01-13", d)
    _write(b"")(os.path.join(d, "prices_20240114.pkl.gz"))
    _write(b"\x1f\x8b\x08\x00junk")(os.path.join(d, TODAY))
    hit, skipped = load_latest_cache("prices", "2024-01-15", d)
    assert hit is not None and hit.data == {"day": 13}
    assert [os.path.basename(s.path) for s in skipped] == [TODAY, "prices_20240114.pkl.gz"]


def test_file_vanishing_between_listing_and_opening(tmp_path, monkeypatch):
    """The newest file is listed, then deleted before it is opened (another process pruned it)."""
    d = str(tmp_path)
    save_cache({"day": 13}, "prices", "2024-01-13", d)
    save_cache({"day": 14}, "prices", "2024-01-14", d)
    real_open = LocalStore.open_read
    vanished = []

    def open_after_delete(self, name):
        if name == "prices_20240114.pkl.gz" and not vanished:
            os.unlink(self.path(name))  # lost the race: it was listed a moment ago
            vanished.append(name)
        return real_open(self, name)

    monkeypatch.setattr(LocalStore, "open_read", open_after_delete)
    with freeze_time(NOW):
        data, _ = load_cache("prices", "23:00", d, tz="UTC")
    assert vanished == ["prices_20240114.pkl.gz"]  # it was listed and really opened after deletion
    assert data == {"day": 13}


# --- bit rot -------------------------------------------------------------------------------


def _bit_rot(tmp_path, signing_key: str | None, flips: int = 300, seed: int = 5) -> dict[str, int]:
    return run_bit_rot(str(tmp_path), flips, seed, signing_key)


def test_bit_rot_300_flips_never_return_different_data(tmp_path):
    counts = _bit_rot(tmp_path, None)
    assert counts["different"] == 0, counts
    assert counts["detected"] == counts["fallback"] >= 290, counts


def test_bit_rot_signed_file(tmp_path):
    counts = _bit_rot(tmp_path, "rot-key")
    assert counts["different"] == 0, counts
    assert counts["detected"] == counts["fallback"] >= 290, counts


@pytest.mark.slow
def test_bit_rot_3000_flips(tmp_path):
    counts = _bit_rot(tmp_path, None, flips=3000, seed=6)
    assert counts["different"] == 0, counts


# --- the Dagster IO manager's fallback path -------------------------------------------------


def test_io_manager_skips_corrupt_partition_file_and_alerts(tmp_path, opsgenie):
    import dagster as dg
    from dagster._core.types.dagster_type import resolve_dagster_type

    from dagster_cache.io_manager import DatedCacheIOManager
    from dagster_cache.resources import OpsGenieResource

    d = str(tmp_path)
    save_cache(GOOD, "prices", "2024-01-14", d)
    _write(gzip.compress(b"\x80\x05\x95broken"))(os.path.join(d, TODAY))
    manager = DatedCacheIOManager(
        directory=d, opsgenie=OpsGenieResource(api_key=TEST_API_KEY, api_url=opsgenie.url, timeout=2)
    )
    context = dg.build_input_context(
        asset_key=dg.AssetKey("prices"),
        partition_key="2024-01-15",
        asset_partitions_def=dg.DailyPartitionsDefinition(start_date="2024-01-01"),
        dagster_type=resolve_dagster_type(object),
    )
    assert manager.load_input(context) == GOOD
    creates = opsgenie.creates()
    assert len(creates) == 1 and creates[0].body["alias"] == "cache_utils:prices"
    assert f"{TODAY} is corrupt" in creates[0].body["description"]
