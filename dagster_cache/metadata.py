"""Output metadata for DataFrames: the standard `dagster/*` table keys and a small preview."""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster import MetadataValue
from dagster._core.definitions.metadata import TableMetadataSet  # not re-exported by dagster 1.13

from cache_utils import data_fingerprint


def is_frame(value: Any) -> bool:
    """Whether `value` is a pandas DataFrame (checked without importing pandas)."""
    return type(value).__module__.startswith("pandas") and hasattr(value, "columns")


def frame_metadata(value: Any, preview_rows: int, partitioned: bool) -> dict[str, Any]:
    """Row count, column schema and a markdown preview of a DataFrame; {} for anything else."""
    if not is_frame(value):
        return {}
    columns = [dg.TableColumn(str(name), str(dtype)) for name, dtype in value.dtypes.items()]
    table = TableMetadataSet(
        row_count=len(value),
        partition_row_count=len(value) if partitioned else None,
        column_schema=dg.TableSchema(columns=columns),
    )
    meta: dict[str, Any] = dict(table)
    if preview_rows:
        meta["preview"] = MetadataValue.md(_markdown(value.head(preview_rows)))
    return meta


def _markdown(frame: Any) -> str:
    try:
        return frame.to_markdown()
    except ImportError:  # to_markdown needs the optional `tabulate` package
        return "```\n" + frame.to_string() + "\n```"


def row_count_metadata(values: list[Any]) -> dict[str, Any]:
    """`dagster/row_count` summed over the DataFrames written; {} unless every value is one."""
    if not values or not all(is_frame(v) for v in values):
        return {}
    return dict(TableMetadataSet(row_count=sum(len(v) for v in values)))


def cache_data_version(value: Any) -> dg.DataVersion:
    """The `DataVersion` of a value as `DatedCacheIOManager` will store it: its content fingerprint
    (`cache_utils.data_fingerprint`, one pickling pass, nothing compressed or written). Return it as
    `dg.Output(value, data_version=cache_data_version(value))`, so a rerun that produces the same data
    does not mark downstream assets stale.

    Args:
        value: The value the asset returns; anything picklable.
    """
    return dg.DataVersion(data_fingerprint(value))
