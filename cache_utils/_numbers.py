"""Argument rules the library shares: a whole number is an `int` but not a `bool`, a number an `int`
or `float` but not a `bool` (True would otherwise pass for 1). Private: `dagster_cache` has its own
copy in `dagster_cache.rules`, since it may import only `cache_utils.__all__`."""

from __future__ import annotations

from typing import TypeGuard


def is_whole(value: object) -> TypeGuard[int]:
    """Whether `value` is an int and not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[int | float]:
    """Whether `value` is an int or a float and not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)
