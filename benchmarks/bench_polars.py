"""Polars frames: save_cache / load_cache of a 1M-row polars.DataFrame (it round-trips through the
pickle format as any value does) against Polars' own Parquet and IPC (Arrow) writers on the same
frame, each writing to and reading from a local file (ours atomically: temp file, fsync, rename).
Also the file sizes. Run from the repository root: `python -m benchmarks.bench_polars [--quick]`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

import cache_utils
from benchmarks.bench_io import interleaved
from benchmarks.common import Row, median, parse_args, report, secs


def make_polars(rows: int) -> pl.DataFrame:
    """A frame like a daily extract: ints, floats, a low-cardinality string, a date."""
    import numpy as np

    rng = np.random.default_rng(7)
    return pl.DataFrame({
        "id": np.arange(rows, dtype=np.int64),
        "price": rng.random(rows) * 100,
        "qty": rng.integers(0, 1000, rows, dtype=np.int32),
        "store": rng.choice(["north", "south", "east", "west", "central"], rows),
    }).with_columns(pl.date(2024, 1, 1).alias("day"))


def main() -> None:
    args = parse_args(__doc__ or "")
    rows = 50_000 if args.quick else 1_000_000
    repeat = 2 if args.quick else 5
    frame = make_polars(rows)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        parquet, ipc = d / "f.parquet", d / "f.arrow"
        saved: dict[str, str] = {}

        def ours_save() -> None:
            saved["path"] = cache_utils.save_cache(frame, "p", "2024-01-01", tmp)

        def ours_load() -> Any:
            return cache_utils.read_cache("p", "2024-01-01", tmp)

        contestants = {
            "save_cache": ours_save,
            "parquet write (zstd, polars default)": lambda: frame.write_parquet(parquet),
            "ipc write (uncompressed)": lambda: frame.write_ipc(ipc),
            "ipc write (lz4)": lambda: frame.write_ipc(d / "f.lz4.arrow", compression="lz4"),
        }
        saves = {k: median(v) for k, v in interleaved(contestants, repeat).items()}
        back = ours_load()
        assert back.equals(frame), "polars frame did not round-trip"
        loads = {k: median(v) for k, v in interleaved({
            "load_cache": ours_load,
            "parquet read": lambda: pl.read_parquet(parquet),
            "ipc read (uncompressed, memory-mapped)": lambda: pl.read_ipc(ipc),
            "ipc read (lz4)": lambda: pl.read_ipc(d / "f.lz4.arrow"),
        }, repeat).items()}
        sizes = {"ours": os.path.getsize(saved["path"]), "parquet": parquet.stat().st_size,
                 "ipc": ipc.stat().st_size, "ipc lz4": (d / "f.lz4.arrow").stat().st_size}

    ours_s, ours_l = saves["save_cache"], loads["load_cache"]
    table: list[Row] = []
    for name, value in saves.items():
        if name != "save_cache":
            table.append(Row(f"save_cache of {rows:,} rows", secs(ours_s), name, secs(value),
                             ours_s / value, "(info)"))
    for name, value in loads.items():
        if name != "load_cache":
            table.append(Row(f"load_cache of {rows:,} rows", secs(ours_l), name, secs(value),
                             ours_l / value, "(info)"))
    for name in ("parquet", "ipc", "ipc lz4"):
        table.append(Row("file size, ours (gzip pickle)", f"{sizes['ours'] / 1e6:.1f} MB", name,
                         f"{sizes[name] / 1e6:.1f} MB", sizes["ours"] / sizes[name], "(info)"))
    report("bench_polars", f"Polars: a {rows:,}-row polars.DataFrame, ours against Polars' writers",
           table, [
               "ratio = ours / theirs: above 1x ours is slower (or larger).",
               "ours: atomic write (temp file, fsync, rename), CRC checked to the end on load; "
               "Polars' writers write in place without fsync.",
               "IPC uncompressed reads memory-map the file, so its load does little work until used.",
           ], args)


if __name__ == "__main__":
    main()
