"""Dagster's multiprocess executor (each step its own process) writing caches to a local directory and
to S3 (moto on 127.0.0.1): the downstream step reads what the upstream step wrote."""

import json
import os
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from cache_utils import get_latest_cache_filename, list_caches, read_cache
from dagster_cache import DatedCacheIOManager, InMemoryCacheResource
from tests.support.s3_server import MotoS3

pytestmark = pytest.mark.integration  # moto S3 and a step subprocess per op

LOCAL_ENV = "CACHE_UTILS_TEST_LOCAL_DIRECTORY"
S3_ENV = "CACHE_UTILS_TEST_S3_DIRECTORY"
OPTS_ENV = "CACHE_UTILS_TEST_STORAGE_OPTIONS"
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-02-01")


def pair(where: str) -> list[dg.AssetsDefinition]:
    """An upstream and a downstream asset stored through the IO manager `<where>_io`."""

    @dg.asset(name=f"prices_{where}", partitions_def=DAILY, io_manager_key=f"{where}_io")
    def upstream(context: dg.AssetExecutionContext, memory: InMemoryCacheResource) -> dict[str, Any]:
        memory.put("set by an upstream step", "marker", where)
        return {"day": context.partition_key, "pid": os.getpid(), "rows": list(range(1000))}

    @dg.asset(name=f"report_{where}", partitions_def=DAILY, io_manager_key=f"{where}_io",
              ins={"prices": dg.AssetIn(f"prices_{where}")})
    # `prices` unannotated: a dict hint asks the IO manager for {partition: value}
    def downstream(prices, memory: InMemoryCacheResource) -> dict[str, Any]:
        return {"upstream": prices, "pid": os.getpid(), "memory_marker": memory.get("marker", where)}

    return [upstream, downstream]


def caches_job() -> dg.JobDefinition:
    """Rebuilt in every step process from the environment, which the executor passes on."""
    opts = json.loads(os.environ[OPTS_ENV])
    defs = dg.Definitions(
        assets=pair("local") + pair("s3"),
        jobs=[dg.define_asset_job("caches")],  # partitioned like its assets
        resources={
            "local_io": DatedCacheIOManager(directory=os.environ[LOCAL_ENV]),
            "s3_io": DatedCacheIOManager(directory=os.environ[S3_ENV], storage_options=opts),
            "memory": InMemoryCacheResource(namespace="mp"),
        },
        executor=dg.multiprocess_executor.configured({"max_concurrent": 2}),
    )
    return defs.resolve_job_def("caches")


def test_multiprocess_steps_share_caches_not_memory(
    s3: MotoS3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = {"local": (str(tmp_path / "caches"), None),
               "s3": (f"s3://{s3.new_bucket()}/caches", s3.options())}
    monkeypatch.setenv(LOCAL_ENV, targets["local"][0])
    monkeypatch.setenv(S3_ENV, targets["s3"][0])
    monkeypatch.setenv(OPTS_ENV, json.dumps(s3.options()))
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance, dg.execute_job(
        dg.reconstructable(caches_job), instance=instance, tags={"dagster/partition": "2024-01-03"}
    ) as result:
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
        assert steps == {"prices_local", "report_local", "prices_s3", "report_s3"}

    pids = {os.getpid()}
    for where, (directory, opts) in targets.items():
        up = read_cache(f"prices_{where}", "2024-01-03", directory, storage_options=opts)
        down = read_cache(f"report_{where}", "2024-01-03", directory, storage_options=opts)
        assert up["day"] == "2024-01-03" and up["rows"] == list(range(1000))
        assert down["upstream"] == up  # the downstream step read exactly what the upstream wrote
        assert down["memory_marker"] is None  # InMemoryCacheResource is per process, as documented
        pids |= {up["pid"], down["pid"]}
        files = [(c.prefix, c.date.isoformat()) for c in list_caches(directory, storage_options=opts)]
        assert files == [(f"prices_{where}", "2024-01-03"), (f"report_{where}", "2024-01-03")]
        assert get_latest_cache_filename(f"report_{where}", directory, storage_options=opts) == (
            f"{directory}/report_{where}_20240103.pkl.gz"
        )
    assert len(pids) == 5  # each of the four steps ran in its own process
    assert s3.keys(targets["s3"][0].split("/")[2]) == [
        "caches/prices_s3_20240103.pkl.gz", "caches/report_s3_20240103.pkl.gz"
    ]
