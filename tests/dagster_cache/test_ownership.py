"""One file, one owner (issue 19, items 1-3).

A file's name is not its identity: one directory spelled two ways (`/x/c` and `file:///x/c`,
`s3://b/z` and `s3a://b/z`), two code locations on one directory, or an asset whose `cache_prefix`
is an external cache's prefix all map two writers to one file name. Before owners were recorded,
the second writer overwrote the first's file and the first's consumer received the second's value.
Now each file records its writer (gzip subfield `CO`), the IO manager refuses to overwrite or hand
out another writer's file, and Dagster's own FilesystemIOManager, run as the control in the same
scenario, keeps its consumer right by keeping one path per asset key.
"""

import gzip
import pickle
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from freezegun import freeze_time

from cache_utils import (
    CorruptCacheError,
    cache_owner,
    load_cache,
    load_latest_cache,
    read_cache,
    read_cache_hit,
    save_cache,
    verify_cache,
    write_cache,
)
from dagster_cache import CacheOwnerError, DatedCacheIOManager, external_cache_asset
from dagster_cache.ownership import normalize_directory, same_directory
from tests.support.controls import step_failures
from tests.support.s3_server import MotoS3

FIXTURES = Path(__file__).parents[1] / "fixtures"
TODAY = "2024-01-15"
KEY = "owner-test-key"
DAILY = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_offset=1)
BY_REGION = dg.MultiPartitionsDefinition(
    {"date": DAILY, "region": dg.StaticPartitionsDefinition(["a", "b"])}
)
REGION_B = dg.MultiPartitionKey({"date": TODAY, "region": "b"})



def _error_classes(result: dg.ExecuteInProcessResult) -> set[str]:
    """The class names in each step failure's cause chain."""
    names = set()
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error
            while error is not None:
                names.add(error.cls_name)
                error = error.cause
    return names


# --- the library: an owner recorded in the file, read cheaply, ignored by other readers ---------


@pytest.mark.parametrize("key", [None, KEY])
@pytest.mark.parametrize("data", [[1, 2, 3], bytes(5 << 20)], ids=["one member", "three members"])
def test_owner_is_recorded_read_back_and_ignored_by_gzip_and_pandas(
    tmp_path: Path, key: str | None, data: object
) -> None:
    owner = '{"asset":["sales","b"],"partition":null}'
    written = write_cache(data, "sales__b", TODAY, str(tmp_path), owner=owner, signing_key=key)
    assert written.owner == owner
    assert cache_owner("sales__b", TODAY, str(tmp_path), signing_key=key) == owner
    checked = verify_cache("sales__b", TODAY, str(tmp_path), signing_key=key)
    assert (checked.owner, checked.fingerprint) == (owner, written.fingerprint)
    assert read_cache("sales__b", TODAY, str(tmp_path), signing_key=key) == data
    exact = read_cache_hit("sales__b", TODAY, str(tmp_path), signing_key=key)
    latest, _ = load_latest_cache("sales__b", "2024-01-20", str(tmp_path), signing_key=key)
    assert latest is not None
    assert (exact.data, exact.owner, latest.data, latest.owner) == (data, owner, data, owner)
    with gzip.open(written.path) as f:  # Python's gzip skips the subfield
        assert pickle.load(f) == data
    assert pd.read_pickle(written.path) == data
    # The same pickle without an owner: same content fingerprint, no owner.
    plain = write_cache(data, "plain", TODAY, str(tmp_path), signing_key=key)
    assert plain.fingerprint == written.fingerprint and plain.owner is None
    assert cache_owner("plain", TODAY, str(tmp_path), signing_key=key) is None


def test_a_changed_owner_in_a_signed_file_is_refused(tmp_path: Path) -> None:
    """The `CU` signature cannot cover the header holding it; the owner record carries its own MAC
    bound to the name and the `CU` MAC, so rewriting the owner of a signed file is caught."""
    written = write_cache({"v": 1}, "sales__b", TODAY, str(tmp_path), owner="asset-one", signing_key=KEY)
    raw = Path(written.path).read_bytes()
    assert raw.count(b"asset-one") == 1
    Path(written.path).write_bytes(raw.replace(b"asset-one", b"asset-two"))
    assert cache_owner("sales__b", TODAY, str(tmp_path)) == "asset-two"  # unverified without a key
    with pytest.raises(CorruptCacheError, match="owner record 'asset-two' does not match the signature"):
        cache_owner("sales__b", TODAY, str(tmp_path), signing_key=KEY)
    with pytest.raises(CorruptCacheError, match="does not match the signature"):
        read_cache("sales__b", TODAY, str(tmp_path), signing_key=KEY)


@pytest.mark.parametrize(
    ("owner", "error", "match"),
    [("", ValueError, "owner must be 1 to 1024 bytes"), ("a\0b", ValueError, "without NUL"),
     ("x" * 1025, ValueError, "1 to 1024 bytes"), ("\ud800", ValueError, "encodes as UTF-8"),
     (7, TypeError, "owner must be a str, got int: 7")],
)
def test_a_bad_owner_is_refused_before_anything_is_written(
    tmp_path: Path, owner: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        write_cache(1, "p", TODAY, str(tmp_path), owner=owner)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@freeze_time(f"{TODAY} 12:00:00")
def test_files_written_by_todays_release_still_load(tmp_path: Path) -> None:
    """tests/fixtures holds files written by the release before owners (main at e7a4439): no
    owner, and they load through the library and the IO manager as before."""
    for name in ("prices_20240115.pkl.gz", "signed_prices_20240115.pkl.gz"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    assert cache_owner("prices", TODAY, str(tmp_path)) is None
    assert cache_owner("signed_prices", TODAY, str(tmp_path), signing_key="fixture-signing-key") is None
    data, _ = load_cache("prices", "00:00", str(tmp_path))
    assert data == {"asset": "prices", "value": [1.5, 2.5]}

    prices = dg.AssetSpec("prices")  # written before owners were recorded

    @dg.asset
    def reader(prices: dict) -> dict:
        return prices

    result = dg.materialize([prices, reader], resources={"io_manager": DatedCacheIOManager(
        directory=str(tmp_path))}, selection=[dg.AssetKey("reader")])
    assert result.output_for_node("reader") == {"asset": "prices", "value": [1.5, 2.5]}

    @dg.asset(name="prices")
    def prices_again() -> dict:
        return {"asset": "prices", "value": [3.5]}

    # Its own asset overwrites an unowned file (one its earlier release wrote), now owned.
    dg.materialize([prices_again], resources={"io_manager": DatedCacheIOManager(directory=str(tmp_path))})
    assert cache_owner("prices", TODAY, str(tmp_path)) == '{"asset":["prices"],"partition":null}'


# --- the Dagster layer --------------------------------------------------------------------------


@dg.asset(key=["sales", "b"])
def sales_b() -> str:
    return "sales/b, unpartitioned"


@dg.asset(key="sales", partitions_def=BY_REGION, io_manager_key="other_io")
def sales(context: dg.AssetExecutionContext) -> str:
    return f"sales partition {context.partition_key}"


@dg.asset(ins={"sales_b": dg.AssetIn(["sales", "b"])})
def sales_b_reader(sales_b: str) -> str:
    return sales_b


def _spelled_twice(first: object, second: object, tmp_path: Path) -> None:
    """`sales/b` through `io_manager`, `sales` partition (today, b) through `other_io`: both write
    `sales__b_<day>` when the two managers share a directory. The reader of `sales/b` must get
    sales/b's value, or one of the writes must be refused naming the clash."""
    defs = dg.Definitions(assets=[sales_b, sales, sales_b_reader],
                          resources={"io_manager": first, "other_io": second})
    job = defs.resolve_implicit_global_asset_job_def()
    wrote = job.execute_in_process(asset_selection=[dg.AssetKey(["sales", "b"])], raise_on_error=False)
    if not wrote.success:  # refused up front (the clash check sees one directory): it must name both
        assert "asset sales/b and asset sales would both write" in step_failures(wrote), step_failures(wrote)
        return
    other = job.execute_in_process(asset_selection=[dg.AssetKey("sales")], partition_key=REGION_B,
                                   raise_on_error=False)
    if not other.success:  # refused: it must name both
        failures = step_failures(other)
        assert "asset sales" in failures and "sales/b" in failures, failures
    read = job.execute_in_process(asset_selection=[dg.AssetKey("sales_b_reader")])
    assert read.output_for_node("sales_b_reader") == "sales/b, unpartitioned", type(first).__name__


@freeze_time(f"{TODAY} 12:00:00")
def test_a_local_path_and_its_file_url_are_one_directory(tmp_path: Path) -> None:
    where = tmp_path / "c"
    fs = str(tmp_path / "fs")
    _spelled_twice(dg.FilesystemIOManager(base_dir=fs), dg.FilesystemIOManager(base_dir=fs), tmp_path)
    _spelled_twice(DatedCacheIOManager(directory=str(where)),
                   DatedCacheIOManager(directory=f"file://{where}/"), tmp_path)


@pytest.mark.integration
@freeze_time(f"{TODAY} 12:00:00")
def test_s3_and_s3a_are_one_bucket(s3: MotoS3, tmp_path: Path) -> None:
    bucket = s3.new_bucket()
    opts = s3.options()
    fs = str(tmp_path / "fs")
    _spelled_twice(dg.FilesystemIOManager(base_dir=fs), dg.FilesystemIOManager(base_dir=fs), tmp_path)
    _spelled_twice(DatedCacheIOManager(directory=f"s3://{bucket}/z", storage_options=opts),
                   DatedCacheIOManager(directory=f"s3a://{bucket}/z/", storage_options=opts), tmp_path)
    # Each spelling in a code location of its own: the owner in the file is all that can tell.
    location_1 = dg.Definitions(assets=[sales_b, sales_b_reader], resources={
        "io_manager": DatedCacheIOManager(directory=f"s3://{bucket}/y", storage_options=opts)})
    location_2 = dg.Definitions(assets=[sales], resources={
        "other_io": DatedCacheIOManager(directory=f"s3a://{bucket}/y/", storage_options=opts)})
    job_1 = location_1.resolve_implicit_global_asset_job_def()
    assert job_1.execute_in_process(asset_selection=[dg.AssetKey(["sales", "b"])]).success
    assert cache_owner("sales__b", TODAY, f"s3a://{bucket}/y", storage_options=opts) == \
        '{"asset":["sales","b"],"partition":null}'
    other = location_2.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=REGION_B, raise_on_error=False)
    assert "belongs to asset sales/b" in step_failures(other), step_failures(other)
    read = job_1.execute_in_process(asset_selection=[dg.AssetKey("sales_b_reader")])
    assert read.output_for_node("sales_b_reader") == "sales/b, unpartitioned"


@freeze_time(f"{TODAY} 12:00:00")
@pytest.mark.parametrize("control", [True, False], ids=["FilesystemIOManager", "DatedCacheIOManager"])
def test_two_code_locations_on_one_directory(tmp_path: Path, control: bool) -> None:
    """Two separate Definitions: neither can see the other's assets, so no definition-time check
    can find the clash; the owner recorded in the file does."""

    def manager() -> dg.ConfigurableIOManager:
        if control:
            return dg.FilesystemIOManager(base_dir=str(tmp_path / "fs"))
        return DatedCacheIOManager(directory=str(tmp_path / "shared"))

    location_1 = dg.Definitions(assets=[sales_b, sales_b_reader], resources={"io_manager": manager()})
    location_2 = dg.Definitions(assets=[sales], resources={"other_io": manager()})
    job_1 = location_1.resolve_implicit_global_asset_job_def()
    job_2 = location_2.resolve_implicit_global_asset_job_def()

    assert job_1.execute_in_process(asset_selection=[dg.AssetKey(["sales", "b"])]).success
    other = job_2.execute_in_process(partition_key=REGION_B, raise_on_error=False)
    if not control:
        assert not other.success
        message = step_failures(other)
        assert CacheOwnerError.__name__ in _error_classes(other), message
        assert "asset sales (partition 2024-01-15|b)" in message and "belongs to asset sales/b" in message
    read = job_1.execute_in_process(asset_selection=[dg.AssetKey("sales_b_reader")])
    assert read.output_for_node("sales_b_reader") == "sales/b, unpartitioned"


@freeze_time(f"{TODAY} 12:00:00")
def test_a_consumer_is_never_handed_another_locations_file(tmp_path: Path) -> None:
    """Location 2 wrote `sales__b_<day>` first (partition b of `sales`); location 1's reader of
    `sales/b` finds that file by name and refuses it, naming both, and `sales/b` refuses to
    overwrite it. FilesystemIOManager's reader finds nothing (sales/b was never written)."""
    shared = str(tmp_path / "shared")
    location_1 = dg.Definitions(assets=[sales_b, sales_b_reader],
                                resources={"io_manager": DatedCacheIOManager(directory=shared)})
    location_2 = dg.Definitions(assets=[sales], resources={"other_io": DatedCacheIOManager(directory=shared)})
    assert location_2.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=REGION_B).success
    job_1 = location_1.resolve_implicit_global_asset_job_def()
    read = job_1.execute_in_process(asset_selection=[dg.AssetKey("sales_b_reader")], raise_on_error=False)
    assert not read.success
    assert CacheOwnerError.__name__ in _error_classes(read)
    assert "belongs to asset sales (partition 2024-01-15|b), not to asset sales/b" in step_failures(read)
    wrote = job_1.execute_in_process(asset_selection=[dg.AssetKey(["sales", "b"])], raise_on_error=False)
    assert "asset sales/b would overwrite" in step_failures(wrote)
    assert read_cache("sales__b", TODAY, shared) == "sales partition 2024-01-15|b"  # left as it was


fx_rates = external_cache_asset("fx_rates")


@dg.asset(metadata={"cache_prefix": "fx_rates"})
def fx_dagster() -> str:
    return "computed in Dagster"


@dg.asset
def fx_report(fx_rates: str) -> str:
    return fx_rates


@freeze_time(f"{TODAY} 12:00:00")
def test_an_asset_never_overwrites_its_external_caches_files(tmp_path: Path) -> None:
    """`fx_dagster` (cache_prefix "fx_rates") beside `external_cache_asset("fx_rates")`: the
    vendor's file (no owner) must survive and `fx_report` must receive the vendor's value."""
    directory = str(tmp_path / "c")
    save_cache("from the vendor", "fx_rates", TODAY, directory)
    defs = dg.Definitions(assets=[fx_rates, fx_dagster, fx_report],
                          resources={"io_manager": DatedCacheIOManager(directory=directory)})
    job = defs.resolve_implicit_global_asset_job_def()
    wrote = job.execute_in_process(asset_selection=[dg.AssetKey("fx_dagster")], raise_on_error=False)
    assert not wrote.success
    assert "asset fx_dagster and external asset fx_rates would both write" in step_failures(wrote)
    read = job.execute_in_process(asset_selection=[dg.AssetKey("fx_report")])
    assert read.output_for_node("fx_report") == "from the vendor"


@freeze_time(f"{TODAY} 12:00:00")
def test_an_external_caches_consumer_never_gets_a_dagster_assets_file(tmp_path: Path) -> None:
    """The same clash across two code locations: the writer cannot see the external asset, and
    the file it wrote records it, so the external asset's consumer refuses it."""
    directory = str(tmp_path / "c")
    writer = dg.Definitions(assets=[fx_dagster],
                            resources={"io_manager": DatedCacheIOManager(directory=directory)})
    reader = dg.Definitions(assets=[fx_rates, fx_report],
                            resources={"io_manager": DatedCacheIOManager(directory=directory)})
    assert writer.resolve_implicit_global_asset_job_def().execute_in_process().success
    read = reader.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[dg.AssetKey("fx_report")], raise_on_error=False)
    assert not read.success
    assert "belongs to asset fx_dagster, not to asset fx_rates" in step_failures(read)


@freeze_time(f"{TODAY} 12:00:00")
def test_a_vendor_that_names_itself_is_still_the_external_caches_writer(tmp_path: Path) -> None:
    """A writer outside Dagster may record its own name (`write_cache(..., owner=...)`): the
    external asset's consumer loads its file; a Dagster asset (another code location) must not
    overwrite it."""
    directory = str(tmp_path / "c")
    write_cache("from the vendor", "fx_rates", TODAY, directory, owner="vendor nightly job")
    reader = dg.Definitions(assets=[fx_rates, fx_report],
                            resources={"io_manager": DatedCacheIOManager(directory=directory)})
    read = reader.resolve_implicit_global_asset_job_def().execute_in_process(
        asset_selection=[dg.AssetKey("fx_report")])
    assert read.output_for_node("fx_report") == "from the vendor"
    wrote = dg.materialize([fx_dagster], resources={"io_manager": DatedCacheIOManager(directory=directory)},
                           raise_on_error=False)
    assert "belongs to writer 'vendor nightly job'" in step_failures(wrote), step_failures(wrote)
    assert read_cache("fx_rates", TODAY, directory) == "from the vendor"


@freeze_time(f"{TODAY} 12:00:00")
def test_strict_managers_never_overwrite_a_file_without_an_owner(tmp_path: Path) -> None:
    """Across code locations the writer cannot tell a vendor's file from one its own earlier
    release wrote; `overwrite_unowned_files=False` keeps every unowned file."""
    directory = str(tmp_path / "c")
    save_cache("from the vendor", "fx_rates", TODAY, directory)
    strict = DatedCacheIOManager(directory=directory, overwrite_unowned_files=False)
    wrote = dg.materialize([fx_dagster], resources={"io_manager": strict}, raise_on_error=False)
    assert not wrote.success
    assert "records no owner" in step_failures(wrote) and "overwrite_unowned_files" in step_failures(wrote)
    assert read_cache("fx_rates", TODAY, directory) == "from the vendor"


@dg.op(out=dg.Out(str, metadata={"cache_prefix": "shared_daily"}))
def make_one() -> str:
    return "one"


@dg.op(out=dg.Out(str, metadata={"cache_prefix": "shared_daily"}))
def make_two() -> str:
    return "two"


@dg.job
def job_one() -> None:
    make_one()


@dg.job
def job_two() -> None:
    make_two()


@freeze_time(f"{TODAY} 12:00:00")
def test_op_outputs_of_two_jobs_with_one_cache_prefix(tmp_path: Path) -> None:
    manager = DatedCacheIOManager(directory=str(tmp_path))
    assert job_one.execute_in_process(resources={"io_manager": manager}).success
    again = job_one.execute_in_process(resources={"io_manager": manager})  # its own file: rewritten
    assert again.success
    other = job_two.execute_in_process(resources={"io_manager": manager}, raise_on_error=False)
    assert "output 'result' of op make_two would overwrite" in step_failures(other)
    assert "belongs to output 'result' of op make_one" in step_failures(other)
    assert read_cache("shared_daily", TODAY, str(tmp_path)) == "one"


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [("/x/c", "file:///x/c", True), ("/x/c/", "file:///x/c//", True), ("/x/c", "/x/c/./", True),
     ("s3://b/z", "s3a://b/z/", True), ("S3://b/z", "s3n://b//z", True), ("gs://b/z", "gcs://b/z", True),
     ("s3://b/z", "s3://b/y", False), ("/x/c", "s3://x/c", False), ("s3://b/z", "s3://B/z", False)],
)
def test_directory_spellings(a: str, b: str, same: bool) -> None:
    assert same_directory(a, b) is same, (normalize_directory(a), normalize_directory(b))


@dg.asset(partitions_def=DAILY)
def daily_prices(context: dg.AssetExecutionContext) -> str:
    return f"prices of {context.partition_key}"


@dg.asset(partitions_def=DAILY, ins={"daily_prices": dg.AssetIn(
    partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-2, end_offset=0))})
def three_days(daily_prices: dict) -> list[str]:
    return [daily_prices[k] for k in sorted(daily_prices)]


@freeze_time(f"{TODAY} 12:00:00")
@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_range_input_refuses_a_day_another_writer_owns(tmp_path: Path, where: str) -> None:
    """Ranges read one after another (local) or on a pool (URL directories): the day whose file
    records another asset fails the load, naming it."""
    import uuid

    directory = str(tmp_path) if where == "local" else f"memory://owner-{uuid.uuid4().hex[:12]}"
    manager = DatedCacheIOManager(directory=directory)
    for day in ("2024-01-13", "2024-01-14", "2024-01-15"):
        assert dg.materialize([daily_prices], partition_key=day, resources={"io_manager": manager}).success
    write_cache("not prices", "daily_prices", "2024-01-14", directory,
                owner='{"asset":["fx"],"partition":null}')
    read = dg.materialize([daily_prices, three_days], selection=[dg.AssetKey("three_days")],
                          partition_key=TODAY, resources={"io_manager": manager}, raise_on_error=False)
    assert not read.success
    failures = step_failures(read)
    assert "daily_prices_20240114.pkl.gz belongs to asset fx, not to asset daily_prices" in failures
