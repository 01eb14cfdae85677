"""Every bad input gives the documented error type with a message naming the value.

The table lives in `tests/support/scenarios.py` (`bad_input_cases`) so that
`benchmarks/reliability_figures.py` prints the same table into docs/reliability.md.
"""

from __future__ import annotations

import os

import pytest

from tests.support.scenarios import bad_input_cases, run_bad_inputs

_CASES = bad_input_cases(os.path.join(os.path.dirname(__file__), "__never_created__"))


@pytest.mark.parametrize(
    ("what", "shown", "index"),
    [(c[0], c[1], i) for i, c in enumerate(_CASES)],
    ids=[c[1] for c in _CASES],
)
def test_bad_input(tmp_path, what, shown, index):
    _what, _shown, call, expected, needle = bad_input_cases(str(tmp_path))[index]
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(expected) as info:
        call()
    assert needle in str(info.value), f"{shown}: message {info.value!s} does not name {needle!r}"
    assert sorted(os.listdir(tmp_path)) == before  # nothing half-written


def test_table_runner_agrees(tmp_path):
    rows = run_bad_inputs(str(tmp_path))
    assert len(rows) >= 45
    assert [r["call"] for r in rows if r["ok"] != "True"] == []
    assert {r["what"] for r in rows} >= {"prefix", "date", "cb_time", "directory", "key", "config",
                                         "retry_interval", "keep", "level", "timezone"}
