"""Range loads: DatedCacheIOManager reading 30 daily partitions (a dict input) from S3 one after another
versus concurrently, and against Dagster's UPathIOManager on the same files; plus a local directory.

S3 is moto's server in its own process on 127.0.0.1, behind a TCP proxy (a third process) that holds
every request 30 ms: a store far away, where a read costs round trips, not bandwidth.
Run from the repository root: `python -m benchmarks.bench_range_loads [--quick]`."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import pickle
import subprocess
import sys
import tempfile
from typing import Any

import dagster as dg
from isal import igzip

import cache_utils
from benchmarks.bench_io import interleaved, make_frame
from benchmarks.bench_s3 import FAKE_ENV, MotoProcess
from benchmarks.common import ROOT, Row, median, parse_args, report, secs
from dagster_cache import DatedCacheIOManager

LATENCY = 0.03  # seconds the proxy holds each request
TARGET = 3.0  # 30 partitions in at most this many times one
PREFIX = "s"
FIRST = dt.date(2024, 1, 1)
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-03-01")


def serve_proxy(endpoint: str, latency: float) -> None:
    """Child mode: the latency proxy; stdin `reset` / `stats` (answered with JSON)."""
    from tests.support.s3_server import latency_proxy

    with latency_proxy(endpoint, latency) as (url, stats):
        print(url, flush=True)
        for line in sys.stdin:
            if line.strip() == "reset":
                stats.reset()
            print(json.dumps({"requests": stats.requests, "max_in_flight": stats.max_in_flight}), flush=True)


class ProxyProcess:
    """`latency_proxy` in a child process, so its threads do not take this process's GIL."""

    def __init__(self, endpoint: str, latency: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_range_loads", "--proxy", endpoint, str(latency)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def ask(self, command: str) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class CacheFilesUPathIOManager(dg.UPathIOManager):
    """Dagster's UPathIOManager pointed at this library's files (`<dir>/<prefix>_<YYYYMMDD>.pkl.gz`),
    reading them with plain gzip + pickle (no signature): the same bytes, Dagster's loading loop,
    which reads partitions one after another."""

    extension = ".pkl.gz"

    def get_path_for_partition(self, context: Any, path: Any, partition: str) -> Any:
        return path.parent / f"{path.name}_{partition.replace('-', '')}"

    def read(self, path: Any) -> Any:
        with path.open("rb") as f, igzip.IGzipFile(fileobj=f) as gz:
            return pickle.load(gz)

    def load_from_path(self, context: dg.InputContext, path: Any) -> Any:
        return self.read(path)

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: Any) -> None:
        raise NotImplementedError("the benchmark writes with cache_utils")


class AsyncCacheFilesUPathIOManager(CacheFilesUPathIOManager):
    """The same with an async `load_from_path`, which makes UPathIOManager gather every partition at
    once; each read runs in asyncio's default thread pool (min(32, cores + 4) threads)."""

    async def load_from_path(self, context: dg.InputContext, path: Any) -> Any:  # type: ignore[override]
        return await asyncio.to_thread(self.read, path)


class PoolEverywhere(DatedCacheIOManager):
    """DatedCacheIOManager using its read pool for local directories too (as shipped, a local range
    is read one after another: these rows are why)."""

    def _range_workers(self, targets: list[tuple[str, dt.date]]) -> int:
        return max(1, min(self.max_concurrent_loads, len(targets)))


def ctx(n: int) -> dg.InputContext:
    """A downstream's input of `n` daily partitions (a dict when n > 1), as Dagster builds it.
    Built once and reused: building one takes about 0.1 s, more than loading 30 small local files."""
    if n == 1:
        context = dg.build_input_context(asset_key=PREFIX, asset_partitions_def=DAILY,
                                         partition_key=FIRST.isoformat())
    else:
        days = dg.PartitionKeyRange(FIRST.isoformat(), (FIRST + dt.timedelta(days=n - 1)).isoformat())
        context = dg.build_input_context(asset_key=PREFIX, asset_partitions_def=DAILY,
                                         asset_partition_key_range=days)
    context.log.setLevel(logging.INFO)  # no console line per partition (UPathIOManager logs at debug)
    return context


def loader(io: Any, context: dg.InputContext, keys: list[str]) -> Any:
    def run() -> None:
        got = io.load_input(context)
        if len(keys) > 1:
            assert list(got) == keys, list(got)
    return run


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    import boto3
    from upath import UPath

    n = 10 if args.quick else 30
    repeat = 2 if args.quick else 5
    rows_per_file = 1_000
    local_rows = (rows_per_file, 3_000, 6_000) if args.quick else (rows_per_file, 12_000, 50_000)
    os.environ.update(FAKE_ENV)
    moto = MotoProcess()
    proxy = ProxyProcess(moto.endpoint, LATENCY)
    rows: list[Row] = []
    notes: list[str] = []
    try:
        days = [FIRST + dt.timedelta(days=i) for i in range(n)]
        frame = make_frame(rows_per_file)
        boto3.client("s3", endpoint_url=moto.endpoint).create_bucket(Bucket="ranges")
        url = "s3://ranges/caches"
        for day in days:
            cache_utils.save_cache(frame, PREFIX, day, url, storage_options={"endpoint_url": moto.endpoint})
        keys = [d.isoformat() for d in days]
        contexts = {1: ctx(1), n: ctx(n)}
        size = len(boto3.client("s3", endpoint_url=moto.endpoint).get_object(
            Bucket="ranges", Key=f"caches/{PREFIX}_{FIRST:%Y%m%d}.pkl.gz")["Body"].read())

        far = {"endpoint_url": proxy.url}
        managers = {
            "sequential": DatedCacheIOManager(directory=url, storage_options=far, max_concurrent_loads=1),
            "concurrent": DatedCacheIOManager(directory=url, storage_options=far),  # default: 8
            "concurrent 30": DatedCacheIOManager(
                directory=url, max_concurrent_loads=30,
                storage_options={**far, "config_kwargs": {"max_pool_connections": 32}}),
            "no latency": DatedCacheIOManager(directory=url, storage_options={"endpoint_url": moto.endpoint}),
        }
        upath_notes = ""
        try:
            base = UPath(url, endpoint_url=proxy.url)
            upaths = {"upath": CacheFilesUPathIOManager(base),
                      "upath async": AsyncCacheFilesUPathIOManager(base)}
            for io in upaths.values():
                loader(io, contexts[n], keys)()  # it works on these files, or the rows are left out
        except Exception as e:  # noqa: BLE001 - reported instead of the rows
            upaths = {}
            upath_notes = f"UPathIOManager could not be set up on moto: {type(e).__name__}: {e}"
        fns: dict[str, Any] = {}
        for name, io in {**managers, **upaths}.items():
            loader(io, contexts[1], keys[:1])()  # warm: S3 client, connections
            fns[f"{name} 1"] = loader(io, contexts[1], keys[:1])
            fns[f"{name} {n}"] = loader(io, contexts[n], keys)
        print(f"timing {n} partitions of {size / 1e3:.0f} kB on S3 behind a {LATENCY * 1e3:.0f} ms proxy ...",
              flush=True)
        t = {k: median(v) for k, v in interleaved(fns, repeat).items()}
        in_flight = {}
        for name in ("sequential", "concurrent", "concurrent 30"):
            proxy.ask("reset")
            fns[f"{name} {n}"]()
            in_flight[name] = proxy.ask("stats")

        one = t["concurrent 1"]
        rows.append(Row(f"1 partition from S3 (+{LATENCY * 1e3:.0f} ms/request), median of {repeat}",
                        secs(one), "same, max_concurrent_loads=1", secs(t["sequential 1"]),
                        one / t["sequential 1"]))
        rows.append(Row(f"{n} partitions, sequential (max_concurrent_loads=1, the previous behaviour)",
                        secs(t[f"sequential {n}"]), "1 partition", secs(one), t[f"sequential {n}"] / one))
        ratio = t[f"concurrent {n}"] / one
        rows.append(Row(f"{n} partitions, concurrent (default max_concurrent_loads=8)",
                        secs(t[f"concurrent {n}"]), "1 partition", secs(one), ratio,
                        f"<= {TARGET:.0f}x one", ratio <= TARGET))
        rows.append(Row(f"{n} partitions, concurrent against sequential", secs(t[f"concurrent {n}"]),
                        "sequential", secs(t[f"sequential {n}"]),
                        t[f"concurrent {n}"] / t[f"sequential {n}"]))
        ratio30 = t[f"concurrent 30 {n}"] / one
        rows.append(Row(f"{n} partitions, max_concurrent_loads=30 and max_pool_connections=32",
                        secs(t[f"concurrent 30 {n}"]), "1 partition", secs(one), ratio30,
                        f"<= {TARGET:.0f}x one", ratio30 <= TARGET))
        rows.append(Row(f"{n} partitions, concurrent, straight to moto (no proxy: this machine's CPU floor)",
                        secs(t[f"no latency {n}"]), "1 partition with the proxy", secs(one),
                        t[f"no latency {n}"] / one))
        bound = in_flight["concurrent"]["max_in_flight"]
        rows.append(Row(f"requests in flight at most (counted by the proxy), {n} partitions, default",
                        str(bound), "sequential", str(in_flight["sequential"]["max_in_flight"]), None,
                        "<= 8", bound <= 8))
        if upaths:
            for name, what in (("upath", "UPathIOManager (sync load_from_path: one after another)"),
                               ("upath async", "UPathIOManager, async load_from_path (gathers all)")):
                rows.append(Row(f"{n} partitions, Dagster's {what}", secs(t[f"{name} {n}"]),
                                "ours, concurrent", secs(t[f"concurrent {n}"]),
                                t[f"{name} {n}"] / t[f"concurrent {n}"]))
            rows.append(Row("1 partition, Dagster's UPathIOManager", secs(t["upath 1"]), "ours",
                            secs(one), t["upath 1"] / one))
        else:
            notes.append(upath_notes)

        # ---- local directory: read one after another as shipped; the pool measured anyway
        print("timing local directories ...", flush=True)
        for rows_n in local_rows:
            value = frame if rows_n == rows_per_file else make_frame(rows_n)
            with tempfile.TemporaryDirectory() as local:
                for day in days:
                    cache_utils.save_cache(value, PREFIX, day, local)
                file_size = os.path.getsize(os.path.join(local, f"{PREFIX}_{FIRST:%Y%m%d}.pkl.gz"))
                value = None
                local_fns = {
                    "sequential": loader(DatedCacheIOManager(directory=local), contexts[n], keys),
                    "pool": loader(PoolEverywhere(directory=local), contexts[n], keys),
                }
                for fn in local_fns.values():
                    fn()
                lt = {k: median(v) for k, v in interleaved(local_fns, 3 * repeat).items()}  # ms each
            what = f"local dir, {n} partitions of {file_size / 1e6:.2f} MB ({rows_n:,}-row frames)"
            rows.append(Row(f"{what}: concurrent (8-thread pool)", secs(lt["pool"]),
                            "sequential (as shipped for local dirs)", secs(lt["sequential"]),
                            lt["pool"] / lt["sequential"]))

        notes.append(f"each S3 file ({size / 1e3:.0f} kB, a {rows_per_file:,}-row frame) costs one request "
                     f"(a GET of the first 16 MiB, whose answer gives the size: no HEAD), so one "
                     f"partition takes at least {LATENCY * 1e3:.0f} ms through the proxy (two requests, "
                     "HEAD then GET, before). The proxy and moto run in their own "
                     "processes; all three share the machine's 2 cores, so the CPU of the client "
                     "(botocore, unpickling) and of moto (about as much again) sets a floor under "
                     "concurrent loads that no amount of concurrency removes (the 'straight to moto' row).")
        notes.append("botocore keeps 10 connections per client unless storage_options "
                     "{'config_kwargs': {'max_pool_connections': N}} says otherwise; the '30' row "
                     "raises both.")
        notes.append("UPathIOManager reads the same files through universal-pathlib/s3fs with its own "
                     "paths (get_path_for_partition) and plain gzip + pickle; Dagster loads partitions "
                     "one after another unless load_from_path is async, then all at once, unbounded.")
        notes.append("timings of each group are interleaved (each configuration in turn, "
                     f"{repeat} rounds for S3, {3 * repeat} for local directories), medians shown, so load "
                     "from other processes hits them alike.")
        notes.append("local directories: the manager reads a range one after another (the previous "
                     "code path, unchanged); the pool rows show why: no faster for big files, whose "
                     "reads already inflate on several threads, and slower for small ones.")
        report("bench_range_loads", f"Range loads: {n} daily partitions, S3 (+{LATENCY * 1e3:.0f} ms) "
               "and local", rows, notes, args)
    finally:
        proxy.close()
        moto.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--proxy"]:
        serve_proxy(sys.argv[2], float(sys.argv[3]))
    else:
        main()
