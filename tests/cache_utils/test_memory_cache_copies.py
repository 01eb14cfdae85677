"""InMemoryCache's copies: pandas extension arrays, offsets, object cells, Index names, Series attrs
and flags are isolated both ways. Each test failed before its fix (reliability round 2 and the
red-team round on the reliability fixes)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest

from cache_utils import (
    InMemoryCache,
)

# --- InMemoryCache copies pandas extension arrays and offsets, and object cells too --------------------


def pandas_values() -> dict[str, object]:
    import numpy as np

    return {
        "categorical": pd.Categorical(["a", "b", "a"]),
        "nullable-int": pd.array([1, None]),
        "string-array": pd.array(["x", None], dtype="string"),
        "datetime-array": pd.array(pd.to_datetime(["2024-01-01", "2024-01-02"])),
        "date-offset": pd.DateOffset(days=2),
        "timestamp": pd.Timestamp("2024-01-01"),
        "nested": {"cats": [pd.Categorical(["z"])], "offset": pd.DateOffset(months=1)},
        "object-ndarray": np.array([{"a": 1}, [1, 2]], dtype=object),
    }


@pytest.mark.parametrize("name", list(pandas_values()))
def test_memory_cache_puts_and_gets_pandas_extension_values(name: str) -> None:
    from cache_utils import InMemoryCache

    value = pandas_values()[name]
    InMemoryCache.put(value, "rel2", name)
    got = InMemoryCache.get("rel2", name)
    expected = pandas_values()[name]
    assert repr(got) == repr(expected)
    assert InMemoryCache.get("rel2", name) is not InMemoryCache.get("rel2", name) or name == "timestamp"


def test_memory_cache_isolates_object_cells_both_ways() -> None:
    import numpy as np

    from cache_utils import InMemoryCache

    frame = pd.DataFrame({"meta": [{"k": 1}, {"k": 2}], "tags": [["a"], ["b"]], "n": [1, 2]})
    series = pd.Series([{"k": 1}], dtype=object)
    array = np.array([{"k": 1}], dtype=object)
    InMemoryCache.put_many({"frame": frame, "series": series, "array": array}, "rel2-cells")
    frame.loc[0, "meta"]["k"] = 99  # the caller mutates a cell of what it put
    frame.loc[1, "tags"].append("leak")
    series.iloc[0]["k"] = 99
    array[0]["k"] = 99
    got = InMemoryCache.get_many("rel2-cells", ["frame", "series", "array"])
    assert got["frame"]["meta"].tolist() == [{"k": 1}, {"k": 2}]
    assert got["frame"]["tags"].tolist() == [["a"], ["b"]]
    assert got["series"].iloc[0] == {"k": 1} and got["array"][0] == {"k": 1}
    got["frame"].loc[0, "meta"]["k"] = -1  # and what a get returned
    got["series"].iloc[0]["k"] = -1
    got["array"][0]["k"] = -1
    again = InMemoryCache.get_many("rel2-cells", ["frame", "series", "array"])
    assert again["frame"].loc[0, "meta"] == {"k": 1}
    assert again["series"].iloc[0] == {"k": 1} and again["array"][0] == {"k": 1}


def test_string_object_columns_keep_the_cheap_copy() -> None:
    from cache_utils import InMemoryCache

    frame = pd.DataFrame({"s": pd.Series(["a", "b"], dtype=object), "d": [dt.date(2024, 1, 1)] * 2})
    InMemoryCache.put(frame, "rel2-cheap", "f")
    got = InMemoryCache.get("rel2-cheap", "f")
    stored = InMemoryCache.get("rel2-cheap", "f", default_copy=False)
    # Immutable cells are shared (no per-cell copy), and the frames are still isolated.
    assert got["s"].iloc[0] is stored["s"].iloc[0]
    got.loc[0, "s"] = "changed"
    assert InMemoryCache.get("rel2-cheap", "f").loc[0, "s"] == "a"


# --- copy isolation holes and lost data (red-team round on the reliability fixes) ----------------------


def test_memory_cache_index_name_is_shared_with_the_caller() -> None:
    """README promises copy isolation; `_copy_pandas` returns a pd.Index itself as "immutable", but
    an Index's name (and names) can be set in place, so a put value's later rename shows in the cache."""
    idx = pd.Index([1, 2, 3], name="day")
    InMemoryCache.put(idx, "idx")
    idx.name = "changed by the caller after put"
    got = InMemoryCache.get("idx")
    assert got.name == "day", (
        f"InMemoryCache.get returned an Index named {got.name!r}: the caller renamed its own Index after "
        f"put and the cached one changed too; copy an Index shallowly (idx.copy() / idx.view()) instead"
    )


def test_memory_cache_object_extension_array_cells_are_shared() -> None:
    """pd.array of object cells (a NumpyExtensionArray) goes through ExtensionArray.copy(), which copies
    the pointers only: a list cell mutated by the caller after put changes the cached value."""
    arr = pd.array([[1], [2]], dtype=object)
    InMemoryCache.put(arr, "arr")
    arr[0].append(99)
    got = InMemoryCache.get("arr")
    assert list(got[0]) == [1], (
        f"cached object array cell is {got[0]!r} after the caller mutated its own list: an object-dtype "
        f"ExtensionArray needs its cells copied like an object ndarray's (copy_value on each cell)"
    )


def test_memory_cache_object_index_cells_are_shared() -> None:
    """An object Index holding lists (pandas allows it) is returned as is: its cells are shared."""
    idx = pd.Index([[1], [2]], dtype=object)
    InMemoryCache.put(idx, "objidx")
    idx[0].append(9)
    got = InMemoryCache.get("objidx")
    assert list(got[0]) == [1], f"cached Index cell is {got[0]!r} after the caller mutated its own list"


def test_memory_cache_series_with_mutable_cells_loses_attrs_and_flags() -> None:
    """A Series whose object cells are copied is rebuilt with pd.Series(...): its attrs and flags are
    dropped (a plain Series keeps them), so get() returns different data than was put."""
    s = pd.Series([[1], [2]], name="n").set_flags(allows_duplicate_labels=False)
    s.attrs["unit"] = "kg"
    InMemoryCache.put(s, "s")
    got = InMemoryCache.get("s")
    assert (got.attrs, got.flags.allows_duplicate_labels) == ({"unit": "kg"}, False), (
        f"Series from the cache has attrs={got.attrs!r}, allows_duplicate_labels="
        f"{got.flags.allows_duplicate_labels}: build the copy from out (e.g. out.copy(deep=False) then "
        f"assign the copied cells, or __finalize__(value))"
    )
    np.testing.assert_equal(list(got), [[1], [2]])
