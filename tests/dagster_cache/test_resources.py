"""InMemoryCacheResource (and which executors share it), OpsGenieResource, the failure sensor."""

import logging
from pathlib import Path
from urllib.parse import unquote

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap

import dagster_cache
from cache_utils import InMemoryCache, NullAlerter
from dagster_cache import (
    AlertResource,
    DatedCacheIOManager,
    InMemoryCacheResource,
    OpsGenieResource,
    make_alert_on_run_failure_sensor,
    make_opsgenie_on_run_failure_sensor,
)
from tests.support.opsgenie_fake import TEST_API_KEY, FakeOpsGenie

# --- InMemoryCacheResource ---------------------------------------------------------------------


def test_namespace_prefixes_every_key_and_maps_each_method() -> None:
    mem = InMemoryCacheResource(namespace="ns")
    data = {"a": [1, 2]}
    mem.put(data, "users", "john")
    data["a"].append(3)  # the stored value is a copy
    assert mem.get("users", "john") == {"a": [1, 2]}
    assert InMemoryCache.get(("ns", "users", "john")) == {"a": [1, 2]}
    assert InMemoryCache.get("users", "john") is None  # no namespace: another key
    mem.put_many({"x": 1, "y": 2}, "vals")
    assert mem.get_many("vals", ["x", "y", "z"]) == {"x": 1, "y": 2}
    state = {"n": 0}
    key = mem.put_state(state, "st")
    assert mem.get_state("st", key) is state
    assert ("ns", "users", "john") in mem.list_keys()
    assert mem.delete("users", "john") is True
    assert mem.delete("users", "john") is False
    InMemoryCache.put("outside", "other")
    assert mem.clear() == 3  # x, y and the state: only this namespace
    assert InMemoryCache.get("other") == "outside"
    assert mem.list_keys() == []


def test_resource_survives_dagster_dict_conversion() -> None:
    # Dagster calls dict(resource): a method named `keys` would make that fail.
    assert dict(InMemoryCacheResource(namespace="n")) == {"namespace": "n"}


def test_no_namespace_uses_keys_as_given() -> None:
    mem = InMemoryCacheResource()
    mem.put(1, ["a", "b"])
    assert InMemoryCache.get("a", "b") == 1
    assert mem.list_keys("a") == [("a", "b")]
    assert mem.clear("a") == 1


@dg.op
def put_value(memory: InMemoryCacheResource) -> int:
    memory.put("from step one", "shared", "value")
    return 1


@dg.op
def get_value(memory: InMemoryCacheResource, _after: int) -> str:
    return memory.get("shared", "value") or "missing"


@dg.job(resource_defs={"memory": InMemoryCacheResource(namespace="exec")})
def sharing_job() -> None:
    get_value(put_value())


def multiprocess_sharing_job() -> dg.JobDefinition:
    return sharing_job.with_executor_def(dg.multiprocess_executor)


def test_in_process_executor_shares_between_steps() -> None:
    result = sharing_job.execute_in_process()
    assert result.output_for_node("get_value") == "from step one"


@pytest.mark.integration
def test_multiprocess_executor_does_not_share(tmp_path: Path) -> None:
    # Each step runs in its own process, so step two sees an empty cache.
    job = dg.reconstructable(multiprocess_sharing_job)
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance, \
            dg.execute_job(job, instance=instance) as result:
        assert result.success
        assert result.output_for_node("get_value") == "missing"
    assert InMemoryCache.get(("exec", "shared", "value")) is None  # nor did this process get it


def test_sensor_ticks_in_one_process_share_it() -> None:
    @dg.sensor(job=sharing_job)
    def counting(context: dg.SensorEvaluationContext, memory: InMemoryCacheResource) -> dg.SkipReason:
        count = (memory.get("ticks") or 0) + 1
        memory.put(count, "ticks")
        return dg.SkipReason(f"tick {count}")

    mem = InMemoryCacheResource(namespace="sensor")
    for expected in (1, 2):
        ctx = dg.build_sensor_context(resources={"memory": mem})
        assert counting.evaluate_tick(ctx).skip_message == f"tick {expected}"


# --- OpsGenieResource ----------------------------------------------------------------------------


def test_api_key_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSGENIE_API_KEY", TEST_API_KEY)
    res = OpsGenieResource(api_key=dg.EnvVar("OPSGENIE_API_KEY"))
    defs = dg.Definitions(resources={"opsgenie": res})
    snap = RepositorySnap.from_def(defs.get_repository_def())
    shown = {r.name: r.configured_values for r in snap.resources}["opsgenie"]
    assert shown["api_key"].name == "OPSGENIE_API_KEY"  # the UI shows the variable, not the value
    assert TEST_API_KEY not in repr(shown)
    assert TEST_API_KEY not in repr(OpsGenieResource(api_key=TEST_API_KEY))
    fields = OpsGenieResource.model_fields
    assert all(f.description for f in fields.values())


def test_priority_is_a_literal() -> None:
    with pytest.raises(Exception, match="P9"):
        OpsGenieResource(api_key="k", priority="P9")


@pytest.mark.integration
def test_create_and_close_through_the_real_sdk(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with FakeOpsGenie() as og:
        res = OpsGenieResource(api_key=TEST_API_KEY, api_url=og.url, priority="P2", tags=["t1"],
                               team="data", timeout=3)
        assert res.create_alert("cache is stale", "my-alias", details={"k": "v"}) is True
        body = og.creates()[0].body
        assert (body["alias"], body["priority"], body["tags"]) == ("my-alias", "P2", ["t1"])
        assert body["responders"] == [{"name": "data", "type": "team"}]
        assert og.open_aliases() == {"my-alias"}
        assert res.close_alert("my-alias", "fixed") is True
        assert og.open_aliases() == set()
        assert unquote(og.closes()[0].path) == "/v2/alerts/my-alias/close"
    assert TEST_API_KEY not in caplog.text


@pytest.mark.integration
def test_down_opsgenie_never_raises_and_redacts_the_key(caplog: pytest.LogCaptureFixture) -> None:
    with FakeOpsGenie(mode="500") as og:
        res = OpsGenieResource(api_key=TEST_API_KEY, api_url=og.url, timeout=2)
        assert res.create_alert("x", "a") is False
    assert "failed" in caplog.text
    assert TEST_API_KEY not in caplog.text


def test_empty_key_disables_alerting(opsgenie: FakeOpsGenie) -> None:
    res = OpsGenieResource(api_key="")
    assert not res.enabled and isinstance(res.alerter(), NullAlerter)
    assert res.create_alert("x", "a") is False
    assert opsgenie.requests == []


# --- AlertResource: the backend-neutral name, one alerter per resource ------------------------------


def test_backend_neutral_names_and_their_first_names_are_the_same_objects() -> None:
    assert AlertResource is OpsGenieResource
    assert make_alert_on_run_failure_sensor is make_opsgenie_on_run_failure_sensor
    for name in ("AlertResource", "OpsGenieResource", "make_alert_on_run_failure_sensor",
                 "make_opsgenie_on_run_failure_sensor"):
        assert name in dagster_cache.__all__
    res = AlertResource(backend="jsm", api_key="k")
    assert isinstance(res, OpsGenieResource) and res.service == "JSM Operations"


def test_one_alerter_per_resource_not_one_per_alert(caplog: pytest.LogCaptureFixture) -> None:
    res = AlertResource(api_key="k", priority="P4", tags=["t"])
    alerter = res.alerter()
    assert res.alerter() is alerter and alerter.priority == "P4" and alerter.tags == ("t",)
    assert AlertResource(api_key="k").alerter() is not alerter  # another resource, another alerter
    caplog.set_level(logging.WARNING)
    broken = AlertResource(api_key="k", api_url="not a url")
    assert isinstance(broken.alerter(), NullAlerter) and broken.alerter() is broken.alerter()
    assert caplog.text.count("alerts off") == 1  # said once per resource, not once per alert
    assert dict(res) == dict(AlertResource(api_key="k", priority="P4", tags=["t"]))  # not config


@pytest.mark.integration
def test_the_steps_of_a_run_share_one_alerter_and_one_sdk_client() -> None:
    seen: list[tuple[object, object]] = []  # the objects themselves: ids of freed ones may repeat

    def step(alerts: AlertResource, alias: str) -> None:
        assert alerts.create_alert("stale", alias) is True
        alerter = alerts.alerter()
        seen.append((alerter, alerter._alert_api()))  # type: ignore[union-attr]

    @dg.asset
    def first(alerts: AlertResource) -> None:
        step(alerts, "a1")

    @dg.asset
    def second(alerts: AlertResource) -> None:
        step(alerts, "a2")

    with FakeOpsGenie() as og:
        res = AlertResource(api_key=TEST_API_KEY, api_url=og.url, timeout=3, priority="P4")
        assert dg.materialize([first, second], resources={"alerts": res}).success
        assert [r.body["priority"] for r in og.creates()] == ["P4", "P4"]  # the resource's, via the alerter
    assert len(seen) == 2 and seen[0][0] is seen[1][0] and seen[0][1] is seen[1][1], seen


def test_io_manager_alerts_go_through_the_resources_one_alerter(tmp_path: Path) -> None:
    off = AlertResource(api_key="")
    io = DatedCacheIOManager(directory=str(tmp_path), opsgenie=off)
    assert io.opsgenie is not None and io.opsgenie.alerter() is io.opsgenie.alerter()
    assert isinstance(io.opsgenie.alerter(), NullAlerter)


# --- make_opsgenie_on_run_failure_sensor -----------------------------------------------------------


@dg.op
def explode() -> None:
    raise ValueError("boom in the op")


@dg.job
def failing_job() -> None:
    explode()


def failure_context(instance: dg.DagsterInstance, sensor: dg.SensorDefinition,
                    resources: dict | None = None) -> dg.RunFailureSensorContext:
    result = failing_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    event = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    return dg.build_run_status_sensor_context(
        sensor_name=sensor.name, dagster_instance=instance, dagster_run=result.dagster_run,
        dagster_event=event, resources=resources,
    ).for_run_failure()


@pytest.mark.integration
def test_failure_sensor_alerts_with_a_per_job_alias() -> None:
    with FakeOpsGenie() as og, dg.instance_for_test() as instance:
        res = OpsGenieResource(api_key=TEST_API_KEY, api_url=og.url, timeout=3)
        sensor = make_opsgenie_on_run_failure_sensor(
            opsgenie=res, monitored_jobs=[failing_job], webserver_base_url="http://dagster.local",
            message_fn=lambda ctx: f"FAILED {ctx.dagster_run.job_name}",
        )
        assert sensor.name == "opsgenie_on_run_failure"
        ctx = failure_context(instance, sensor)
        sensor(ctx)
        body = og.creates()[0].body
        assert body["message"] == "FAILED failing_job"
        assert body["alias"] == "dagster_cache:run_failure:failing_job"
        assert f"http://dagster.local/runs/{ctx.dagster_run.run_id}" in body["description"]
        assert "boom in the op" in body["description"] or "explode" in body["description"]
        assert body["details"]["run_id"] == ctx.dagster_run.run_id


@pytest.mark.integration
def test_failure_sensor_by_its_backend_neutral_name() -> None:
    with FakeOpsGenie(prefix="/jsm/ops/integration") as jsm, dg.instance_for_test() as instance:
        res = AlertResource(backend="jsm", api_key=TEST_API_KEY, api_url=jsm.url, timeout=3)
        sensor = make_alert_on_run_failure_sensor(opsgenie=res, monitored_jobs=[failing_job], priority="P1")
        assert sensor.name == "opsgenie_on_run_failure"  # the first name's default, kept for existing sensors
        sensor(failure_context(instance, sensor))
        assert jsm.open_aliases() == {"dagster_cache:run_failure:failing_job"}
        assert jsm.creates()[0].body["priority"] == "P1"


@pytest.mark.integration
def test_failure_sensor_uses_the_bound_resource() -> None:
    with FakeOpsGenie() as og, dg.instance_for_test() as instance:
        running = dg.DefaultSensorStatus.RUNNING
        sensor = make_opsgenie_on_run_failure_sensor(name="pager", default_status=running)
        assert sensor.default_status == running
        res = OpsGenieResource(api_key=TEST_API_KEY, api_url=og.url, timeout=3)
        ctx = failure_context(instance, sensor, resources={"opsgenie": res})
        sensor(ctx)
        assert og.open_aliases() == {"dagster_cache:run_failure:failing_job"}


@pytest.mark.parametrize("cls", [DatedCacheIOManager, InMemoryCacheResource, OpsGenieResource])
def test_every_config_field_has_a_description(cls: type) -> None:
    missing = [name for name, field in cls.model_fields.items() if not field.description]
    assert missing == []
    schema = cls.to_config_schema().as_field().config_type  # what the Dagster UI renders
    assert all(f.description for f in schema.fields.values())


def test_failure_sensor_refuses_a_bad_priority_when_defined() -> None:
    with pytest.raises(dg.DagsterInvalidDefinitionError, match="'P9'"):
        make_opsgenie_on_run_failure_sensor(priority="P9")  # type: ignore[arg-type]
