"""Which cache prefix a Dagster asset or op output maps to, and refusing two that collide: the
patterns of the prefixes an asset writes (`prefix_pattern`), the refusal (`check_no_clash`), and
gathering the code location's assets that write to the same directory (`check_clashes`)."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any

import dagster as dg
from dagster import OutputContext

from cache_utils.integration import validate_prefix

from .context import output_name, step_of
from .dates import has_time_dimension, is_sub_daily, time_dimension
from .errors import CachePartitionError
from .ownership import same_directory

PREFIX_METADATA_KEY = "cache_prefix"
# Dagster names (ops, outputs, mapping keys) match [A-Za-z0-9_]+ and node paths join them with
# ".", so "@" marks a mapping key unambiguously.
MAPPING_KEY_MARK = "@"


def cache_prefix_of(metadata: Mapping[str, Any] | None) -> str | None:
    """The `cache_prefix` named in definition metadata, or None."""
    override = (metadata or {}).get(PREFIX_METADATA_KEY)
    if override is None:
        return None
    return str(getattr(override, "value", override))  # a MetadataValue wraps the text


def prefix_for(asset_key: dg.AssetKey, metadata: Mapping[str, Any] | None) -> str:
    """`cache_prefix` from definition metadata, else the asset key path joined with "__"."""
    override = cache_prefix_of(metadata)
    try:
        return validate_prefix(override if override is not None else "__".join(asset_key.path))
    except ValueError as e:
        what = "its cache_prefix" if override is not None else "its key"
        raise CachePartitionError(
            f"asset {asset_key.to_user_string()}: {what} cannot name a cache file: {e}. Give the "
            f"asset a short metadata={{'{PREFIX_METADATA_KEY}': '<prefix>'}}"
        ) from e


def op_output_prefix(
    step_key: str, output_name: str, mapping_key: str | None, metadata: Mapping[str, Any] | None = None,
    run_id: str | None = None,
) -> str:
    """The prefix of an op output's file.

    By default an op output is its run's own intermediate, as in Dagster's file IO managers:
    `<node>.<output>@<run id>`, so concurrent runs never read each other's. Dagster names hold only
    `[A-Za-z0-9_]` and node paths join them with ".", so op `a__b`'s `result` and op `a`'s
    `b__result` stay apart. An output whose
    definition metadata names a `cache_prefix` is a shared daily cache instead, named by that
    prefix alone. A mapped step's key and a DynamicOutput's mapping key follow as `@<key>`, so
    every mapped copy and every dynamic output gets a file of its own."""
    node, _, mapped = step_key.partition("[")
    marks = "".join(MAPPING_KEY_MARK + m for m in (mapped.rstrip("]"), mapping_key) if m)
    override = cache_prefix_of(metadata)
    scope = MAPPING_KEY_MARK + run_id if run_id else ""
    prefix = override + marks if override is not None else f"{node}.{output_name}{marks}{scope}"
    try:
        return validate_prefix(prefix)
    except ValueError as e:
        hint = "shorter mapping keys, or " if marks else ""
        raise CachePartitionError(
            f"output {output_name!r} of op {step_key} cannot name a cache file: {e}. Use {hint}a short "
            f"Out(metadata={{'{PREFIX_METADATA_KEY}': '<prefix>'}}) (or another io_manager_key)"
        ) from e


def prefix_pattern(
    base_prefix: str, partitions_def: dg.PartitionsDefinition | None, dynamic_store: Any = None
) -> re.Pattern[str]:
    """A regex matching every prefix an asset with these partitions writes: a partition key without
    a time dimension, and a multi-partition's other dimensions, join the prefix as `__<key>`."""
    if partitions_def is None:
        return re.compile(re.escape(base_prefix))
    pattern = re.escape(base_prefix)
    if not has_time_dimension(partitions_def):
        if isinstance(partitions_def, dg.MultiPartitionsDefinition):
            for dim in sorted(partitions_def.partitions_defs, key=lambda d: d.name):
                pattern += _keys_pattern(dim.partitions_def, dynamic_store)
        else:
            pattern += _keys_pattern(partitions_def, dynamic_store)
        return re.compile(pattern)
    dim_name, time_def = time_dimension(partitions_def)
    if dim_name is not None:
        for dim in sorted(partitions_def.partitions_defs, key=lambda d: d.name):  # type: ignore[attr-defined]
            if dim.name != dim_name:
                pattern += _keys_pattern(dim.partitions_def, dynamic_store)
    if is_sub_daily(time_def):
        pattern += r"__\d{4}(?:[+-]\d{4})?"
    return re.compile(pattern)


def _keys_pattern(partitions_def: dg.PartitionsDefinition, dynamic_store: Any) -> str:
    """`__(?:key|key...)` for one dimension's keys; any key for dynamic ones without an instance."""
    try:  # dynamic keys come from the instance; without one, assume any key
        keys = partitions_def.get_partition_keys(dynamic_partitions_store=dynamic_store)
    except Exception:  # noqa: BLE001 - a dynamic dimension with no instance at hand
        return "__.+"
    return "__(?:" + "|".join(re.escape(k) for k in keys) + ")" if keys else "__(?!)"


def check_no_clash(
    prefix: str, owner: dg.AssetKey | str, others: Iterable[tuple[dg.AssetKey, str, Any]],
    dynamic_store: Any = None, external: Collection[dg.AssetKey] = (),
) -> None:
    """Refuse `prefix` when other assets (key, base prefix, partitions) can write the same files,
    naming every one of them; those in `external` are external assets, whose files are written
    outside Dagster (an asset must never overwrite them)."""
    clashes = []
    for key, base, pdef in others:
        if key != owner and prefix_pattern(base, pdef, dynamic_store).fullmatch(prefix):
            kind = "external asset" if key in external else "asset"
            clashes.append(f"{kind} {key.to_user_string()}")
    if clashes:
        mine = f"asset {owner.to_user_string()}" if isinstance(owner, dg.AssetKey) else owner
        theirs = ", ".join(clashes)
        raise CachePartitionError(
            f"{mine} and {theirs} would {'both' if len(clashes) == 1 else 'all'} write cache files named "
            f"'{prefix}_<YYYYMMDD>.pkl.gz' and overwrite each other: give all but one of them "
            f"metadata={{'{PREFIX_METADATA_KEY}': '<another prefix>'}}"
        )


def _keys_writing_to(step: Any, own_key: str, directory: str, manager_cls: type) -> set[str]:
    """The IO manager keys bound to a `manager_cls` (DatedCacheIOManager) on `directory` (own_key
    included), by the run's resolved configuration (environment variables and launch-time config
    applied)."""
    keys = {own_key}
    resolved = step.resolved_run_config.resources  # only the keys this step needs
    for key, resource_def in step.job_def.resource_defs.items():
        cls = getattr(resource_def, "configurable_resource_cls", None)
        if not (isinstance(cls, type) and issubclass(cls, manager_cls)):
            continue
        launch = ((step.dagster_run.run_config or {}).get("resources") or {}).get(key) or {}
        if key in resolved:
            where = (resolved[key].config or {}).get("directory", "data")
        elif "directory" in (launch.get("config") or {}):  # given in the run's config
            where = launch["config"]["directory"]
        else:  # as defined; an EnvVar shows as {"env": NAME}
            field = resource_def.config_field
            if field is None or not field.default_provided:
                continue
            where = field.default_value.get("directory", "data")
            if isinstance(where, dict):
                where = os.environ.get(str(where.get("env")), "")
        if where and same_directory(str(where), directory):
            keys.add(key)
    return keys


def _other_assets(
    context: OutputContext, directory: str, manager_cls: type, external: set[dg.AssetKey] | None = None,
) -> Iterator[tuple[dg.AssetKey, str, Any]]:
    """(key, base prefix, partitions) of each asset whose files go to the same directory as this
    output (any IO manager key bound to a DatedCacheIOManager on it), across the whole code
    location when Dagster gives it: materializable ones, and external ones (files written outside
    Dagster, such as `external_cache_asset`), whose keys are added to `external`."""
    step = step_of(context)
    if step is None:
        return
    output_def = step.op_def.output_def_named(context.name)
    keys = _keys_writing_to(step, output_def.io_manager_key, directory, manager_cls)
    try:
        graph = step.repository_def.asset_graph
    except Exception:  # noqa: BLE001 - execute_in_process has no repository: start from the job
        selection = step.job_def.asset_selection_data
        job = selection.parent_job_def if selection is not None else step.job_def
        graph = job.asset_layer.asset_graph
        # An asset job's graph is scoped to its selection; it keeps the code location's whole graph.
        graph = getattr(graph, "source_asset_graph", graph)
    for node in graph.asset_nodes:
        if not (node.is_materializable or node.is_external) or node.io_manager_key not in keys:
            continue
        try:
            base = prefix_for(node.key, node.metadata)
        except ValueError:  # its own write will report its bad prefix
            continue
        if not node.is_materializable and external is not None:
            external.add(node.key)
        yield node.key, base, node.partitions_def


def check_clashes(context: OutputContext, prefixes: list[str], directory: str, manager_cls: type) -> None:
    """Refuse, before anything is written, prefixes another asset of this code location writes too
    (through any IO manager key bound to a `manager_cls` on the same directory), or an external
    asset's files (written outside Dagster) have."""
    owner: dg.AssetKey | str = context.asset_key if context.has_asset_key else output_name(context)
    external: set[dg.AssetKey] = set()
    others = list(_other_assets(context, directory, manager_cls, external))
    step = step_of(context)
    instance = step.instance if step is not None else None  # knows the dynamic partitions' keys
    for prefix in dict.fromkeys(prefixes):
        check_no_clash(prefix, owner, others, instance, external=external)
    if not context.has_asset_key:
        _check_op_caches(context)


def _check_op_caches(context: OutputContext) -> None:
    """Refuse an op output whose `cache_prefix` another op output of the same job names too: both
    would write that shared daily file in turn."""
    mine = cache_prefix_of(context.definition_metadata)
    if mine is None:
        return
    step = step_of(context)
    if step is None:
        return
    own = (step.node_handle, context.name)
    graph = step.job_def.graph
    for handle in graph.iterate_node_handles():
        definition = graph.get_node(handle).definition
        if not isinstance(definition, dg.OpDefinition):
            continue
        for out in definition.output_defs:
            if (handle, out.name) != own and cache_prefix_of(out.metadata) == mine:
                raise CachePartitionError(
                    f"{output_name(context)} and output {out.name!r} of op {handle} both name "
                    f"cache_prefix {mine!r} and would overwrite each other's daily file: give one "
                    "of them another cache_prefix"
                )
