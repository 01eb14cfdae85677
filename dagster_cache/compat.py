"""The only place this package touches Dagster's private modules (`dagster._core...`).

Each name below has no public equivalent in Dagster 1.13; everything else uses the public `dagster`
namespace. Each import has a fallback with the value Dagster 1.13 uses, so a Dagster release that
moves a name does not break loading definitions; `tests/dagster_cache/test_compat.py` fails loudly instead
(it imports each name from its private home and compares), so the move is noticed and fixed here.
"""

from __future__ import annotations

# The scheduler stores a schedule tick's time in this hidden run tag (the public spelling
# "dagster/scheduled_execution_time" is read as well, see dates.py).
try:
    from dagster._core.storage.tags import SCHEDULED_EXECUTION_TIME_TAG
except ImportError:  # pragma: no cover - only if dagster moves it (tests/dagster_cache/test_compat.py)
    SCHEDULED_EXECUTION_TIME_TAG = ".dagster/scheduled_execution_time"

# The event tags that carry a data version (what `ObserveResult(data_version=...)` and the webserver's
# report_asset_materialization endpoint write); AssetMaterialization has no data_version parameter.
try:
    from dagster._core.definitions.data_version import DATA_VERSION_IS_USER_PROVIDED_TAG, DATA_VERSION_TAG
except ImportError:  # pragma: no cover - only if dagster moves them (tests/dagster_cache/test_compat.py)
    DATA_VERSION_TAG = "dagster/data_version"  # type: ignore[misc]
    DATA_VERSION_IS_USER_PROVIDED_TAG = "dagster/data_version_is_user_provided"

# Where each name lives in Dagster today: tests/dagster_cache/test_compat.py imports them from there.
PRIVATE_HOMES = {
    "SCHEDULED_EXECUTION_TIME_TAG": "dagster._core.storage.tags",
    "DATA_VERSION_TAG": "dagster._core.definitions.data_version",
    "DATA_VERSION_IS_USER_PROVIDED_TAG": "dagster._core.definitions.data_version",
}

__all__ = ["DATA_VERSION_IS_USER_PROVIDED_TAG", "DATA_VERSION_TAG", "SCHEDULED_EXECUTION_TIME_TAG"]
