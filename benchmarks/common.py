"""Helpers shared by the benchmark scripts: timing, memory sampling, and the result table."""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(description: str) -> argparse.Namespace:
    """`--quick` (small sizes, for smoke runs) and `--out` (where to write the markdown table)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="scaled-down sizes for a smoke run")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="write the table as markdown here (default: benchmarks/results/<name>.md, "
        "but nothing with --quick)",
    )
    return parser.parse_args()


def timings(fn: Callable[[], Any], repeat: int, setup: Callable[[], Any] | None = None) -> list[float]:
    """Wall times of `repeat` calls of `fn` (each after `setup`, which is not timed)."""
    times = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def cpu_and_wall(fn: Callable[[], Any]) -> tuple[float, float]:
    """(CPU seconds of this process, all threads; wall seconds) of one call."""
    import resource

    gc.collect()
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn()
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def best(times: list[float]) -> float:
    return min(times)


def median(times: list[float]) -> float:
    return statistics.median(times)


def _rss_bytes() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class RssPeak:
    """Samples this process's resident set size in a thread; `extra` is peak minus the start.

    Linux only (/proc/self/statm). Sees every allocation, whichever allocator made it.
    """

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.start = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> RssPeak:
        gc.collect()
        self.start = self.peak = _rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = max(self.peak, _rss_bytes())
        self._stop.set()
        self._thread.join()

    @property
    def extra(self) -> int:
        return self.peak - self.start


def rss_available() -> bool:
    return os.path.exists("/proc/self/statm")


def tracemalloc_peak(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated through Python's allocators (numpy reports its buffers too) during fn."""
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def secs(t: float) -> str:
    return f"{t:.3f} s" if t >= 0.1 else f"{t * 1e3:.2f} ms" if t >= 1e-3 else f"{t * 1e6:.1f} us"


@dataclass
class Row:
    """One line of the result table: `what` measured against `baseline`, with a target."""

    what: str
    value: str
    baseline: str = ""
    baseline_value: str = ""
    ratio: float | None = None
    target: str = ""
    ok: bool | None = None

    def cells(self) -> list[str]:
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}x"
        status = "" if self.ok is None else "PASS" if self.ok else "MISS"
        return [self.what, self.value, self.baseline, self.baseline_value, ratio, self.target, status]


HEADER = ["measurement", "value", "baseline", "baseline value", "ratio", "target", "result"]


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def markdown_grid(header: list[str], rows: list[list[str]]) -> str:
    """A plain markdown table (for tables that are not measurement/baseline/target rows)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} (1/5/15 min)"


def machine() -> str:
    import isal

    try:
        import pandas

        pandas_version = pandas.__version__
    except ImportError:
        pandas_version = "absent"
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"pandas {pandas_version}, isal {isal.__version__}{_optional_versions()}, "
        f"{dt.date.today().isoformat()}"
    )


def _optional_versions() -> str:
    """pyarrow and joblib versions when a benchmark imported them (they change what is measured)."""
    names = [name for name in ("pyarrow", "joblib") if name in sys.modules]
    return "".join(f", {name} {sys.modules[name].__version__}" for name in names)


def report(
    name: str,
    title: str,
    rows: list[Row],
    notes: list[str],
    args: argparse.Namespace,
    tables: list[tuple[str, str]] | None = None,
) -> str:
    """Print the table, any further (heading, markdown table) pairs, and the notes; write them as
    markdown unless this is a --quick run."""
    scale = " (--quick: scaled-down sizes, not the real measurement)" if args.quick else ""
    load = f"{load_average()} at the end"
    extra: list[str] = []
    for heading, table in tables or []:
        extra += [heading, "", table, ""]
    text = "\n".join(
        [f"### {title}{scale}", "", f"Measured on: {machine()}; {load}.", "", markdown_table(rows), ""]
        + extra
        + [f"- {n}" for n in notes]
    )
    print(text, flush=True)
    out = args.out or (None if args.quick else RESULTS / f"{name}.md")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
        print(f"\n(written to {out})")
    misses = sum(1 for r in rows if r.ok is False)
    print(f"\n{sum(1 for r in rows if r.ok)} PASS, {misses} MISS")
    return text
