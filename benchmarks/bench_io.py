"""Disk benchmarks: save_cache / load_cache against pickle and gzip -9, peak memory,
and finding the latest file among 100,000.
Run from the repository root: `python -m benchmarks.bench_io [--quick]`."""

from __future__ import annotations

import datetime as dt
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from benchmarks.common import (
    Row,
    RssPeak,
    best,
    cpu_and_wall,
    mb,
    median,
    parse_args,
    report,
    rss_available,
    secs,
    timings,
    tracemalloc_peak,
)

PREFIX = "bench"


def make_frame(rows: int) -> Any:
    """Mixed dtypes: int64, int32, float64, float32, bool, three string columns (two of a few
    values, sharing their str objects as read_csv does; one unique per row), two timestamps."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(42)
    symbols = np.array([f"SYM{i:04d}" for i in range(5000)], dtype=object)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "qty": rng.integers(0, 10_000, rows, dtype=np.int32),
            "price": rng.normal(100, 15, rows).round(2),
            "ratio": rng.random(rows, dtype=np.float32),
            "flag": rng.random(rows) < 0.3,
            "symbol": pd.array(symbols[rng.integers(0, len(symbols), rows)], dtype="str"),
            "order_ref": pd.array([f"ORD-{i:09d}" for i in rng.permutation(rows)], dtype="str"),
            "side": pd.array(np.array(["buy", "sell", "hold"], dtype=object)[rng.integers(0, 3, rows)],
                             dtype="str"),
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 86_400 * 365, rows),
                                                               unit="s"),
            "day": pd.date_range("2000-01-01", periods=rows, freq="min"),
        }
    )


def interleaved(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    """Time each function `repeat` times, alternating them so machine noise hits all alike."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            out[name] += timings(fn, 1)
    return out


def fill_directory(directory: str, prefix_files: int, other_files: int) -> None:
    """`prefix_files` valid `<PREFIX>_<date>.pkl.gz` names plus look-alikes of other prefixes."""
    os.makedirs(directory)
    start = dt.date(1800, 1, 1)
    names = [f"{PREFIX}_{start + dt.timedelta(days=i):%Y%m%d}.pkl.gz" for i in range(prefix_files)]
    others = ("sales", "bench_eu", "prices", "benchx", "bench")
    for i in range(other_files):
        other = others[i % len(others)]
        day = start + dt.timedelta(days=i // len(others))
        # "bench" entries among the others are near misses: a bad date or a non-.pkl.gz suffix
        names.append(f"{other}_{day:%Y%m%d}.pkl.gz" if other != "bench" else f"bench_{day:%Y%m%d}.csv")
    for name in names:
        os.close(os.open(os.path.join(directory, name), os.O_CREAT | os.O_WRONLY, 0o600))


class CountListings:
    """Counts os.scandir / os.listdir calls while active (to prove a path does no listing)."""

    def __init__(self) -> None:
        self.count = 0

    def __enter__(self) -> CountListings:
        self._saved = os.scandir, os.listdir

        def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
            def counted(*args: Any, **kwargs: Any) -> Any:
                self.count += 1
                return fn(*args, **kwargs)

            return counted

        os.scandir, os.listdir = wrap(os.scandir), wrap(os.listdir)
        return self

    def __exit__(self, *exc: object) -> None:
        os.scandir, os.listdir = self._saved


def main() -> None:
    args = parse_args(__doc__ or "")
    os.environ.pop("OPSGENIE_API_KEY", None)  # no alert traffic during the benchmark
    os.environ.pop("CACHE_UTILS_SIGNING_KEY", None)
    from cache_utils import get_latest_cache_filename, load_cache, save_cache

    rows_n = 100_000 if args.quick else 2_000_000
    n_files = 5_000 if args.quick else 100_000
    repeat = 2 if args.quick else 3
    rows: list[Row] = []
    notes: list[str] = []
    tmp = tempfile.mkdtemp(prefix="cache_utils_bench_io_")
    try:
        t0 = time.perf_counter()
        df = make_frame(rows_n)
        print(f"frame: {rows_n:,} rows x {df.shape[1]} columns ({', '.join(map(str, df.dtypes.unique()))}),"
              f" built in {time.perf_counter() - t0:.1f} s", flush=True)
        data_dir = os.path.join(tmp, "data")
        raw_path = os.path.join(tmp, "raw.pkl")

        def dump_raw() -> None:
            with open(raw_path, "wb") as f:
                pickle.dump(df, f, protocol=pickle.HIGHEST_PROTOCOL)

        def dump_raw_fsync() -> None:
            with open(raw_path, "wb") as f:
                pickle.dump(df, f, protocol=pickle.HIGHEST_PROTOCOL)
                f.flush()
                os.fsync(f.fileno())

        saved: list[str] = []

        def save() -> None:
            saved[:] = [save_cache(df, PREFIX, directory=data_dir)]

        # --- write ----------------------------------------------------------------------------
        w = interleaved({"raw": dump_raw, "raw_fsync": dump_raw_fsync, "save": save}, repeat)
        raw_size = os.path.getsize(raw_path)
        ours_size = os.path.getsize(saved[0])
        t_raw, t_save = best(w["raw"]), best(w["save"])
        rows.append(Row("save_cache (atomic: temp file, fsync, rename)", secs(t_save),
                        "pickle.dump, uncompressed", secs(t_raw), t_save / t_raw, "<= 1.5x",
                        t_save / t_raw <= 1.5))
        rows.append(Row("save_cache", secs(t_save), "pickle.dump + fsync", secs(best(w["raw_fsync"])),
                        t_save / best(w["raw_fsync"]), "(info)"))
        print(f"write: raw {w['raw']}, save {w['save']}", flush=True)

        gz_path = os.path.join(tmp, "x.pkl.gz")
        (t_gz,) = timings(lambda: df.to_pickle(gz_path), 1)
        gz_size = os.path.getsize(gz_path)
        rows.append(Row("save_cache", secs(t_save), "DataFrame.to_pickle('.pkl.gz'), gzip -9",
                        secs(t_gz), t_gz / t_save, ">= 10x faster", t_gz / t_save >= 10))
        rows.append(Row("file size", mb(ours_size), "gzip -9 (the to_pickle file)", mb(gz_size),
                        ours_size / gz_size, "<= 1.2x", ours_size / gz_size <= 1.2))
        rows.append(Row("file size", mb(ours_size), "uncompressed pickle", mb(raw_size),
                        ours_size / raw_size, "(info)"))
        print(f"to_pickle gz: {t_gz:.1f} s", flush=True)

        # --- read -----------------------------------------------------------------------------
        def load_raw() -> None:
            with open(raw_path, "rb") as f:
                pickle.load(f)

        loaded: list[Any] = []

        def load_today() -> None:
            loaded[:] = [load_cache(PREFIX, "23:59:59", directory=data_dir)[0]]

        r = interleaved({"raw": load_raw, "ours": load_today}, repeat + 2)
        t_lraw, t_load = best(r["raw"]), best(r["ours"])
        assert loaded[0].equals(df), "load_cache returned different data"
        loaded.clear()
        rows.append(Row("load_cache (today's file; CRC checked to the end)", secs(t_load),
                        "pickle.load, uncompressed", secs(t_lraw), t_load / t_lraw, "<= 1.5x",
                        t_load / t_lraw <= 1.5))
        print(f"read: raw {r['raw']}, ours {r['ours']}", flush=True)

        # Whether the helper threads ran beside the main one: CPU time above wall time.
        for label, fn in (("save_cache", save), ("load_cache", load_today)):
            cpu, wall = cpu_and_wall(fn)
            rows.append(Row(f"{label}: CPU time of all its threads", secs(cpu), "its wall time",
                            secs(wall), cpu / wall, "(info: > 1x = overlapped)"))
        loaded.clear()

        # --- memory ---------------------------------------------------------------------------
        traced = tracemalloc_peak(save)
        floor = tracemalloc_peak(dump_raw)
        rows.append(Row("save_cache's own extra memory, above pickle.dump's (tracemalloc)",
                        mb(traced - floor), "pickled size", mb(raw_size), (traced - floor) / raw_size,
                        "<= 0.1x", (traced - floor) / raw_size <= 0.1))
        rows.append(Row("peak extra memory in save_cache (tracemalloc)", mb(traced),
                        "pickle.dump to a file", mb(floor), traced / floor, "(info)"))
        method = "tracemalloc (Python allocators; numpy reports its buffers to it too)"
        if rss_available():
            with RssPeak() as rss_raw:
                dump_raw()
            with RssPeak() as rss:
                save()
            rows.append(Row("peak extra memory in save_cache (RSS)", mb(rss.extra),
                            "pickle.dump to a file", mb(rss_raw.extra), None, "(info)"))
            with RssPeak() as rss_dumps:
                blob = pickle.dumps(df, protocol=pickle.HIGHEST_PROTOCOL)
            del blob
            rows.append(Row("peak extra memory in pickle.dumps (method check)", mb(rss_dumps.extra),
                            "pickled size", mb(raw_size), rss_dumps.extra / raw_size, "(info: >= 1x)"))
            method += ", and resident set size sampled every 1 ms from /proc/self/statm by a thread"
        notes.append(f"Peak extra memory: {method}, each minus its value before the call. "
                     "`pickle.dumps` builds the whole pickle in memory, so its row shows what the "
                     "methods report when a writer does not stream. A plain `pickle.dump` to a file "
                     "already peaks near the pickled size with this frame: the pickler's memo holds an "
                     "entry for each of the frame's distinct strings, and pandas makes a temporary copy of "
                     "some columns while pickling them. That part belongs to pickle, not to the writer, "
                     "so the target row counts what save_cache adds on top: a few MiB of batches in "
                     "flight to its compressing thread. RSS can under-report when the allocator reuses "
                     "memory freed earlier in the run.")

        # --- listing --------------------------------------------------------------------------
        shutil.rmtree(data_dir)
        for label, ours_n, other_n in (
            (f"{n_files // 100:,} of the prefix among {n_files:,}", n_files // 100, n_files - n_files // 100),
            (f"all {n_files:,} of the prefix", n_files, 0),
        ):
            d = os.path.join(tmp, f"dir_{ours_n}")
            t0 = time.perf_counter()
            fill_directory(d, ours_n, other_n)
            print(f"filled {d} in {time.perf_counter() - t0:.1f} s", flush=True)

            def bare(d: str = d) -> None:
                with os.scandir(d) as it:
                    [e.name for e in it]

            found: list[str | None] = []

            def latest(d: str = d, found: list[str | None] = found) -> None:
                found[:] = [get_latest_cache_filename(PREFIX, d)]

            s = interleaved({"bare": bare, "latest": latest}, 7)
            t_bare, t_latest = median(s["bare"]), median(s["latest"])
            assert found[0] is not None and found[0].endswith(f"{PREFIX}_{_last_stamp(ours_n)}.pkl.gz"), found
            rows.append(Row(f"get_latest_cache_filename, {label}", secs(t_latest),
                            "bare os.scandir listing", secs(t_bare), t_latest / t_bare, "<= 3x",
                            t_latest / t_bare <= 3))

        # --- load_cache does no listing for today's file ---------------------------------------
        small_dir = os.path.join(tmp, "small")
        save_cache({"x": 1}, PREFIX, directory=small_dir)
        with CountListings() as today_count:
            load_cache(PREFIX, "23:59:59", directory=small_dir)
        rows.append(Row("directory listings in load_cache, today's file present", str(today_count.count),
                        "", "", None, "0", today_count.count == 0))
        os.replace(os.path.join(small_dir, os.listdir(small_dir)[0]),
                   os.path.join(small_dir, f"{PREFIX}_20000101.pkl.gz"))
        with CountListings() as fallback_count:
            load_cache(PREFIX, "23:59:59", directory=small_dir, allow_no_data=True)
        rows.append(Row("directory listings in load_cache, today's missing (counter check)",
                        str(fallback_count.count), "", "", None, "(info: 1)"))
        notes.append("Listings are counted by wrapping os.scandir and os.listdir during the call.")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    notes += [
        f"{rows_n:,}-row DataFrame; times are the best of {repeat} runs (loads: {repeat + 2}), "
        "alternating contestants; directory scans are the median of 7. The to_pickle gzip -9 "
        "write is measured once.",
        "Local disk, page cache warm. Shared, noisy 2-core machine: expect +-20% between runs.",
    ]
    report("bench_io", "bench_io: save_cache / load_cache / listing", rows, notes, args)


def _last_stamp(prefix_files: int) -> str:
    return f"{dt.date(1800, 1, 1) + dt.timedelta(days=prefix_files - 1):%Y%m%d}"


if __name__ == "__main__":
    main()
