"""Output metadata for data frames: the standard `dagster/*` table keys and a small preview.

pandas and Polars `DataFrame`s and pyarrow `Table`s get the same metadata: `dagster/row_count`
(and `dagster/partition_row_count` for a partition), `dagster/column_schema` and a markdown
`preview` of the first rows. A value is recognised by its type's module, so none of the three
libraries is imported unless the value is one of its objects (they stay optional).

A Polars `LazyFrame` is refused before anything is written (`refuse_lazy`): its pickle holds a
query plan, not data (the plan may read files that change or vanish later), which is not a
snapshot a daily cache promises. Return `lazy_frame.collect()` instead.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
from dagster import MetadataValue

from cache_utils import data_fingerprint

# Dagster's documented table metadata keys (what its TableMetadataSet writes).
ROW_COUNT_KEY = "dagster/row_count"
PARTITION_ROW_COUNT_KEY = "dagster/partition_row_count"
COLUMN_SCHEMA_KEY = "dagster/column_schema"


def _kind(value: Any) -> str | None:
    """"pandas", "polars" or "arrow" for a DataFrame / Table of that library, else None."""
    cls = type(value)
    module = cls.__module__
    if module.startswith("pandas") and hasattr(value, "columns") and hasattr(value, "dtypes"):
        return "pandas"
    if module.startswith("polars") and cls.__name__ == "DataFrame":
        return "polars"
    if module.startswith("pyarrow") and cls.__name__ == "Table":
        return "arrow"
    return None


def is_frame(value: Any) -> bool:
    """Whether `value` is a pandas or Polars DataFrame or a pyarrow Table (no library imported)."""
    return _kind(value) is not None


def is_lazy_frame(value: Any) -> bool:
    """Whether `value` is a Polars LazyFrame (checked without importing Polars)."""
    cls = type(value)
    return cls.__module__.startswith("polars") and cls.__name__ == "LazyFrame"


def refuse_lazy(what: str, values: list[Any]) -> None:
    """Raise a clear error when a value to write is a Polars LazyFrame (see the module docstring).

    Raises:
        TypeError: One of `values` is a LazyFrame; the message says to collect it.
    """
    if any(is_lazy_frame(v) for v in values):
        raise TypeError(
            f"{what} returned a polars LazyFrame: a cache file holds data, but a LazyFrame pickles "
            "only its query plan (which may read files that change or vanish). Return "
            "`lazy_frame.collect()` (a polars DataFrame) instead."
        )


def _columns(value: Any, kind: str) -> list[dg.TableColumn]:
    if kind == "pandas":
        return [dg.TableColumn(str(name), str(dtype)) for name, dtype in value.dtypes.items()]
    if kind == "polars":
        return [dg.TableColumn(str(name), str(dtype)) for name, dtype in value.schema.items()]
    return [dg.TableColumn(str(field.name), str(field.type)) for field in value.schema]


def _rows(value: Any, kind: str) -> int:
    return int(value.num_rows) if kind == "arrow" else len(value)


def frame_metadata(value: Any, preview_rows: int, partitioned: bool) -> dict[str, Any]:
    """Row count, column schema and a markdown preview of a frame or table; {} for anything else."""
    kind = _kind(value)
    if kind is None:
        return {}
    rows = _rows(value, kind)
    meta: dict[str, Any] = {
        ROW_COUNT_KEY: MetadataValue.int(rows),
        COLUMN_SCHEMA_KEY: MetadataValue.table_schema(dg.TableSchema(columns=_columns(value, kind))),
    }
    if partitioned:
        meta[PARTITION_ROW_COUNT_KEY] = MetadataValue.int(rows)
    if preview_rows:
        meta["preview"] = MetadataValue.md(_preview(value, kind, preview_rows))
    return meta


def _preview(value: Any, kind: str, rows: int) -> str:
    """The first `rows` rows as a markdown table (pandas: its own to_markdown when tabulate is there)."""
    if kind == "pandas":
        try:
            return str(value.head(rows).to_markdown())
        except ImportError:  # to_markdown needs the optional `tabulate` package
            pass
        names = [str(c) for c in value.columns]
        body = [[_cell(v) for v in row] for row in value.head(rows).itertuples(index=False)]
    elif kind == "polars":
        names = [str(c) for c in value.columns]
        body = [[_cell(v) for v in row] for row in value.head(rows).iter_rows()]
    else:
        names = [str(n) for n in value.column_names]
        head = value.slice(0, rows).to_pylist()
        body = [[_cell(row[n]) for n in value.column_names] for row in head]
    lines = ["| " + " | ".join(_cell(n) for n in names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    """One markdown table cell: pipes escaped, newlines flattened, long text shortened."""
    text = str(value).replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= 80 else text[:77] + "..."


def row_count_metadata(values: list[Any]) -> dict[str, Any]:
    """`dagster/row_count` summed over the frames written; {} unless every value is one."""
    kinds = [_kind(v) for v in values]
    if not values or None in kinds:
        return {}
    total = sum(_rows(v, str(k)) for v, k in zip(values, kinds))
    return {ROW_COUNT_KEY: MetadataValue.int(total)}


def cache_data_version(value: Any) -> dg.DataVersion:
    """The `DataVersion` of a value as `DatedCacheIOManager` will store it: its content fingerprint
    (`cache_utils.data_fingerprint`, one pickling pass, nothing compressed or written). Return it as
    `dg.Output(value, data_version=cache_data_version(value))`, so a rerun that produces the same data
    does not mark downstream assets stale.

    Args:
        value: The value the asset returns; anything picklable.
    """
    return dg.DataVersion(data_fingerprint(value))
