"""Freshness of daily caches in Dagster's terms: the current `FreshnessPolicy` where it gives the
right answer, and the one place the superseded freshness-check factories are still called.

Dagster 1.13's `FreshnessPolicy` (set on an asset, shown as the asset's freshness status in the UI)
judges an asset by its newest materialization of *any* partition. That is the right answer for an
unpartitioned daily cache ("updated today before cb_time"), so `cache_freshness_policy` gives one.
For a daily-partitioned cache it is not: a backfill of last week's partition at 06:00 would make
the asset look fresh although today's partition is missing. Per-partition freshness ("today's
partition exists after cb_time") still needs `build_time_partition_freshness_checks`, which
Dagster marks superseded; `superseded_freshness` is the only caller of those factories.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import dagster as dg

from cache_utils.integration import TimeType, parse_cb_time

from .dates import zone

# What the Checks tab shows for our freshness checks instead of Dagster's generic "Evaluates
# freshness for targeted asset." ({deadline} is "06:30 Europe/London").
PARTITION_FRESHNESS_TEXT = (
    "Today's partition must be materialized (or reported by the observation sensor) by {deadline} each "
    "day; after that time this check fails until it is."
)
LAST_UPDATED_KEY = "dagster/last_updated_timestamp"  # what Dagster's last-update check records
LAST_UPDATE_FRESHNESS_TEXT = (
    "The asset must be updated every day between midnight and {deadline}; after that time this check "
    "fails until it is."
)


def cache_freshness_policy(cb_time: TimeType, timezone: str = "UTC") -> dg.FreshnessPolicy:
    """The `dg.FreshnessPolicy` of an unpartitioned daily cache: updated each day between midnight
    and `cb_time` in `timezone` (a run after cb_time makes it fresh again until the next deadline).
    Pass it as `@dg.asset(freshness_policy=...)`; the UI then shows the asset's freshness status.

    Not for daily-partitioned assets: a policy judges the newest materialization of any partition
    (see this module's docstring); `build_cache_freshness_checks` covers those.

    Args:
        cb_time: Daily time today's data is due: a `datetime.time` or "HH:MM" / "HH:MM:SS".
        timezone: IANA zone of `cb_time`, e.g. "Europe/London".

    Raises:
        DagsterInvalidDefinitionError: A bad argument, named in the message.
    """
    try:
        cb = parse_cb_time(cb_time)
        zone(timezone)
    except (TypeError, ValueError) as e:
        raise dg.DagsterInvalidDefinitionError(f"cache_freshness_policy: {e}") from e
    since_midnight = dt.timedelta(hours=cb.hour, minutes=cb.minute)
    # A deadline at midnight: the previous whole day counts (the window cannot be empty).
    window = since_midnight if since_midnight >= dt.timedelta(minutes=1) else dt.timedelta(days=1)
    return dg.FreshnessPolicy.cron(deadline_cron=f"{cb.minute} {cb.hour} * * *", lower_bound_delta=window,
                                   timezone=timezone)


def superseded_freshness(factory: Callable[..., Any], deadline: str = "", **kwargs: Any) -> Any:
    """Call one of Dagster's superseded freshness factories (`build_time_partition_freshness_checks`,
    `build_last_update_freshness_checks`, `build_sensor_for_freshness_checks`): their
    `SupersessionWarning` is muted here, for this call only, because no current API answers
    "is today's partition there" (module docstring). Checks built get our description
    (`deadline`, e.g. "06:30 UTC", goes into it) instead of Dagster's generic one.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.SupersessionWarning)
        built = factory(**kwargs)
    if isinstance(built, dg.SensorDefinition):
        return _named_target(built, kwargs["freshness_checks"], kwargs.get("default_status"))
    if not isinstance(built, Sequence):
        return built
    text = (PARTITION_FRESHNESS_TEXT if factory is dg.build_time_partition_freshness_checks
            else LAST_UPDATE_FRESHNESS_TEXT).format(deadline=deadline or "the deadline")
    if factory is dg.build_last_update_freshness_checks:
        tz = kwargs.get("timezone") or "UTC"
        return [_reworded(checks, text, deadline or "the deadline", tz) for checks in built]
    return [_described(checks, text) for checks in built]


def _reworded(
    checks: dg.AssetChecksDefinition, text: str, deadline: str, tz: str
) -> dg.AssetChecksDefinition:
    """The last-update checks with our description, and results in words: Dagster's say "The last
    update was 22 hours, 27 minutes, 50 seconds ago, which is past the allowed distance of ..."."""
    specs = [spec._replace(description=text) for spec in checks.check_specs]
    evaluate = checks.node_def.compute_fn.decorated_fn  # type: ignore[attr-defined]

    @dg.multi_asset_check(specs=specs, can_subset=True, name=checks.node_def.name)
    # No annotation: this module's annotations are strings, and Dagster inspects the context's.
    def reworded(context):  # type: ignore[no-untyped-def]
        for result in evaluate(context):
            yield result._replace(description=last_update_words(result, deadline, zone(tz)))

    return reworded


def last_update_words(result: dg.AssetCheckResult, deadline: str, tz: dt.tzinfo) -> str:
    """A last-update freshness result in words, from the metadata Dagster's check records."""
    stamp: Any = result.metadata.get(LAST_UPDATED_KEY)
    if stamp is None:
        return f"Never materialized: an update is due each day by {deadline}."
    when = dt.datetime.fromtimestamp(float(getattr(stamp, "value", stamp)), tz)
    text = f"Last updated {when:%Y-%m-%d at %H:%M} ({_ago(when)})"
    if result.passed:
        return f"{text}, within today's window: fresh until the next deadline ({deadline})."
    return f"Overdue: {text}; an update was due today by {deadline}."


def _ago(when: dt.datetime) -> str:
    """About how long ago, in one unit: "about 22 hours ago", "3 days ago", "just now"."""
    seconds = (dt.datetime.now(when.tzinfo) - when).total_seconds()
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = round(seconds / size)
            return f"about {count} {unit}{'' if count == 1 else 's'} ago"
    return "just now"


def _named_target(
    sensor: dg.SensorDefinition, checks: Sequence[dg.AssetChecksDefinition], default_status: Any
) -> dg.SensorDefinition:
    """Dagster's freshness sensor, targeting a job named `<sensor>_job` (its check keys) instead of a
    check selection, which the UI shows as a raw Python repr ("AssetCheckKeysSelection(...)"),
    and with a description saying what it does. Its evaluation is Dagster's, unchanged."""
    keys = [spec.key for c in checks for spec in c.check_specs]
    assets = sorted({k.asset_key.to_user_string() for k in keys})
    job = dg.define_asset_job(
        f"{sensor.name}_job", selection=dg.AssetSelection.checks(*keys),
        description=f"Runs the freshness checks of {', '.join(assets)}.")
    return dg.SensorDefinition(
        name=sensor.name, evaluation_fn=lambda context: sensor(context), job=job,
        minimum_interval_seconds=sensor.minimum_interval_seconds,
        default_status=default_status or dg.DefaultSensorStatus.STOPPED,
        description=f"Runs the freshness checks of {', '.join(assets)} when one may have become "
        "overdue (after each day's deadline) and not while it passes.",
    )


def _described(checks: dg.AssetChecksDefinition, text: str) -> dg.AssetChecksDefinition:
    """The same checks (same op, same specs and metadata) with `text` as each check's description."""
    specs = {name: spec._replace(description=text)
             for name, spec in checks.check_specs_by_output_name.items()}
    return dg.AssetChecksDefinition.create(
        keys_by_input_name=checks.keys_by_input_name, node_def=checks.node_def,  # type: ignore[arg-type]
        check_specs_by_output_name=specs, can_subset=checks.can_subset,
    )
