"""Argument rules several Dagster builders share, each written once: a mistake in a builder's
argument becomes a `DagsterInvalidDefinitionError` naming the builder and the bad value
(`definition_errors`), a whole number is an `int` but not a `bool` (`is_whole`), and a time-window
partition that must exist today needs `end_offset >= 1` (`require_current_window`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg


@contextmanager
def definition_errors(builder: str) -> Iterator[None]:
    """Re-raise a TypeError/ValueError from checking `builder`'s arguments as a
    DagsterInvalidDefinitionError whose message starts with `builder`."""
    try:
        yield
    except (TypeError, ValueError) as e:
        raise dg.DagsterInvalidDefinitionError(f"{builder}: {e}") from e


def is_whole(value: Any) -> bool:
    """Whether `value` is an int and not a bool (True would pass for 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def require_current_window(pdef: Any, what: str, why: str) -> None:
    """Refuse a time-window partitions definition with `end_offset < 1`: its window containing now
    (today's, this hour's...) does not exist until the window ends. `what` names the definition's
    user, `why` says what needs the current window."""
    if isinstance(pdef, dg.TimeWindowPartitionsDefinition) and pdef.end_offset < 1:
        raise dg.DagsterInvalidDefinitionError(
            f"{what} has end_offset={pdef.end_offset}: the partition containing now (today's, this "
            f"hour's, this week's...) does not exist until its window ends, but {why}. Use "
            "end_offset=1, e.g. DailyPartitionsDefinition(..., end_offset=1)."
        )
