"""One file, one owner: who wrote a cache file, recorded in the file itself, and directory spellings.

A file's name is not its identity: two assets can map to one name (a `cache_prefix`, an asset key
joined with "__" beside a partition key), from two spellings of one directory or from two code
locations that cannot see each other's assets. So `DatedCacheIOManager` records the writer in each
file (`cache_utils.write_cache(..., owner=...)`, a gzip header subfield every gzip reader skips) and
reads it back (`cache_utils.cache_owner`, one small read, nothing unpickled) before it overwrites a
file and after it loads one. The owner text is JSON: `{"asset": [key path], "partition": key}`
for an asset (partition null when unpartitioned), `{"op": node, "output": name}` for an op output.
Files that record no owner (written by `cache_utils.save_cache` outside Dagster, or before owners
were recorded) have none; any other text is a foreign owner, shown as it is.
"""

from __future__ import annotations

import json
import os
import posixpath
import urllib.parse
from dataclasses import dataclass

import dagster as dg
from dagster import OutputContext

from cache_utils import CacheError

# fsspec protocols that name the same store: s3fs registers s3 and s3a (and s3n is Hadoop's older
# name for the same buckets); gcsfs gs and gcs; adlfs az, abfs and abfss.
_SAME_STORE = {"s3a": "s3", "s3n": "s3", "gs": "gcs", "abfs": "az", "abfss": "az"}
_LOCAL = {"file", "local"}


class CacheOwnerError(CacheError):
    """A cache file belongs to another asset (or op output): writing it would overwrite that one's
    data, and loading it would hand its data to the wrong consumer."""


@dataclass(frozen=True)
class Owner:
    """Who wrote a cache file: an asset (key and partition key) or an op output (node and output).

    Attributes:
        asset: The asset key, for an asset's file.
        partition: The partition key the file was written for; None when unpartitioned.
        op: `(node name, output name)`, for an op output's file.
        text: The owner exactly as recorded, for an owner this module did not write (a writer
            outside Dagster naming itself with `cache_utils.write_cache(..., owner=...)`).
        external: The asset is external: its files are written outside Dagster, so any owner that
            is not a Dagster asset or op output counts as it.
    """

    asset: dg.AssetKey | None = None
    partition: str | None = None
    op: tuple[str, str] | None = None
    text: str | None = None
    external: bool = False

    def same_writer(self, other: Owner) -> bool:
        """Whether `other` is the same asset (any partition: an asset's partitions never share a
        file) or the same op output; a writer outside Dagster is the same as an external asset."""
        if (self.external and other.text is not None) or (other.external and self.text is not None):
            return True
        if self.asset is not None or other.asset is not None:
            return self.asset == other.asset
        if self.op is not None or other.op is not None:
            return self.op == other.op
        return self.text == other.text

    def describe(self) -> str:
        if self.asset is not None:
            part = f" (partition {self.partition})" if self.partition is not None else ""
            return f"asset {self.asset.to_user_string()}{part}"
        if self.op is not None:
            return f"output {self.op[1]!r} of op {self.op[0]}"
        return f"writer {self.text!r}"

    def record(self) -> str:
        """The text stored in the file (compact JSON)."""
        if self.asset is not None:
            return json.dumps({"asset": list(self.asset.path), "partition": self.partition},
                              separators=(",", ":"), ensure_ascii=False)
        if self.op is not None:
            return json.dumps({"op": self.op[0], "output": self.op[1]}, separators=(",", ":"))
        return self.text or ""


def asset_owner(key: dg.AssetKey, partition: str | None, external: bool = False) -> Owner:
    return Owner(asset=key, partition=partition, external=external)


def op_owner(step_key: str, output_name: str) -> Owner:
    """An op output's owner: its node (a mapped step's copies share it) and output name."""
    return Owner(op=(step_key.partition("[")[0], output_name))


def parse_owner(text: str | None) -> Owner | None:
    """The owner recorded in a file (None: the file records none)."""
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return Owner(text=text)
    if isinstance(data, dict) and isinstance(data.get("asset"), list) and data["asset"]:
        partition = data.get("partition")
        return Owner(asset=dg.AssetKey([str(p) for p in data["asset"]]),
                     partition=None if partition is None else str(partition))
    if isinstance(data, dict) and isinstance(data.get("op"), str) and isinstance(data.get("output"), str):
        return Owner(op=(data["op"], data["output"]))
    return Owner(text=text)


def describe_recorded(owner: Owner | None) -> str:
    return "no owner (written outside Dagster or before owners were recorded)" if owner is None \
        else owner.describe()


def normalize_directory(directory: str) -> str:
    """One spelling per place: a local path (or `file://` URL) becomes its real absolute path;
    a URL gets its store's main protocol (`s3a://` and `s3n://` are `s3://`, `gs://` is `gcs://`,
    `abfs://` is `az://`), a lower-case scheme, no repeated or trailing slashes."""
    text = directory.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        return os.path.realpath(text or ".")
    scheme = scheme.lower()
    if scheme in _LOCAL:
        path = urllib.parse.unquote(rest)
        if path.startswith("localhost/"):
            path = path[len("localhost") :]
        return os.path.realpath(path or "/")
    scheme = _SAME_STORE.get(scheme, scheme)
    rest = posixpath.normpath("/" + rest).lstrip("/") if rest else ""
    return f"{scheme}://{rest}"


def same_directory(a: str, b: str) -> bool:
    """Whether two directory settings name one place (`x`, `x/`, `./x`, `file:///abs/x`;
    `s3://b/x/` and `s3a://b/x`)."""
    return normalize_directory(a) == normalize_directory(b)


def output_owner(context: OutputContext, partition: str | None) -> Owner:
    """The owner recorded in a file this output writes: the asset and partition key, or the op
    output (node and output name)."""
    if context.has_asset_key:
        return asset_owner(context.asset_key, partition)
    return op_owner(context.step_key, context.name)


def check_loaded_owner(prefix: str, path: str, recorded: str | None, owner: Owner | None) -> None:
    """Refuse a loaded file whose recorded owner (read with it, from the same open file) is another
    asset (or op output) than the one the input reads; a file recording no owner loads as before."""
    theirs = parse_owner(recorded)
    if owner is not None and theirs is not None and not theirs.same_writer(owner):
        raise CacheOwnerError(
            f"{path} belongs to {describe_recorded(theirs)}, not to {owner.describe()}, whose input it "
            f"was to be: both map to cache prefix {prefix!r} in this directory (perhaps spelled "
            "differently, or from another code location). Give one of them "
            "metadata={'cache_prefix': '<another prefix>'} or another directory."
        )


def check_overwrite(
    mine: Owner, recorded: str | None, path: str, prefix: str, overwrite_unowned: bool,
) -> None:
    """Refuse to overwrite `path`, whose recorded owner is another writer than `mine` (whatever
    spelling of the directory or code location that writer used); one recording no owner (written
    outside Dagster or before owners) is refused only when `overwrite_unowned` is False."""
    theirs = parse_owner(recorded)
    if theirs is None and not overwrite_unowned:
        raise CacheOwnerError(
            f"{mine.describe()} would overwrite {path}, which records no owner (written outside "
            "Dagster, or before owners were recorded) and overwrite_unowned_files is False: move "
            "or delete the file if it is this asset's, or give the asset another cache_prefix."
        )
    if theirs is None or theirs.same_writer(mine):
        return
    raise CacheOwnerError(
        f"{mine.describe()} would overwrite {path}, which belongs to {theirs.describe()}: both map "
        f"to cache prefix {prefix!r} in this directory (perhaps spelled differently, or from "
        "another code location). Give one of them metadata={'cache_prefix': '<another prefix>'} "
        "or another directory; the file was left as it is."
    )
