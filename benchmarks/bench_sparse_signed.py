"""Time to refuse a signed file over a sparse hole (docs/reliability.md, "Sparse signed files").

    python -m benchmarks.bench_sparse_signed [--hole-gib 8]

The first 2 MiB of a real signed file, then a hole up to the apparent size (sparse: no disk used).
`load_cache` with the key must skip it as corrupt and load the day before; printed: the time that
took, the bytes the process read (/proc/self/io rchar) and what was left in a fresh TMPDIR.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

KEY = "bench-key"


def _rchar() -> int:
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hole-gib", type=float, default=8.0, help="apparent size of the file (GiB)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        spool = Path(work) / "tmpdir"
        spool.mkdir()
        os.environ["TMPDIR"] = str(spool)
        tempfile.tempdir = str(spool)
        from freezegun import freeze_time

        from cache_utils import NullAlerter, load_cache, save_cache

        data = Path(work) / "data"
        save_cache(os.urandom(6 << 20), "s", "2024-01-15", str(data), signing_key=KEY)
        path = data / "s_20240115.pkl.gz"
        head = path.read_bytes()[: 2 << 20]
        with path.open("wb") as f:
            f.write(head)
            f.truncate(int(args.hole_gib * (1 << 30)))
        save_cache({"good": 1}, "s", "2024-01-14", str(data), signing_key=KEY)

        before, start = _rchar(), time.perf_counter()
        with freeze_time("2024-01-15 12:00:00"):
            value, _ = load_cache("s", "08:00", str(data), tz="UTC", signing_key=KEY, alerter=NullAlerter())
        took, read = time.perf_counter() - start, _rchar() - before
        assert value == {"good": 1}
        left = list(spool.iterdir())
        print(f"apparent size {args.hole_gib:g} GiB: refused and fell back in {took * 1000:.1f} ms, "
              f"read {read / (1 << 20):.2f} MiB, {len(left)} file(s) left in TMPDIR")


if __name__ == "__main__":
    main()
