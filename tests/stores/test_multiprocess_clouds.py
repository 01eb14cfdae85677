"""Dagster's multiprocess executor on each cloud emulator: several daily partitions run at once, each
its own run, each step its own process, all writing and reading one bucket through
`DatedCacheIOManager`. Each step process reaches the emulator only through the IO manager's run
config (`directory`, `storage_options`): nothing about the store is in the environment or in globals.

Checked afterwards: every downstream partition loaded exactly its own upstream partition's value (no
wrong loads: a fallback to another day or a torn read shows as a mismatch), and the bucket holds
exactly the cache files (no temp objects, no open S3 multipart uploads, no uncommitted Azure blocks),
and no step left a local spool file behind.
"""

import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from cache_utils import read_cache
from dagster_cache import DatedCacheIOManager
from tests.stores.conftest import CLOUDS, StoreCase
from tests.support.s3_server import FAKE_ENV, MotoS3

pytestmark = pytest.mark.integration  # emulators, and a process per step

DAILY = dg.DailyPartitionsDefinition(start_date="2024-03-01", end_date="2024-04-01")
DAYS = ("2024-03-04", "2024-03-05", "2024-03-06")
SPOOL_PREFIX = "cache_utils-spool-"  # the library's local upload spool (stores.fsspec)
RENDEZVOUS_TIMEOUT = 90.0  # seconds an upstream step waits for the others to start (a loaded CI box)


class Rendezvous(dg.Config):
    """Where the upstream steps of the concurrent runs meet, so that their writes overlap."""

    directory: str
    parties: int


def expected(day: str) -> dict[str, Any]:
    """The upstream value of a day: different for every day, a few KB."""
    seed = int(day.replace("-", ""))
    return {"day": day, "values": [seed * 31 + i for i in range(500)]}


@dg.asset(partitions_def=DAILY, io_manager_key="cache_io")
def readings(context: dg.AssetExecutionContext, config: Rendezvous) -> dict[str, Any]:
    meet = Path(config.directory)
    (meet / context.partition_key).touch()
    deadline = time.monotonic() + RENDEZVOUS_TIMEOUT
    while len(list(meet.iterdir())) < config.parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {sorted(p.name for p in meet.iterdir())} of {config.parties} "
                               f"upstream steps started within {RENDEZVOUS_TIMEOUT:.0f} s")
        time.sleep(0.05)
    return {**expected(context.partition_key), "pid": os.getpid(), "tmp": tempfile.gettempdir()}


@dg.asset(partitions_def=DAILY, io_manager_key="cache_io")
def summary(context: dg.AssetExecutionContext, readings: dict[str, Any]) -> dict[str, Any]:
    return {"day": context.partition_key, "seen": readings, "pid": os.getpid()}


def daily_job() -> dg.JobDefinition:
    """Rebuilt in every step process; the store comes from the run config, at launch."""
    defs = dg.Definitions(
        assets=[readings, summary],
        jobs=[dg.define_asset_job("daily", partitions_def=DAILY)],
        resources={"cache_io": DatedCacheIOManager.configure_at_launch()},
        executor=dg.multiprocess_executor,
    )
    return defs.resolve_job_def("daily")


def run_config(case: StoreCase, options: dict[str, Any], meet: Path) -> dict[str, Any]:
    return {
        "resources": {"cache_io": {"config": {"directory": case.url, "storage_options": options}}},
        "ops": {"readings": {"config": {"directory": str(meet), "parties": len(DAYS)}}},
        # Steps fork from a server that imported this module once (Dagster preloads the job's module):
        # a fresh interpreter per step (`spawn`, the default) costs seconds of CPU each.
        "execution": {"config": {"start_method": {"forkserver": {}}}},
    }


def step_options(case: StoreCase) -> dict[str, Any]:
    """Everything a step process needs to reach the emulator, credentials included."""
    options = dict(case.options or {})
    if case.kind == "s3":  # the s3 fixture puts the fake keys in the environment: pass them in config
        options.update(key=FAKE_ENV["AWS_ACCESS_KEY_ID"], secret=FAKE_ENV["AWS_SECRET_ACCESS_KEY"],
                       client_kwargs={"region_name": FAKE_ENV["AWS_DEFAULT_REGION"]})
    return options


def bucket_objects(case: StoreCase) -> list[str]:
    if case.kind == "gcs":
        from gcsfs.core import GCSFileSystem

        # The plain class, as the library picks for an emulator: fsspec's registry hands out gcsfs'
        # subclass, which first probes the bucket type over gRPC (60 to 100 s per call here).
        fs = GCSFileSystem(**(case.options or {}))
    else:
        fs = case.fs()
    fs.invalidate_cache()
    return sorted(p.split("/", 1)[1] for p in fs.find(case.bucket))


def unfinished_uploads(case: StoreCase, request: pytest.FixtureRequest) -> list[str]:
    """Uploads a reader never sees but the bucket still holds: S3 multipart uploads, Azure
    uncommitted blocks. (GCS resumable sessions cannot be listed; its objects are listed above.)"""
    if case.kind == "s3":
        s3: MotoS3 = request.getfixturevalue("s3")
        return [u["Key"] for u in s3.client.list_multipart_uploads(Bucket=case.bucket).get("Uploads", [])]
    if case.kind == "azure":
        from azure.storage.blob import ContainerClient

        container = ContainerClient.from_connection_string(case.options["connection_string"], case.bucket)
        return sorted(b.name for b in container.list_blobs(include=["uncommittedblobs"])
                      if b.name not in set(bucket_objects(case)))
    return []


def run_partition(ref: Any, day: str, config: dict[str, Any], tmp: str) -> tuple[bool, list[str]]:
    """One partition's run, in a process of its own (Dagster's execution is not thread-safe: runs
    started from threads of one process deadlock on logging locks). Its step processes inherit `tmp`
    as their temp directory, where the library spools uploads."""
    os.environ["TMPDIR"] = tmp
    tempfile.tempdir = None
    with dg.DagsterInstance.from_ref(ref) as instance, dg.execute_job(
        dg.reconstructable(daily_job), instance=instance, run_config=config, tags={"dagster/partition": day}
    ) as result:
        return result.success, [str(e.message) for e in result.all_events if e.is_failure]


@pytest.mark.parametrize("store", CLOUDS, indirect=True)
def test_concurrent_partition_runs_load_their_own_partition(
    store: StoreCase, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    meet, spool, home = tmp_path / "rendezvous", tmp_path / "tmp", tmp_path / "dagster_home"
    for d in (meet, spool, home):
        d.mkdir()
    config = run_config(store, step_options(store), meet)
    # The run processes fork from one server that imported this module once, as their steps do.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with dg.instance_for_test(temp_dir=str(home)) as instance, ProcessPoolExecutor(
        len(DAYS), mp_context=context
    ) as pool:
        runs = {day: pool.submit(run_partition, instance.get_ref(), day, config, str(spool)) for day in DAYS}
        results = {day: run.result(timeout=240) for day, run in runs.items()}
    assert {day: ok for day, (ok, _) in results.items()} == dict.fromkeys(DAYS, True), results

    wrong, pids = [], set()
    for day in DAYS:
        up = read_cache("readings", day, store.url, **store.kw())
        down = read_cache("summary", day, store.url, **store.kw())
        if {k: up[k] for k in ("day", "values")} != expected(day) or down["seen"] != up or down["day"] != day:
            wrong.append(day)
        pids |= {up["pid"], down["pid"]}
        assert up["tmp"] == str(spool)  # the step spooled its upload where the check below looks
    assert wrong == []  # 0 wrong loads
    assert len(pids) == 2 * len(DAYS) and os.getpid() not in pids  # each step of each run: its own process

    day_names = [d.replace("-", "") for d in DAYS]
    assert bucket_objects(store) == sorted(
        f"caches/{asset}_{day}.pkl.gz" for asset in ("readings", "summary") for day in day_names)
    assert unfinished_uploads(store, request) == []
    assert [p.name for p in spool.iterdir()] == []  # no spool file left by any step


@pytest.mark.parametrize("store", ["s3", "azure"], indirect=True)
def test_the_leftover_check_sees_an_unfinished_upload(
    store: StoreCase, request: pytest.FixtureRequest
) -> None:
    """The check above is not blind: an open multipart upload (S3) or a staged, uncommitted block
    (Azure) is invisible to a listing but reported."""
    if store.kind == "s3":
        s3: MotoS3 = request.getfixturevalue("s3")
        s3.client.create_multipart_upload(Bucket=store.bucket, Key="caches/half.pkl.gz")
    else:
        from azure.storage.blob import BlobClient

        blob = BlobClient.from_connection_string(store.options["connection_string"], store.bucket,
                                                 "caches/half.pkl.gz")
        blob.stage_block("MDAwMDE=", b"partial")
    assert bucket_objects(store) == []
    assert unfinished_uploads(store, request) == ["caches/half.pkl.gz"]
