"""Disk benchmarks: save_cache / load_cache on a frame of object strings and on one of Arrow
strings, against a bare pickle and the formats users would pick instead (parquet through pyarrow,
joblib, the seed's to_pickle gzip -9), 1 thread against all cores, peak memory, the start-up cost
of a first load_cache, and finding the latest file among 100,000.
Run from the repository root: `python -m benchmarks.bench_io [--quick]`."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from benchmarks.common import (
    ROOT,
    Row,
    RssPeak,
    best,
    cpu_and_wall,
    load_average,
    markdown_grid,
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
THREADS_ENV = "CACHE_UTILS_THREADS"


def make_frame(rows: int, strings: str = "python") -> Any:
    """Mixed dtypes: int64, int32, float64, float32, bool, three string columns (two of a few
    values, sharing their str objects as read_csv does; one unique per row), two timestamps.
    `strings`: "python" keeps each string a Python object (pandas without pyarrow); "pyarrow"
    stores them in Arrow arrays, as pandas 3 does whenever pyarrow is installed."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(42)
    dtype = pd.StringDtype(strings, na_value=np.nan)  # what dtype="str" gives, storage pinned
    symbols = np.array([f"SYM{i:04d}" for i in range(5000)], dtype=object)
    return pd.DataFrame(
        {
            "id": np.arange(rows, dtype=np.int64),
            "qty": rng.integers(0, 10_000, rows, dtype=np.int32),
            "price": rng.normal(100, 15, rows).round(2),
            "ratio": rng.random(rows, dtype=np.float32),
            "flag": rng.random(rows) < 0.3,
            "symbol": pd.array(symbols[rng.integers(0, len(symbols), rows)], dtype=dtype),
            "order_ref": pd.array([f"ORD-{i:09d}" for i in rng.permutation(rows)], dtype=dtype),
            "side": pd.array(np.array(["buy", "sell", "hold"], dtype=object)[rng.integers(0, 3, rows)],
                             dtype=dtype),
            "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 86_400 * 365, rows),
                                                               unit="s"),
            "day": pd.date_range("2000-01-01", periods=rows, freq="min"),
        }
    )


def interleaved(
    fns: dict[str, Callable[[], Any]], repeat: int, runs: dict[str, int] | None = None
) -> dict[str, list[float]]:
    """Time each function `repeat` times (or its own count in `runs`), alternating them so machine
    noise hits all alike."""
    out: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(repeat):
        for name, fn in fns.items():
            if i < (runs or {}).get(name, repeat):
                out[name] += timings(fn, 1)
    return out


@contextlib.contextmanager
def threads_env(value: str | None) -> Iterator[None]:
    """Run with CACHE_UTILS_THREADS set to `value` (None: unset, the default: all usable cores)."""
    saved = os.environ.pop(THREADS_ENV, None)
    if value is not None:
        os.environ[THREADS_ENV] = value
    try:
        yield
    finally:
        os.environ.pop(THREADS_ENV, None)
        if saved is not None:
            os.environ[THREADS_ENV] = saved


def single_member_size(obj: Any, path: str, level: int = 2) -> int:
    """Size of the file the previous format wrote: one ISA-L deflate stream of the whole pickle."""
    from isal import igzip

    with open(path, "wb") as raw, igzip.IGzipFile(fileobj=raw, mode="wb", compresslevel=level, mtime=0) as gz:
        pickle.dump(obj, gz, protocol=5)
    return os.path.getsize(path)


@dataclass
class Contestant:
    name: str
    save: Callable[[], Any]
    load: Callable[[], Any]
    path: str
    runs: int | None = None  # fewer runs for a slow peer
    save_s: float = 0.0
    load_s: float = 0.0
    size: int = 0


@dataclass
class FrameResult:
    label: str
    rows: int
    pickled: int
    threads: int
    contestants: dict[str, Contestant] = field(default_factory=dict)
    single_member: int = 0
    cpu: dict[str, tuple[float, float]] = field(default_factory=dict)
    seed: dict[str, float] = field(default_factory=dict)


def peers_of(df: Any, directory: str) -> list[Contestant]:
    """The formats users would pick instead; those whose package is missing are left out."""
    import pandas as pd

    out = []
    raw = os.path.join(directory, "raw.pkl")

    def dump_raw() -> None:
        with open(raw, "wb") as f:
            pickle.dump(df, f, protocol=pickle.HIGHEST_PROTOCOL)

    def load_raw() -> None:
        with open(raw, "rb") as f:
            pickle.load(f)

    out.append(Contestant("raw pickle (what Dagster's FS / UPath IO managers write)", dump_raw, load_raw,
                          raw))
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        pass
    else:
        for codec in ("snappy", "zstd"):
            path = os.path.join(directory, f"frame.{codec}.parquet")
            out.append(Contestant(
                f"parquet {codec} (pyarrow)",
                lambda path=path, codec=codec: df.to_parquet(path, engine="pyarrow", compression=codec),
                lambda path=path: pd.read_parquet(path, engine="pyarrow"),
                path,
            ))
    try:
        import joblib
    except ImportError:
        pass
    else:
        path = os.path.join(directory, "frame.joblib")
        out.append(Contestant("joblib compress=3", lambda: joblib.dump(df, path, compress=3),
                              lambda: joblib.load(path), path, runs=2))
    return out


def bench_frame(label: str, df: Any, small: Any, tmp: str, repeat: int) -> FrameResult:
    from cache_utils import GzipPickleSerializer, load_cache, save_cache

    directory = os.path.join(tmp, label.replace(" ", "_"))
    data_dir = os.path.join(directory, "data")
    os.makedirs(directory)
    threads = GzipPickleSerializer().threads
    result = FrameResult(label, len(df), len(pickle.dumps(df, protocol=5)), threads)
    saved: list[str] = []
    loaded: list[Any] = []

    def save() -> None:
        saved[:] = [save_cache(df, PREFIX, directory=data_dir)]

    def load() -> None:
        loaded[:] = [load_cache(PREFIX, "23:59:59", directory=data_dir)[0]]

    def one_thread(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with threads_env("1"):
                fn()
        return run

    # The bytes written do not depend on the thread count: both contestants write the same file.
    ours = [Contestant(f"save_cache / load_cache, all cores ({threads} threads)", save, load, ""),
            Contestant("save_cache / load_cache, 1 thread", one_thread(save), one_thread(load), "")]
    everyone = ours + peers_of(df, directory)
    runs = {c.name: c.runs for c in everyone if c.runs is not None}
    w = interleaved({c.name: c.save for c in everyone}, repeat, runs)
    r = interleaved({c.name: c.load for c in everyone}, repeat + 2, runs)
    for c in everyone:
        c.save_s, c.load_s = best(w[c.name]), best(r[c.name])
        c.size = os.path.getsize(c.path or saved[0])
        result.contestants[c.name] = c
    print(f"{label}: saves {w}\n{label}: loads {r}", flush=True)
    load()
    assert loaded[0].equals(df), "load_cache returned different data"
    loaded.clear()
    result.single_member = single_member_size(df, os.path.join(directory, "single.pkl.gz"))
    # Whether the worker threads ran beside the main one: CPU time above wall time.
    result.cpu = {"save_cache": cpu_and_wall(save), "load_cache": cpu_and_wall(load)}
    loaded.clear()

    # The seed's writer is slow (gzip level 9): one run, on a frame a tenth the size, against ours
    # on that same frame.
    small_dir = os.path.join(directory, "small")
    gz_path = os.path.join(directory, "seed.pkl.gz")
    import pandas as pd

    (result.seed["seed_save"],) = timings(lambda: small.to_pickle(gz_path), 1)
    (result.seed["seed_load"],) = timings(lambda: pd.read_pickle(gz_path), 1)
    result.seed["seed_size"] = os.path.getsize(gz_path)
    small_saved: list[str] = []
    result.seed["ours_save"] = best(timings(
        lambda: small_saved.__setitem__(slice(None), [save_cache(small, PREFIX, directory=small_dir)]), 3))
    result.seed["ours_load"] = best(timings(lambda: load_cache(PREFIX, "23:59:59", directory=small_dir), 3))
    result.seed["ours_size"] = os.path.getsize(small_saved[0])
    result.seed["rows"] = len(small)
    print(f"{label}: seed's to_pickle gzip -9 on {len(small):,} rows: {result.seed['seed_save']:.1f} s",
          flush=True)
    shutil.rmtree(directory, ignore_errors=True)
    return result


def peers_table(res: FrameResult) -> str:
    ours = next(iter(res.contestants.values()))
    lines = []
    for c in res.contestants.values():
        lines.append([c.name, f"{c.save_s:.3f}", f"{c.load_s:.3f}", f"{c.size / 1e6:.1f}",
                      f"{c.save_s / ours.save_s:.2f}x", f"{c.load_s / ours.load_s:.2f}x",
                      f"{c.size / ours.size:.2f}x"])
    s = res.seed
    lines.append([f"the seed's `to_pickle('.pkl.gz')`, gzip -9: {s['rows']:,} rows, one run "
                  f"(ours on them: {s['ours_save']:.3f} s / {s['ours_load']:.3f} s / "
                  f"{s['ours_size'] / 1e6:.1f} MB)",
                  f"{s['seed_save']:.3f}", f"{s['seed_load']:.3f}", f"{s['seed_size'] / 1e6:.1f}",
                  f"{s['seed_save'] / s['ours_save']:.2f}x", f"{s['seed_load'] / s['ours_load']:.2f}x",
                  f"{s['seed_size'] / s['ours_size']:.2f}x"])
    header = ["contestant", "save s", "load s", "MB", "save, x ours", "load, x ours", "MB, x ours"]
    return markdown_grid(header, lines)


def frame_rows(res: FrameResult, arrow: bool) -> list[Row]:
    c = list(res.contestants.values())
    ours, one = c[0], c[1]
    by_name = {k.split(" (")[0]: v for k, v in res.contestants.items()}
    raw = by_name["raw pickle"]
    tag = f"[{res.label}]"
    rows = []
    if arrow:
        rows.append(Row(f"{tag} save_cache, all cores ({res.threads} threads)", secs(ours.save_s),
                        "same, 1 thread", secs(one.save_s), one.save_s / ours.save_s, ">= 1.4x faster",
                        one.save_s / ours.save_s >= 1.4))
        rows.append(Row(f"{tag} load_cache, all cores", secs(ours.load_s), "same, 1 thread",
                        secs(one.load_s), one.load_s / ours.load_s, ">= 1.4x faster",
                        one.load_s / ours.load_s >= 1.4))
        snappy, zstd = by_name.get("parquet snappy"), by_name.get("parquet zstd")
        if snappy is not None and zstd is not None:
            rows.append(Row(f"{tag} save_cache (with fsync)", secs(ours.save_s), "parquet snappy save",
                            secs(snappy.save_s), ours.save_s / snappy.save_s, "< 1x",
                            ours.save_s < snappy.save_s))
            rows.append(Row(f"{tag} load_cache", secs(ours.load_s), "parquet zstd load", secs(zstd.load_s),
                            ours.load_s / zstd.load_s, "<= 1.3x", ours.load_s / zstd.load_s <= 1.3))
        rows.append(Row(f"{tag} save_cache", secs(ours.save_s), "pickle.dump, uncompressed",
                        secs(raw.save_s), ours.save_s / raw.save_s, "(info)"))
        rows.append(Row(f"{tag} load_cache", secs(ours.load_s), "pickle.load, uncompressed",
                        secs(raw.load_s), ours.load_s / raw.load_s, "(info)"))
    else:
        rows.append(Row(f"{tag} save_cache (atomic: temp file, fsync, rename)", secs(ours.save_s),
                        "pickle.dump, uncompressed", secs(raw.save_s), ours.save_s / raw.save_s,
                        "<= 1.4x", ours.save_s / raw.save_s <= 1.4))
        rows.append(Row(f"{tag} load_cache (CRC checked to the end)", secs(ours.load_s),
                        "pickle.load, uncompressed", secs(raw.load_s), ours.load_s / raw.load_s,
                        "<= 1.5x", ours.load_s / raw.load_s <= 1.5))
        rows.append(Row(f"{tag} save_cache, all cores ({res.threads} threads)", secs(ours.save_s),
                        "same, 1 thread", secs(one.save_s), one.save_s / ours.save_s, "(info: x faster)"))
        rows.append(Row(f"{tag} load_cache, all cores", secs(ours.load_s), "same, 1 thread",
                        secs(one.load_s), one.load_s / ours.load_s, "(info: x faster)"))
    rows.append(Row(f"{tag} file size", mb(ours.size), "one ISA-L stream (the previous single-member file)",
                    mb(res.single_member), ours.size / res.single_member, "<= 1.1x",
                    ours.size / res.single_member <= 1.1))
    s = res.seed
    rows.append(Row(f"{tag} save_cache, {s['rows']:,} rows", secs(s["ours_save"]),
                    "DataFrame.to_pickle('.pkl.gz'), gzip -9, one run", secs(s["seed_save"]),
                    s["seed_save"] / s["ours_save"], ">= 10x faster", s["seed_save"] / s["ours_save"] >= 10))
    rows.append(Row(f"{tag} file size, {s['rows']:,} rows", mb(s["ours_size"]),
                    "gzip -9 (the to_pickle file)", mb(s["seed_size"]), s["ours_size"] / s["seed_size"],
                    "<= 1.2x", s["ours_size"] / s["seed_size"] <= 1.2))
    for label, (cpu, wall) in res.cpu.items():
        rows.append(Row(f"{tag} {label}: CPU time of all its threads", secs(cpu), "its wall time",
                        secs(wall), cpu / wall, "(info: > 1x = in parallel)"))
    return rows


_IMPORTTIME = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def startup_rows(tmp: str, quick: bool) -> tuple[list[Row], list[str]]:
    """Wall time from process start to the end of a first load_cache of a small file, against a
    bare interpreter, and what `-X importtime` says `import cache_utils` costs."""
    from cache_utils import save_cache

    directory = os.path.join(tmp, "startup")
    save_cache({"x": 1}, "small", directory=directory)
    code = f"from cache_utils import load_cache; load_cache('small', '23:59:59', directory={directory!r})"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSGENIE_", "CACHE_UTILS_", "JSM_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    # As installed code runs: from cached bytecode (kept out of the tree, in a temp directory).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, *args], capture_output=True, text=True, check=True,
                              env=env, cwd=tmp)

    run("-c", code)  # compiles and caches the bytecode
    runs = 3 if quick else 7
    bare = interleaved({"bare": lambda: run("-c", "pass"), "ours": lambda: run("-c", code)}, runs)
    t_bare, t_ours = best(bare["bare"]), best(bare["ours"])
    heavy = run("-c", code + "\nimport sys\nprint(' '.join(sorted(m for m in "
                "('pandas', 'numpy', 'dagster', 'fsspec', 'opsgenie_sdk') if m in sys.modules)))")
    imported = heavy.stdout.strip()
    stats = [m.groups() for line in run("-X", "importtime", "-c", code).stderr.splitlines()
             if (m := _IMPORTTIME.match(line))]
    # One space separates the column from a top-level name; each nesting level adds two.
    cumulative = {name: int(cum) for _, cum, indent, name in stats if len(indent) == 1}
    ours_us = cumulative.get("cache_utils", 0)
    inside = sorted(((int(own), name) for own, _, indent, name in stats if len(indent) > 1), reverse=True)[:5]
    rows = [
        Row("process start to end of first load_cache (small file, wall)", secs(t_ours),
            "bare `python -c pass`", secs(t_bare), t_ours / t_bare, "(info)"),
        Row("of which import cache_utils (cumulative, -X importtime)", secs(ours_us / 1e6),
            "", "", None, "(info)"),
        Row("pandas, numpy, dagster, fsspec, opsgenie_sdk imported by that process",
            imported or "none", "", "", None, "none", not imported),
    ]
    notes = [f"Start-up: best of {runs} fresh processes each, bytecode cached; the heaviest imports under "
             "`import cache_utils` by their own time (-X importtime, one run): "
             + ", ".join(f"{name} {own / 1000:.1f} ms" for own, name in inside) + "."]
    return rows, notes


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


def memory_rows(df: Any, tmp: str) -> tuple[list[Row], list[str]]:
    from cache_utils import save_cache

    data_dir = os.path.join(tmp, "memory")
    raw_path = os.path.join(tmp, "memory.pkl")
    raw_size = len(pickle.dumps(df, protocol=pickle.HIGHEST_PROTOCOL))

    def save() -> None:
        save_cache(df, PREFIX, directory=data_dir)

    def dump_raw() -> None:
        with open(raw_path, "wb") as f:
            pickle.dump(df, f, protocol=pickle.HIGHEST_PROTOCOL)

    rows = []
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
    notes = [f"Peak extra memory (object-string frame, all cores): {method}, each minus its value "
             "before the call. `pickle.dumps` builds the whole pickle in memory, so its row shows what "
             "the methods report when a writer does not stream. A plain `pickle.dump` to a file already "
             "peaks near the pickled size with this frame: the pickler's memo holds an entry for each of "
             "the frame's distinct strings, and pandas makes a temporary copy of some columns while "
             "pickling them. That part belongs to pickle, not to the writer, so the target row counts "
             "what save_cache adds on top: the 2 MiB members in flight, one per thread being "
             "deflated (its data and ISA-L's output) and one being filled. RSS can under-report when "
             "the allocator reuses memory freed earlier."]
    shutil.rmtree(data_dir, ignore_errors=True)
    return rows, notes


def listing_rows(tmp: str, n_files: int) -> tuple[list[Row], list[str]]:
    from cache_utils import get_latest_cache_filename, load_cache, save_cache

    rows = []
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
        shutil.rmtree(d, ignore_errors=True)

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
    return rows, ["Listings are counted by wrapping os.scandir and os.listdir during the call."]


def main() -> None:
    args = parse_args(__doc__ or "")
    for name in ("OPSGENIE_API_KEY", "CACHE_UTILS_SIGNING_KEY", THREADS_ENV):
        os.environ.pop(name, None)  # no alert traffic, no signing, the default thread count
    started = load_average()
    print(f"{started} at the start", flush=True)

    rows_n = 100_000 if args.quick else 2_000_000
    n_files = 5_000 if args.quick else 100_000
    repeat = 2 if args.quick else 5
    rows: list[Row] = []
    notes: list[str] = []
    tables: list[tuple[str, str]] = []
    results: list[FrameResult] = []
    tmp = tempfile.mkdtemp(prefix="cache_utils_bench_io_")
    try:
        try:
            import pyarrow  # noqa: F401

            storages = [("object strings", "python"), ("Arrow strings", "pyarrow")]
        except ImportError:
            storages = [("object strings", "python")]
            notes.append("pyarrow is not installed: the Arrow-string frame and parquet were not measured "
                         "(`pip install -e '.[dev]'` installs it).")
        for label, storage in storages:
            t0 = time.perf_counter()
            df = make_frame(rows_n, storage)
            small = make_frame(rows_n // 10, storage)
            print(f"frame ({label}): {rows_n:,} rows x {df.shape[1]} columns, built in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)
            res = bench_frame(label, df, small, tmp, repeat)
            results.append(res)
            rows += frame_rows(res, arrow=storage == "pyarrow")
            tables.append((f"#### Peers, {label} frame ({rows_n:,} rows, {res.pickled / 1e6:.1f} MB "
                           "pickled)", peers_table(res)))
            if storage == "python":
                memory, memory_notes = memory_rows(df, tmp)
                rows += memory
                notes += memory_notes
            del df, small

        startup, startup_notes = startup_rows(tmp, args.quick)
        rows += startup
        notes += startup_notes
        listing, listing_notes = listing_rows(tmp, n_files)
        rows += listing
        notes += listing_notes
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    notes += [
        f"Frames of {rows_n:,} rows and 10 columns, strings stored as Python objects or in Arrow arrays "
        "(pandas 3 with pyarrow installed); save/load times are the best of "
        f"{repeat} runs (loads: {repeat + 2}; joblib: 2), alternating contestants; directory scans are "
        "the median of 7. save_cache includes its fsync and rename (atomic); the other writers do neither. "
        "\"1 thread\" is the same code with CACHE_UTILS_THREADS=1: the calling thread pickles and "
        "deflates (or inflates and unpickles) by turns, no other thread; \"all cores\" runs one "
        "deflating (inflating) thread per core beside it. The files are byte-identical.",
        "The seed's to_pickle gzip -9 writer takes tens of seconds at full size: it is timed once, on a "
        f"frame a tenth the size ({rows_n // 10:,} rows), against save_cache/load_cache on that frame.",
        f"Local disk, page cache warm. Shared 2-core machine: expect +-20% between runs. {started} at the "
        "start.",
    ]
    report("bench_io", "bench_io: save_cache / load_cache, peers, start-up, listing", rows, notes, args,
           tables)


def _last_stamp(prefix_files: int) -> str:
    return f"{dt.date(1800, 1, 1) + dt.timedelta(days=prefix_files - 1):%Y%m%d}"


if __name__ == "__main__":
    main()
