"""S3 benchmarks, against moto's server in its own process on 127.0.0.1:
save/load of the 2,000,000-row frame to S3 versus a local directory, and get_latest_cache_filename
with 10,000 objects under the prefix, with and without 100,000 objects of other prefixes beside them.
Run from the repository root: `python -m benchmarks.bench_s3 [--quick]`."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import cache_utils
from benchmarks.bench_io import interleaved, make_frame
from benchmarks.common import Row, RssPeak, mb, median, parse_args, report, rss_available, secs, timings
from cache_utils.stores import get_store
from cache_utils.stores.fsspec import UPLOAD_CHUNKSIZE, UPLOAD_CONCURRENCY

PREFIX = "bench"
FAKE_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull}


def serve() -> None:
    """Child mode: moto's server, plus a stdin command to create many empty objects in-process
    (110,000 put_object calls over HTTP take about 15 minutes on 2 cores; this takes seconds)."""
    import json

    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for key in cmd["keys"]:
            backend.put_object(cmd["bucket"], key, b"")
        print("done", flush=True)


class MotoProcess:
    """moto's server in a child process, so it does not share this process's GIL."""

    def __init__(self) -> None:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where `benchmarks` imports
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_s3", "--serve"], cwd=root,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.endpoint = f"http://127.0.0.1:{int(self.proc.stdout.readline())}"

    def fill(self, bucket: str, keys: list[str]) -> float:
        """Create empty objects inside the server process; returns the seconds taken."""
        import json

        assert self.proc.stdin is not None and self.proc.stdout is not None
        start = time.perf_counter()
        self.proc.stdin.write(json.dumps({"bucket": bucket, "keys": keys}) + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "done"
        return time.perf_counter() - start

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def stamps(n: int) -> list[str]:
    import datetime as dt

    first = dt.date(1990, 1, 1)
    return [(first + dt.timedelta(days=i)).strftime("%Y%m%d") for i in range(n)]


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    import boto3
    from botocore.config import Config

    rows_n = 200_000 if args.quick else 2_000_000
    mine_n, others_n = (1_000, 10_000) if args.quick else (10_000, 100_000)
    repeat = 3
    os.environ.update(FAKE_ENV)
    moto = MotoProcess()
    endpoint = moto.endpoint
    try:
        opts = {"endpoint_url": endpoint}
        client = boto3.client("s3", endpoint_url=endpoint,
                              config=Config(max_pool_connections=32, retries={"max_attempts": 5}))
        rows: list[Row] = []
        notes: list[str] = []

        # ---- save / load of the frame
        frame = make_frame(rows_n)
        client.create_bucket(Bucket="frames")
        url = "s3://frames/caches"
        print(f"frame of {rows_n:,} rows built; timing save/load ...", flush=True)
        with tempfile.TemporaryDirectory() as local:
            saves = interleaved({
                "local": lambda: cache_utils.save_cache(frame, PREFIX, "2024-01-02", local),
                "s3": lambda: cache_utils.save_cache(frame, PREFIX, "2024-01-02", url, storage_options=opts),
            }, repeat)
            size = os.path.getsize(os.path.join(local, f"{PREFIX}_20240102.pkl.gz"))
            loads = interleaved({
                "local": lambda: cache_utils.read_cache(PREFIX, "2024-01-02", local),
                "s3": lambda: cache_utils.read_cache(PREFIX, "2024-01-02", url, storage_options=opts),
            }, repeat)
            rss: dict[str, int] = {}
            if rss_available():
                for where, directory, so in (("local", local, None), ("s3", url, opts)):
                    with RssPeak() as peak:
                        cache_utils.save_cache(frame, PREFIX, "2024-01-03", directory, storage_options=so)
                    rss[where] = peak.extra
        rows.append(Row(f"save_cache {rows_n:,}-row frame to moto S3 (median of {repeat})",
                        secs(median(saves["s3"])), "same to local dir", secs(median(saves["local"])),
                        median(saves["s3"]) / median(saves["local"])))
        rows.append(Row(f"read_cache {rows_n:,}-row frame from moto S3 (median of {repeat})",
                        secs(median(loads["s3"])), "same from local dir", secs(median(loads["local"])),
                        median(loads["s3"]) / median(loads["local"])))
        if rss:
            bound = 2 * UPLOAD_CHUNKSIZE * UPLOAD_CONCURRENCY + 8 * 2**20
            rows.append(Row("save_cache to S3: peak extra RSS", mb(rss["s3"]), "same to local dir",
                            mb(rss["local"]), rss["s3"] / max(rss["local"], 1),
                            f"<= local + {mb(bound)} (parts in flight)",
                            rss["s3"] - rss["local"] <= bound))
        frame = None  # free it before the listing part

        # ---- latest file among many objects
        client.create_bucket(Bucket="alone")
        client.create_bucket(Bucket="crowded")
        mine = [f"caches/{PREFIX}_{s}.pkl.gz" for s in stamps(mine_n)]
        others = [f"caches/other{j:02d}_{s}.pkl.gz" for j in range(100) for s in stamps(others_n // 100)]
        assert len(set(others)) == others_n
        print("creating objects ...", flush=True)
        t_fill = moto.fill("alone", mine) + moto.fill("crowded", mine + others)
        notes.append(f"setup: {2 * mine_n + others_n:,} empty objects created inside the moto process "
                     f"in {t_fill:.0f} s (over HTTP, boto3 put_object from 16 threads managed about 130 "
                     "objects/s on this machine, so 110,000 would have taken about 15 minutes).")
        expected = {b: f"s3://{b}/caches/{PREFIX}_{stamps(mine_n)[-1]}.pkl.gz" for b in ("alone", "crowded")}
        keys_seen: dict[str, int] = {}
        latest: dict[str, list[float]] = {}
        raw: dict[str, list[float]] = {}
        reps = 3
        fns: dict[str, Any] = {}
        for b in ("alone", "crowded"):

            def find(b: str = b) -> None:
                got = cache_utils.get_latest_cache_filename(PREFIX, f"s3://{b}/caches", storage_options=opts)
                assert got == expected[b], got

            def server_only(b: str = b) -> None:
                pages = client.get_paginator("list_objects_v2").paginate(
                    Bucket=b, Prefix=f"caches/{PREFIX}_", Delimiter="/")
                assert sum(len(p.get("Contents", [])) for p in pages) == mine_n

            fns[f"latest {b}"] = find
            fns[f"raw {b}"] = server_only
        print("timing get_latest_cache_filename ...", flush=True)
        timed = interleaved(fns, reps)
        counter = {"keys": 0}
        get_store("s3://alone/caches", opts).fs.s3.meta.events.register(  # the one client both use
            "after-call.s3.ListObjectsV2",
            lambda parsed, **_: counter.__setitem__(
                "keys", counter["keys"] + len(parsed.get("Contents", []))),
        )
        for b in ("alone", "crowded"):
            latest[b], raw[b] = timed[f"latest {b}"], timed[f"raw {b}"]
            counter["keys"] = 0
            fns[f"latest {b}"]()
            keys_seen[b] = counter["keys"]
        ratio = median(latest["crowded"]) / median(latest["alone"])
        rows.append(Row(f"get_latest_cache_filename, {mine_n:,} objects of the prefix + {others_n:,} "
                        f"of other prefixes in the same directory (median of {reps})",
                        secs(median(latest["crowded"])), f"{mine_n:,} objects and nothing else",
                        secs(median(latest["alone"])), ratio, "about the same (< 1.5x)", ratio < 1.5))
        rows.append(Row("the same prefix listing with plain boto3 (moto's own cost), crowded",
                        secs(median(raw["crowded"])), "alone", secs(median(raw["alone"])),
                        median(raw["crowded"]) / median(raw["alone"])))
        rows.append(Row("keys returned to the client per call, crowded", f"{keys_seen['crowded']:,}",
                        "alone", f"{keys_seen['alone']:,}", None, "only the prefix's",
                        keys_seen["crowded"] == keys_seen["alone"] == mine_n))
        import s3fs

        fs = s3fs.S3FileSystem(endpoint_url=endpoint, use_listings_cache=False)
        def list_all() -> None:
            assert len(fs.ls("crowded/caches")) == mine_n + others_n

        naive = timings(list_all, 1)
        rows.append(Row("for comparison: listing the whole directory, crowded (1 run)", secs(naive[0]),
                        "prefix listing", secs(median(latest["crowded"])),
                        naive[0] / median(latest["crowded"])))
        notes.append("moto runs on loopback in its own process; the client (this process) and moto share "
                     "the machine's 2 cores. Most of a listing's time is moto's (compare the plain boto3 "
                     "row, which grows by the same factor as the library's). The library asks "
                     "for and receives only the prefix's keys, however many others share the directory; "
                     f"listing the directory instead would fetch {(mine_n + others_n) // mine_n}x the keys.")
        notes.append(f"local frame file: {mb(size)}; uploads use {UPLOAD_CHUNKSIZE // 2**20} MiB parts, "
                     f"{UPLOAD_CONCURRENCY} in flight. Timings of each pair are interleaved so load from "
                     "other processes hits both alike.")
        report("bench_s3", "S3 (moto) versus local", rows, notes, args)
    finally:
        moto.close()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        main()
