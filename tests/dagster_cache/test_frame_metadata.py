"""Polars and Arrow frames get the UI metadata pandas frames get (row count, column schema, preview);
a Polars LazyFrame is refused before anything is written; neither library is imported for
values that are not theirs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from cache_utils import read_cache
from dagster_cache import DatedCacheIOManager

DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)
ROOT = Path(__file__).resolve().parents[2]


def written(tmp_path: Path, value: object, key: str = "prices") -> dict:
    ctx = dg.build_output_context(asset_key=key, partition_key="2024-01-15", asset_partitions_def=DAILY)
    DatedCacheIOManager(directory=str(tmp_path)).handle_output(ctx, value)
    return ctx.get_logged_metadata()


FRAMES = {
    "pandas": lambda: pd.DataFrame({"a": [1, 2, 3], "b": ["x0", "x1", "x|2"]}),
    "polars": lambda: pl.DataFrame({"a": [1, 2, 3], "b": ["x0", "x1", "x|2"]}),
    "arrow": lambda: pa.table({"a": [1, 2, 3], "b": ["x0", "x1", "x|2"]}),
}


@pytest.mark.parametrize("kind", list(FRAMES))
def test_every_frame_kind_gets_row_count_schema_and_preview(tmp_path: Path, kind: str) -> None:
    meta = written(tmp_path, FRAMES[kind]())
    assert meta["dagster/row_count"].value == 3
    assert meta["dagster/partition_row_count"].value == 3
    columns = meta["dagster/column_schema"].schema.columns
    assert [c.name for c in columns] == ["a", "b"]
    assert all(c.type for c in columns)
    preview = meta["preview"].md_str
    header = preview.splitlines()[0]
    assert "a" in header and "b" in header and "x1" in preview


def test_polars_and_arrow_types_are_their_own(tmp_path: Path) -> None:
    def types(meta: dict) -> dict:
        return {c.name: c.type for c in meta["dagster/column_schema"].schema.columns}

    polars = types(written(tmp_path, FRAMES["polars"]()))
    arrow = types(written(tmp_path, FRAMES["arrow"](), "p2"))
    assert polars == {"a": "Int64", "b": "String"}
    assert arrow == {"a": "int64", "b": "string"}


def test_preview_is_bounded_by_preview_rows(tmp_path: Path) -> None:
    big = pl.DataFrame({"n": list(range(100))})
    meta = written(tmp_path, big)
    assert meta["dagster/row_count"].value == 100
    lines = meta["preview"].md_str.splitlines()
    rows = [line for line in lines if line.startswith("| ") and line[2:3].isdigit()]
    assert len(rows) == 5


def test_polars_frame_round_trips(tmp_path: Path) -> None:
    value = FRAMES["polars"]()
    written(tmp_path, value)
    assert read_cache("prices", "2024-01-15", str(tmp_path)).equals(value)


def test_lazy_frame_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    lazy = FRAMES["polars"]().lazy()
    with pytest.raises(TypeError, match=r"LazyFrame.*collect\(\)"):
        written(tmp_path, lazy)
    assert list(tmp_path.iterdir()) == []


def test_polars_and_pyarrow_stay_unimported_for_other_values(tmp_path: Path) -> None:
    code = (
        "import sys, dagster as dg\n"
        "from dagster_cache import DatedCacheIOManager\n"
        "from dagster_cache.metadata import frame_metadata\n"
        "assert frame_metadata({'a': 1}, 5, False) == {}\n"
        "ctx = dg.build_output_context(asset_key='x')\n"
        f"DatedCacheIOManager(directory={str(tmp_path)!r}).handle_output(ctx, [1, 2])\n"
        "print(sorted(m for m in ('polars', 'pyarrow') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
