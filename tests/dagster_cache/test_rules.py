"""Issue 20, items 5 and 6 (Dagster side): the rules written once (`dagster_cache.rules`,
`cache_utils._numbers`), the one concurrent range read (`dagster_cache.files.read_many`), the one
"no step context" path (`dagster_cache.context.step_of`), and the Dagster modules' size and
opening docstrings."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

import dagster as dg
import pytest

from cache_utils._numbers import is_number, is_whole
from dagster_cache import rules
from dagster_cache.context import days_written_by_run, is_external, record_stale, run_id_of, step_of
from dagster_cache.files import read_many

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("check", [is_whole, rules.is_whole])
def test_a_whole_number_is_an_int_but_not_a_bool(check) -> None:
    assert check(3) and check(0) and check(-1)
    assert not any(check(v) for v in (True, False, 3.0, "3", None))


def test_a_number_is_an_int_or_float_but_not_a_bool() -> None:
    assert is_number(3) and is_number(2.5)
    assert not any(is_number(v) for v in (True, "3", None))


def test_definition_errors_name_the_builder_and_keep_the_cause() -> None:
    refused = pytest.raises(dg.DagsterInvalidDefinitionError, match=r"^my_builder: bad 'x'$")
    with refused as raised, rules.definition_errors("my_builder"):
        raise ValueError("bad 'x'")
    assert isinstance(raised.value.__cause__, ValueError)
    with pytest.raises(KeyError), rules.definition_errors("my_builder"):  # other errors pass through
        raise KeyError("k")


def test_the_current_window_rule_names_the_user_and_the_offset() -> None:
    rules.require_current_window(dg.DailyPartitionsDefinition("2024-01-01", end_offset=1), "x", "y")
    rules.require_current_window(dg.StaticPartitionsDefinition(["a"]), "x", "y")  # not a time window
    message = r"^thing has end_offset=0: .* but it is written now\. Use end_offset=1"
    with pytest.raises(dg.DagsterInvalidDefinitionError, match=message):
        rules.require_current_window(dg.DailyPartitionsDefinition("2024-01-01"), "thing", "it is written now")


@pytest.mark.parametrize("workers", [1, 4])
def test_read_many_yields_in_order_and_raises_a_failure_at_its_turn(workers: int) -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def read(n: int) -> int:
        with lock:
            seen.append(n)
        if n == 3:
            raise OSError("read 3 failed")
        return n * 10

    got: list[int] = []
    with pytest.raises(OSError, match="read 3 failed"):
        for value in read_many(read, [0, 1, 2, 3, 4, 5], workers):
            got.append(value)
    assert got == [0, 10, 20]  # every value before the failing one, in order
    assert list(read_many(lambda n: n, [5, 4, 3], workers)) == [5, 4, 3]


def test_contexts_built_without_a_run_take_the_one_no_step_context_path() -> None:
    out = dg.build_output_context(asset_key="a")
    inp = dg.build_input_context(asset_key="a", upstream_output=out)
    assert step_of(inp) is None and step_of(out) is None
    assert run_id_of(out) is None
    assert days_written_by_run(inp) == {}
    assert is_external(inp) is False
    record_stale(inp, {})  # nothing to record on: returns quietly


@pytest.mark.parametrize("module", sorted(p.name for p in (ROOT / "dagster_cache").glob("*.py")))
def test_each_dagster_module_opens_with_a_docstring_and_stays_small(module: str) -> None:
    source = (ROOT / "dagster_cache" / module).read_text()
    assert ast.get_docstring(ast.parse(source)), f"{module} has no opening docstring"
    assert len(source.splitlines()) <= 620, f"{module} is over about 600 lines"
