"""`EnvVar` inside `DatedCacheIOManager.storage_options`: Dagster resolves an `EnvVar` only in a
resource's top-level string fields; inside the dict it hands over `{"env": NAME}`, which reached the
cloud SDK as the endpoint or the credential itself. The IO manager reads the variable at run time."""

import dagster as dg
import pytest

from cache_utils import list_caches, read_cache
from dagster_cache import DatedCacheIOManager, build_cache_file_checks
from tests.support.s3_server import MotoS3

pytestmark = pytest.mark.integration  # moto's S3 server

ENDPOINT_ENV = "CACHE_UTILS_TEST_S3_ENDPOINT"


@dg.asset(io_manager_key="io")
def prices() -> dict[str, int]:
    return {"rows": 3}


def materialize(directory: str) -> dg.ExecuteInProcessResult:
    """The asset and its cache file checks (which read the same storage options)."""
    io = DatedCacheIOManager(directory=directory, storage_options={"endpoint_url": dg.EnvVar(ENDPOINT_ENV)})
    checks = build_cache_file_checks(assets=[prices])
    return dg.materialize([prices, *checks], resources={"io": io}, raise_on_error=False)


def test_an_env_var_in_storage_options_is_read_at_run_time(
    s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = f"s3://{s3.new_bucket()}/caches"
    monkeypatch.setenv(ENDPOINT_ENV, s3.endpoint)
    result = materialize(directory)
    assert result.success, [str(e.message) for e in result.all_events if e.is_failure]
    evaluations = [e.asset_check_evaluation_data for e in result.all_events
                   if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert {c.check_name: c.passed for c in evaluations} == {  # type: ignore[union-attr]
        "cache_file_exists": True, "cache_file_verifies": True, "cache_file_age": True}
    [written] = list_caches(directory, storage_options=s3.options())
    assert read_cache("prices", written.date, directory, storage_options=s3.options()) == {"rows": 3}


def test_an_unset_env_var_in_storage_options_names_the_variable(
    s3: MotoS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ENDPOINT_ENV, raising=False)
    result = materialize(f"s3://{s3.new_bucket()}/caches")
    assert not result.success
    [failure, *_] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.step_failure_data.error)  # type: ignore[union-attr]
    assert f"storage_options['endpoint_url'] reads the environment variable '{ENDPOINT_ENV}'" in message
