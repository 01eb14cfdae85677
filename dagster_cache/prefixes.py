"""Which cache prefix a Dagster asset or op output maps to, and refusing two that collide."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import dagster as dg

from cache_utils.integration import validate_prefix

from .dates import is_sub_daily, time_dimension
from .errors import CachePartitionError

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
) -> re.Pattern[str] | None:
    """A regex matching every prefix an asset with these partitions writes (None: it writes none)."""
    if partitions_def is None:
        return re.compile(re.escape(base_prefix))
    try:
        dim_name, time_def = time_dimension(partitions_def)
    except CachePartitionError:
        return None
    pattern = re.escape(base_prefix)
    if dim_name is not None:
        for dim in sorted(partitions_def.partitions_defs, key=lambda d: d.name):  # type: ignore[attr-defined]
            if dim.name == dim_name:
                continue
            try:  # dynamic keys come from the instance; without one, assume any key
                keys = dim.partitions_def.get_partition_keys(dynamic_partitions_store=dynamic_store)
                pattern += "__(?:" + "|".join(re.escape(k) for k in keys) + ")" if keys else "__(?!)"
            except Exception:  # noqa: BLE001 - a dynamic dimension with no instance at hand
                pattern += "__.+"
    if is_sub_daily(time_def):
        pattern += r"__\d{4}(?:[+-]\d{4})?"
    return re.compile(pattern)


def check_no_clash(
    prefix: str, owner: dg.AssetKey | str, others: Iterable[tuple[dg.AssetKey, str, Any]],
    dynamic_store: Any = None, external: Collection[dg.AssetKey] = (),
) -> None:
    """Refuse `prefix` when other assets (key, base prefix, partitions) can write the same files,
    naming every one of them; those in `external` are external assets, whose files are written
    outside Dagster (an asset must never overwrite them)."""
    clashes = []
    for key, base, pdef in others:
        pattern = None if key == owner else prefix_pattern(base, pdef, dynamic_store)
        if pattern is not None and pattern.fullmatch(prefix):
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
