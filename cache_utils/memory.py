"""`InMemoryCache`: a process-wide, thread-safe cache with hierarchical tuple keys.

The lock is held only around the dict operation; copying a value happens outside it, so a
large copy never stalls other threads. DataFrames and Series are copied with pandas'
copy-on-write (`copy(deep=False)`), which costs microseconds whatever their size; only the cells
of object columns that hold mutable Python objects (dicts, lists) are copied one by one.
One copy keeps the value's shape the way `copy.deepcopy` does: an object reached twice is copied
once, and a value that contains itself is copied with its cycle.
"""

from __future__ import annotations

import copy as _copy
import datetime as dt
import threading
from collections.abc import Hashable, Iterable, Mapping
from typing import Any, ClassVar

MemoryKey = tuple[Hashable, ...]
MemoryKeyPart = Hashable | list[Hashable] | tuple[Hashable, ...]

_IMMUTABLE: frozenset[type] = frozenset(
    {int, float, complex, bool, str, bytes, type(None), frozenset, range,
     dt.date, dt.datetime, dt.time, dt.timedelta}
)


def copy_value(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """A copy that shares nothing mutable with `value`: containers at any depth are copied,
    pandas objects use copy-on-write, immutable scalars are returned as they are.

    Like `copy.deepcopy`, an object reached twice is copied once (shared sub-objects stay shared
    in the copy, cycles included): `memo` maps the id of each object copied so far to its copy,
    and is the very dict handed to `copy.deepcopy` for the other types, so both keep one map.

    Args:
        value: The object to copy.
        memo: The ids already copied in this copy; None starts a new one.
    """
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if memo is not None:
        return _copy_shared(value, kind, memo)
    # The top-level dict or list (the common value) needs no memo until it holds a container.
    if kind is dict:  # copy at C speed, then replace only the values that are not immutable
        out = value.copy()
        for k, v in out.items():
            if type(v) not in _IMMUTABLE:
                if memo is None:
                    memo = {id(value): out}
                out[k] = _copy_shared(v, type(v), memo)  # replacing a value while iterating is allowed
        return out
    if kind is list:
        out = value.copy()
        for i, v in enumerate(out):
            if type(v) not in _IMMUTABLE:
                if memo is None:
                    memo = {id(value): out}
                out[i] = _copy_shared(v, type(v), memo)
        return out
    return _copy_shared(value, kind, {})


def _copy_shared(value: Any, kind: type, memo: dict[int, Any]) -> Any:
    """`copy_value` of a mutable `value` of type `kind`, through `memo`. Its keys are ids of
    objects inside the value being copied, which the caller keeps alive, so no id is reused."""
    vid = id(value)
    found = memo.get(vid)  # a copy is never None: None is immutable, never copied
    if found is not None:
        return found
    if kind is dict:
        out = value.copy()
        memo[vid] = out  # before the values: a cycle back to this dict finds its copy
        for k, v in out.items():
            if type(v) not in _IMMUTABLE:
                out[k] = _copy_shared(v, type(v), memo)
        return out
    if kind is list:
        out = value.copy()
        memo[vid] = out
        for i, v in enumerate(out):
            if type(v) not in _IMMUTABLE:
                out[i] = _copy_shared(v, type(v), memo)
        return out
    if kind is tuple:
        items = tuple(v if type(v) in _IMMUTABLE else _copy_shared(v, type(v), memo) for v in value)
        # A cycle through a member may have copied this tuple already (as deepcopy handles it).
        found = memo.get(vid)
        if found is not None:
            return found
        out = value if all(a is b for a, b in zip(items, value)) else items
    elif kind is set:
        out = set(value)
    elif kind.__module__.startswith("pandas"):
        out = _copy_pandas(value, memo)
    elif kind.__module__ == "numpy" and hasattr(value, "copy") and not getattr(
            value.dtype, "hasobject", True):
        out = value.copy()
    else:
        # Anything else, and object arrays (their copy() would share the cells): deepcopy, with
        # this memo (it records its copies there itself).
        return _copy.deepcopy(value, memo)
    memo[vid] = out
    return out


# What pandas.api.types.infer_dtype reports for object columns whose cells are all immutable.
_IMMUTABLE_CELLS = frozenset({
    "empty", "string", "bytes", "integer", "floating", "mixed-integer-float", "decimal", "complex",
    "boolean", "datetime64", "datetime", "date", "timedelta64", "timedelta", "time", "period", "interval",
})


def _has_mutable_cells(pd: Any, column: Any) -> bool:
    return pd.api.types.is_object_dtype(column.dtype) and (
        pd.api.types.infer_dtype(column, skipna=True) not in _IMMUTABLE_CELLS
    )


def _copy_pandas(value: Any, memo: dict[int, Any]) -> Any:
    import pandas as pd  # already imported: `value` is a pandas object

    if isinstance(value, pd.DataFrame | pd.Series):
        # pandas >= 3 is always copy-on-write: a shallow copy is isolated from later writes to
        # the frame itself. Cells of object columns are Python objects it would share: copy
        # those (only when a cell could be mutated: dicts, lists, arrays...).
        out = value.copy(deep=False)
        columns = [out] if isinstance(out, pd.Series) else [out.iloc[:, i] for i in range(out.shape[1])]
        for i, column in enumerate(columns):
            if _has_mutable_cells(pd, column):
                cells = pd.Series([copy_value(v, memo) for v in column], index=column.index, name=column.name,
                                  dtype=object)
                if isinstance(out, pd.Series):
                    return cells.__finalize__(value)  # attrs and flags, as copy() keeps them
                out.isetitem(i, cells)
        return out
    if isinstance(value, pd.Index):
        # Immutable data, but a settable `name`; an object Index may hold mutable cells.
        if _has_mutable_cells(pd, value) and not isinstance(value, pd.MultiIndex):
            return pd.Index([copy_value(v, memo) for v in value], dtype=object, name=value.name)
        return value.copy()
    if isinstance(value, pd.api.extensions.ExtensionArray):
        if pd.api.types.is_object_dtype(value.dtype):  # copy() would share the cells
            return _copy.deepcopy(value, memo)
        return value.copy()  # copy() takes no `deep` here: it copies the data
    return _copy.deepcopy(value, memo)  # DateOffset, Timestamp, Interval, ...


def normalize_key(prefix_keys: MemoryKeyPart, keys: Iterable[Hashable] = ()) -> MemoryKey:
    """`("users", "john")`, `(["users"], "john")` and `(("users", "john"),)` all give
    `("users", "john")`: the prefix is flattened one level, the other keys are kept whole.

    Args:
        prefix_keys: First key part, or a list/tuple of parts.
        keys: Further key parts.

    Raises:
        ValueError: The key is empty.
        TypeError: A key part is not hashable.
    """
    if type(prefix_keys) is str:
        head: MemoryKey = (prefix_keys,)
    elif isinstance(prefix_keys, list | tuple):
        head = tuple(prefix_keys)
    else:
        head = (prefix_keys,)
    key = head + tuple(keys)
    if not key:
        raise ValueError("cache key must not be empty")
    try:
        hash(key)
    except TypeError as e:
        raise TypeError(f"cache key parts must be hashable, got {key!r}") from e
    return key


class InMemoryCache:
    """Thread-safe process-wide cache; every method is a classmethod (one shared store)."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _cache_data: ClassVar[dict[MemoryKey, Any]] = {}
    _stash_id: ClassVar[int] = 0

    # --- the original API -------------------------------------------------------------

    @classmethod
    def get(cls, prefix_keys: MemoryKeyPart, *keys: Hashable, default_copy: bool = True) -> Any:
        """The value stored under the key, a copy by default; None when missing.

        Args:
            prefix_keys: First key part, or a list/tuple of parts (flattened one level).
            *keys: Further key parts.
            default_copy: Return a copy (True) or the stored object itself (False).
        """
        # The hot path: a str prefix needs no normalizing; a bad key is explained on failure.
        key = (prefix_keys,) + keys if type(prefix_keys) is str else normalize_key(prefix_keys, keys)
        try:
            with cls._lock:
                value = cls._cache_data.get(key)
        except TypeError:
            normalize_key(prefix_keys, keys)  # raises the clear error for an unhashable part
            raise
        if default_copy and type(value) not in _IMMUTABLE:
            return copy_value(value)
        return value

    @classmethod
    def get_many(
        cls,
        prefix_keys: MemoryKeyPart,
        list_or_dict: Iterable[Hashable] | dict[Hashable, Any],
        default_copy: bool = True,
    ) -> dict[Hashable, Any]:
        """Several values under one prefix. A list gives {key: value} of those found; a dict is
        filled in place (its values are the defaults for keys not cached) and returned.

        Args:
            prefix_keys: First key part, or a list/tuple of parts (flattened one level).
            list_or_dict: Last key parts to look up: an iterable, or a dict of defaults.
            default_copy: Return copies (True) or the stored objects themselves (False).
        """
        head = normalize_key(prefix_keys)
        wanted = list(list_or_dict)
        missing = object()
        with cls._lock:
            found = [(k, cls._cache_data.get(head + (k,), missing)) for k in wanted]
        result = list_or_dict if isinstance(list_or_dict, dict) else {}
        for k, value in found:
            if value is not missing:
                result[k] = copy_value(value) if default_copy else value
        return result

    @classmethod
    def get_state(cls, prefix_keys: MemoryKeyPart, autogen_key: Hashable) -> Any:
        """The state stored by `put_state`, itself (not a copy): callers share it.

        Args:
            prefix_keys: First key part, or a list/tuple of parts (flattened one level).
            autogen_key: The key `put_state` returned.
        """
        return cls.get(prefix_keys, autogen_key, default_copy=False)

    @classmethod
    def put(cls, data: Any, prefix_keys: MemoryKeyPart, *keys: Hashable) -> None:
        """Store a copy of `data` under the key.

        Args:
            data: The value to store (copied).
            prefix_keys: First key part, or a list/tuple of parts (flattened one level).
            *keys: Further key parts.
        """
        key = (prefix_keys,) + keys if type(prefix_keys) is str else normalize_key(prefix_keys, keys)
        value = data if type(data) in _IMMUTABLE else copy_value(data)
        try:
            with cls._lock:
                cls._cache_data[key] = value
        except TypeError:
            normalize_key(prefix_keys, keys)  # raises the clear error for an unhashable part
            raise

    @classmethod
    def put_many(cls, data_dict: Mapping[Hashable, Any], prefix_keys: MemoryKeyPart) -> None:
        """Store each item of `data_dict` under `prefix_keys + (key,)`, all at once.

        Args:
            data_dict: {last key part: value}; each value is copied.
            prefix_keys: First key part, or a list/tuple of parts (flattened one level).
        """
        head = normalize_key(prefix_keys)
        items = {head + (k,): copy_value(v) for k, v in data_dict.items()}
        with cls._lock:
            cls._cache_data.update(items)

    @classmethod
    def put_state(
        cls, state: Any, prefix_keys: MemoryKeyPart, autogen_key: Hashable | None = None
    ) -> Hashable:
        """Store `state` itself (no copy) and return its key, `agk_<timestamp>_<id>` if not given.

        Args:
            state: The object to store as is, shared by every caller.
            prefix_keys: First key part, or a list/tuple of parts (flattened one level).
            autogen_key: Last key part; None generates a unique one.
        """
        head = normalize_key(prefix_keys)
        stamp = dt.datetime.now().strftime("%Y%m%d%H%M%S%f")
        with cls._lock:
            if autogen_key is None:
                cls._stash_id += 1  # under the lock: unique even within one microsecond
                autogen_key = f"agk_{stamp}_{cls._stash_id}"
            cls._cache_data[head + (autogen_key,)] = state
        return autogen_key

    # --- additions ----------------------------------------------------------------------

    @classmethod
    def delete(cls, prefix_keys: MemoryKeyPart, *keys: Hashable) -> bool:
        """Remove one entry; True if it existed.

        Args:
            prefix_keys: First key part, or a list/tuple of parts (flattened one level).
            *keys: Further key parts.
        """
        key = normalize_key(prefix_keys, keys)
        with cls._lock:
            return cls._cache_data.pop(key, _ABSENT) is not _ABSENT

    @classmethod
    def clear(cls, prefix_keys: MemoryKeyPart | None = None, *keys: Hashable) -> int:
        """Remove every entry under a key prefix (everything when none); return how many.

        Args:
            prefix_keys: First key part(s), or a list/tuple of parts; None means every entry.
            *keys: Further key parts.
        """
        if prefix_keys is None:
            with cls._lock:
                count = len(cls._cache_data)
                cls._cache_data.clear()
            return count
        head = normalize_key(prefix_keys, keys)
        n = len(head)
        with cls._lock:
            doomed = [k for k in cls._cache_data if k[:n] == head]
            for k in doomed:
                del cls._cache_data[k]
        return len(doomed)

    @classmethod
    def keys(cls, prefix_keys: MemoryKeyPart | None = None, *keys: Hashable) -> list[MemoryKey]:
        """Every full key under a key prefix (all keys when none), sorted by repr.

        Args:
            prefix_keys: First key part(s), or a list/tuple of parts; None means every entry.
            *keys: Further key parts.
        """
        with cls._lock:
            snapshot = list(cls._cache_data)
        if prefix_keys is not None:
            head = normalize_key(prefix_keys, keys)
            snapshot = [k for k in snapshot if k[: len(head)] == head]
        return sorted(snapshot, key=repr)

    @classmethod
    def contains(cls, prefix_keys: MemoryKeyPart, *keys: Hashable) -> bool:
        """Whether a value is stored under exactly this key.

        Args:
            prefix_keys: First key part, or a list/tuple of parts (flattened one level).
            *keys: Further key parts.
        """
        key = normalize_key(prefix_keys, keys)
        with cls._lock:
            return key in cls._cache_data

    # --- internals kept from the original API ------------------------------------------

    @classmethod
    def _assume_locked_get(cls, keys: Iterable[Hashable], default_copy: bool = True) -> Any:
        """Get with the lock already held by the caller."""
        value = cls._cache_data.get(tuple(keys))
        return copy_value(value) if default_copy else value

    @classmethod
    def _assume_locked_put(cls, data: Any, keys: Iterable[Hashable]) -> None:
        """Put with the lock already held by the caller."""
        cls._cache_data[tuple(keys)] = data

    @classmethod
    def _combine_prefix_with_keys(
        cls, prefix_keys: MemoryKeyPart, keys: Iterable[Hashable], prepare_prefix_keys: bool = False
    ) -> MemoryKey:
        """The full tuple key for a prefix and further key parts."""
        return normalize_key(prefix_keys, keys)


_ABSENT = object()
