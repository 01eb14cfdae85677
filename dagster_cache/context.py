"""Step-context introspection: what a run knows about the step an IO manager runs in.

The IO manager asks Dagster's step context for the run's id and tags, the step's asset definition
(its backfill policy and partition mappings), the code location's assets (for clashes), the event
log (which day an upstream run wrote) and the consumer's outputs (to record stale inputs). Contexts
built for unit tests (`dg.build_input_context`, `dg.build_output_context`) have no step context:
`step_of` is the one place that says so, and every helper here then answers as outside a run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import InputContext, MetadataValue, OutputContext

from cache_utils.integration import parse_file_name

# Output metadata key on a consumer's materialization built from a stale (fallback) input.
STALE_INPUTS_KEY = "dagster_cache/stale_inputs"
STALE_RUN_TAG = "dagster_cache/stale_inputs"


def step_of(context: Any) -> Any | None:
    """The context's step execution context, or None for a context built without a run."""
    try:
        return context.step_context
    except Exception:  # noqa: BLE001 - built by build_*_context: no step to inspect
        return None


def run_id_of(context: InputContext | OutputContext) -> str | None:
    """The id of the run that wrote (or writes) an output; None for contexts built without a run."""
    try:
        run_id = context.run_id  # type: ignore[union-attr]  # InputContext has it at run time too
    except Exception:  # noqa: BLE001 - build_input_context without an upstream run
        return None
    return None if not run_id or run_id.startswith("__") else run_id  # "__EPHEMERAL_RUN_ID": built


def output_name(context: OutputContext) -> str:
    """`asset <key>` or `output '<name>' of op <step>`, for messages."""
    if context.has_asset_key:
        return f"asset {context.asset_key.to_user_string()}"
    return f"output {context.name!r} of op {context.step_key}"


def is_nothing(context: OutputContext) -> bool:
    """Whether the output is `Nothing`-typed (`-> None`): nothing to write."""
    try:
        return context.dagster_type.is_nothing
    except dg.DagsterInvariantViolationError:  # contexts built for tests may have no type
        return False


def assets_def_of(context: InputContext | OutputContext) -> Any:
    """The AssetsDefinition of the step's node, or None (an op, or a context built without a run)."""
    step = step_of(context)
    if step is None:
        return None
    return step.job_def.asset_layer.get_assets_def_for_node(step.node_handle)


def is_single_run(context: OutputContext) -> bool:
    """Whether the output's asset has a single-run backfill policy (it returns {partition: value})."""
    assets_def = assets_def_of(context)
    policy = assets_def.backfill_policy if assets_def is not None else None
    return policy is not None and policy.max_partitions_per_run is None  # BackfillPolicy.single_run()


def partition_mapping(context: InputContext) -> tuple[Any, bool | None]:
    """(explicit partition mapping of this input or None, whether the consuming asset is
    partitioned); (None, None) outside a run."""
    assets_def = assets_def_of(context)
    if assets_def is None:
        return None, None
    return assets_def.get_partition_mapping_for_dep(context.asset_key), assets_def.partitions_def is not None


def is_external(context: InputContext) -> bool:
    """Whether the input's upstream is an external asset (an AssetSpec Dagster does not materialize)."""
    step = step_of(context)
    if not context.has_asset_key or step is None:
        return False
    try:
        return bool(step.job_def.asset_layer.get(context.asset_key).is_external)
    except Exception:  # noqa: BLE001 - no asset node for the key
        return False


def metadata_text(value: Any) -> str:
    """The text of a metadata entry (a MetadataValue wraps it)."""
    return str(getattr(value, "value", value))


def days_written_by_run(context: InputContext) -> dict[str, dt.date]:
    """{prefix: day} of the files the upstream output's run wrote, from that run's handled-output
    events (this run's, or the parent run's on a re-execution that did not run the upstream step);
    the last write of a prefix wins, as on disk. Empty when the upstream did not run in a run of
    this lineage."""
    upstream = context.upstream_output
    run_id = run_id_of(upstream) if upstream is not None else None
    step = step_of(context)
    if upstream is None or run_id is None or step is None:
        return {}
    try:
        handled = dg.DagsterEventType.HANDLED_OUTPUT
        records = step.instance.get_records_for_run(run_id, of_type=handled).records
    except Exception as e:  # noqa: BLE001 - no event log: fall back to the clock
        context.log.debug(f"could not look up the days run {run_id} wrote: {e}")
        return {}
    days: dict[str, dt.date] = {}
    for record in records:
        event = record.event_log_entry.dagster_event
        if event is None or event.step_key != upstream.step_key:
            continue
        data = event.event_specific_data
        if getattr(data, "output_name", None) != upstream.name:
            continue
        meta = getattr(data, "metadata", None) or {}
        written_prefix, written_day = meta.get("dagster_cache/prefix"), meta.get("dagster_cache/date")
        if written_prefix is not None and written_day is not None:
            with contextlib.suppress(ValueError):
                days[metadata_text(written_prefix)] = dt.date.fromisoformat(metadata_text(written_day))
        paths = meta.get("paths")  # a run that wrote several partitions: {key: path}
        for path in (getattr(paths, "value", paths) or {}).values() if paths is not None else ():
            parsed = parse_file_name(str(path).rstrip("/").rsplit("/", 1)[-1])
            if parsed is not None:
                days[parsed[0]] = parsed[1]
    return days


def record_stale(context: InputContext, used: Mapping[str, Any]) -> None:
    """Put which upstream day a stale input came from on the consumer's own materialization
    (output metadata `dagster_cache/stale_inputs`) and on the run (tag), where users look. `used`
    maps a name to a `files.Loaded`."""
    step = step_of(context)
    if step is None:
        return
    # The upstream's asset key lets the stale-input sensor re-run that asset's file checks.
    upstream = {"asset": context.asset_key.to_user_string()} if context.has_asset_key else {}
    entries = {name: {"used": u.path, "date_used": u.date.isoformat(), "date_wanted": u.wanted.isoformat(),
                      "stale_days": u.stale_days, **upstream} for name, u in used.items()}
    for out in step.op_def.output_defs:
        if out.is_dynamic or step.has_seen_output(out.name):
            continue
        current = (step.get_output_metadata(out.name) or {}).get(STALE_INPUTS_KEY)
        merged = {**(current.value if current is not None else {}), **entries}
        step.add_output_metadata({STALE_INPUTS_KEY: MetadataValue.json(merged)}, output_name=out.name)
    try:
        run = step.instance.get_run_by_id(step.run_id)
        previous = run.tags.get(STALE_RUN_TAG, "") if run is not None else ""
        added = [f"{name} from {u.date.isoformat()} ({u.stale_days}d)" for name, u in used.items()]
        tag = ", ".join(dict.fromkeys([t for t in previous.split(", ") if t] + added))
        step.instance.add_run_tags(step.run_id, {STALE_RUN_TAG: tag[:4000]})
    except Exception as e:  # noqa: BLE001 - a tag is a convenience: never fail the load for it
        context.log.debug(f"could not tag the run with its stale inputs: {e}")


def wants_dict(context: InputContext, keys: list[str], explicit: Any) -> bool:
    """Whether an input of `keys` loads as {key: value}: several keys, an `explicit` request (input
    metadata `partitions_as_dict`; None when unset), or a range partition mapping (so a one-day
    range still gives a dict: dagster issue 28942)."""
    if len(keys) > 1:
        return True
    if explicit is not None:
        return bool(explicit)
    # Not a `dict` annotation: one partition whose value is a dict is loaded as it is, as Dagster does.
    mapping, downstream_partitioned = partition_mapping(context)
    if isinstance(mapping, dg.TimeWindowPartitionMapping):
        return mapping.start_offset != mapping.end_offset
    if isinstance(mapping, dg.AllPartitionMapping):
        return True
    # No explicit mapping: an unpartitioned asset depending on a partitioned one gets them all.
    return mapping is None and downstream_partitioned is False
