"""Helpers for Dagster scenarios that run DatedCacheIOManager beside Dagster's own
FilesystemIOManager, the control: where the control is right, ours must be too."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from dagster_cache import DatedCacheIOManager


def ours(tmp_path: Path, sub: str = "ours") -> DatedCacheIOManager:
    """Our IO manager on `tmp_path / sub`."""
    return DatedCacheIOManager(directory=str(tmp_path / sub))


def dagsters(tmp_path: Path) -> dg.FilesystemIOManager:
    """The control: Dagster's own filesystem IO manager on `tmp_path / "fs"`."""
    return dg.FilesystemIOManager(base_dir=str(tmp_path / "fs"))


def step_failures(result: dg.ExecuteInProcessResult) -> str:
    """Every step failure's error of a run, joined: what a test matches an error message against."""
    return "; ".join(
        str(e.step_failure_data.error) for e in result.all_events if e.event_type_value == "STEP_FAILURE"
    )
