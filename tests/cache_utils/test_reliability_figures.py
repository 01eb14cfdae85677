"""The measurements behind docs/reliability.md's figures (benchmarks/reliability_figures.py prints
them): hangs bounded, bad alert settings survived, secrets never logged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd  # noqa: F401 - imported before any freeze_time (pandas#64023)
import pytest

# --- the figures' measurements (benchmarks/reliability_figures.py prints them) -------------------------


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_measured_hangs_are_bounded(tmp_path: Path) -> None:
    from tests.support.scenarios import measure_hangs

    rows = measure_hangs(str(tmp_path), with_moto=False)
    assert len(rows) == 5 and all(r["ok"] for r in rows), rows


@pytest.mark.integration
def test_measured_bad_alert_settings_are_survived(tmp_path: Path) -> None:
    from tests.support.opsgenie_fake import FakeOpsGenie
    from tests.support.scenarios import BAD_TIMEOUTS, measure_bad_alert_settings

    with FakeOpsGenie() as server:
        rows = measure_bad_alert_settings(str(tmp_path), server.url, "og-key")
    assert [r["value"] for r in rows] == BAD_TIMEOUTS
    assert all(r["ok"] for r in rows), rows


@pytest.mark.integration
def test_measured_secret_forms_never_reach_the_logs(tmp_path: Path) -> None:
    from tests.support.opsgenie_fake import FakeOpsGenie
    from tests.support.scenarios import measure_secret_forms

    with FakeOpsGenie("500") as server:
        result = measure_secret_forms(str(tmp_path), server.url)
    assert result["data_ok"] and result["records"] > 0
    assert result["leaks"] == 0, result
