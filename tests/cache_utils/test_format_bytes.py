"""The bytes a cache file holds do not change when the code that writes them is reorganized.

`tests/fixtures/format_golden.json` holds the SHA-256 of the bytes written, and the fingerprints
reported, for a fixed set of values and settings (levels, thread counts, signing keys, owners,
one member and several, a numpy array given to the writer as a `PickleBuffer`), and
`tests/fixtures/format_v1_*.pkl.gz` are small files, all written by the code before the format
moved into `cache_utils.format` (commit 00f8477). This test writes the same values again and
compares the hashes, and loads the old files. Regenerate only on a deliberate format change
(or an ISA-L upgrade that changes its deflate output): `python -m tests.test_format_bytes`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pandas as pd  # noqa: F401 - imported before freezegun runs (pandas issue 64023)
import pytest

from cache_utils import (
    GzipPickleSerializer,
    cache_fingerprint,
    cache_owner,
    data_fingerprint,
    read_cache,
    verify_cache,
    write_cache,
)
from cache_utils.format import layout

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = FIXTURES / "format_golden.json"
NAME = "golden_20240115.pkl.gz"
KEYS: dict[str, Any] = {"none": None, "one": b"golden key", "rotated": ["new key", "old key"]}


def values() -> dict[str, Any]:
    """Fixed values: small, empty, a numpy array (written through a PickleBuffer) and several
    members of bytes and small frames."""
    import numpy as np

    seed = hashlib.sha256(b"golden").digest()
    blob = b"".join(hashlib.sha256(seed + i.to_bytes(4, "little")).digest() for i in range(40_000))
    return {
        "small": {"a": 1, "b": "text", "c": [1.5, None, True], "d": dt.date(2024, 1, 15)},
        "empty": b"",
        "array": np.arange(400_000, dtype=np.int64),  # 3.2 MB: two members
        "members": {"blob": blob * 4, "words": [f"w{i}" for i in range(60_000)], "half": blob[:700_001]},
    }


def settings() -> list[tuple[str, str, int, int, str | None]]:
    """(value, key, level, threads, owner) combinations written."""
    out: list[tuple[str, str, int, int, str | None]] = []
    for value in ("small", "empty", "array", "members"):
        for key in KEYS:
            for owner in (None, "asset ['sales', 'b'] partition 2024-01-15"):
                out.append((value, key, 2, 2, owner))
    for level in (0, 1, 3):
        out.append(("members", "one", level, 3, None))
    out.append(("members", "none", 2, 1, "one thread"))
    out.append(("members", "rotated", 2, 4, "four threads"))
    return out


def label(value: str, key: str, level: int, threads: int, owner: str | None) -> str:
    return f"{value}/key={key}/level={level}/threads={threads}/owner={owner}"


def written() -> dict[str, dict[str, str]]:
    """What the code in use writes for every combination of `settings()`."""
    data = values()
    out = {}
    for value, key, level, threads, owner in settings():
        buf = io.BytesIO()
        serializer = GzipPickleSerializer(level=level, signing_key=KEYS[key], threads=threads)
        fingerprint = serializer.dump(data[value], buf, NAME, owner)
        buf.seek(0)
        out[label(value, key, level, threads, owner)] = {
            "sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
            "fingerprint": fingerprint,
            "read_fingerprint": GzipPickleSerializer.fingerprint(buf, NAME),
            "data_fingerprint": data_fingerprint(data[value]),
        }
    return out


def write_old_files() -> None:
    """The small files kept as written by the older code (a few KiB each)."""
    data = values()
    write_cache(data["small"], "format_v1_plain", "2024-01-15", str(FIXTURES))
    write_cache(data["small"], "format_v1_signed_owned", "2024-01-15", str(FIXTURES),
                signing_key=b"golden key", owner="asset ['sales', 'b']")
    layout.MEMBER_SIZE, size = 4096, layout.MEMBER_SIZE  # three members in a small file
    try:
        write_cache(list(range(3000)), "format_v1_owned", "2024-01-15", str(FIXTURES), owner="nightly job")
    finally:
        layout.MEMBER_SIZE = size


@pytest.fixture(scope="module")
def golden() -> dict[str, dict[str, str]]:
    with GOLDEN.open() as f:
        result: dict[str, dict[str, str]] = json.load(f)
    return result


def test_the_bytes_written_are_those_of_the_code_before(golden: dict[str, dict[str, str]]) -> None:
    now = written()
    assert sorted(now) == sorted(golden)  # the same combinations
    changed = [name for name in golden if now[name] != golden[name]]
    assert changed == [], f"bytes or fingerprints differ from the code before for {changed}"


@pytest.mark.parametrize(
    ("prefix", "key", "owner"),
    [
        ("format_v1_plain", None, None),
        ("format_v1_signed_owned", b"golden key", "asset ['sales', 'b']"),
        ("format_v1_owned", None, "nightly job"),
    ],
)
def test_files_written_by_the_code_before_load(
    prefix: str, key: bytes | None, owner: str | None, tmp_path: Path
) -> None:
    expected = list(range(3000)) if prefix == "format_v1_owned" else values()["small"]
    directory = str(FIXTURES)
    assert read_cache(prefix, "2024-01-15", directory, signing_key=key) == expected
    assert cache_owner(prefix, "2024-01-15", directory, signing_key=key) == owner
    checked = verify_cache(prefix, "2024-01-15", directory, signing_key=key)
    assert checked.fingerprint == cache_fingerprint(prefix, "2024-01-15", directory).fingerprint
    assert checked.fingerprint == data_fingerprint(expected)
    assert checked.owner == owner


if __name__ == "__main__":  # regenerate the fixtures (see the module docstring)
    sys.path.insert(0, os.getcwd())
    write_old_files()
    GOLDEN.write_text(json.dumps(written(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN} and the format_v1 files")
