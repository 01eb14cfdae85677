"""`cache-utils`: list, inspect and prune date-stamped caches."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from . import __version__
from .errors import CacheError
from .files import CacheFile, list_caches, prune, read_cache
from .loading import load_latest_cache
from .naming import to_date
from .stores import is_url

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND = 0, 1, 2, 3


def _human(size: float) -> str:
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1024
        if size < 1024 or unit == "GB":
            break
    return f"{size:.1f} {unit}"


def printable(text: object) -> str:
    """`text` with control characters and undecodable bytes escaped (`\\x1b`), so a file name
    cannot move the cursor, clear the screen or forge lines of output."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _storage_options(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--storage-options must be a JSON object, got {text!r}") from e
    if not isinstance(value, dict):
        raise ValueError(f"--storage-options must be a JSON object, got {text!r}")
    return value


def cmd_ls(args: argparse.Namespace) -> int:
    files = list_caches(args.directory, storage_options=_storage_options(args.storage_options))
    if not files:
        if not is_url(args.directory) and not os.path.isdir(args.directory):
            print(f"cache-utils: not found: directory {args.directory}", file=sys.stderr)
            return EXIT_NOT_FOUND  # a mistyped directory is not an empty one
        print(f"no cache files in {args.directory}")
        return EXIT_OK
    today = to_date(None)
    rows = [("PREFIX", "FILES", "FIRST", "LATEST", "SIZE", "TODAY")]
    for prefix, group in groupby(files, key=lambda c: c.prefix):
        items: list[CacheFile] = list(group)
        latest = items[-1].date
        rows.append((
            printable(prefix),
            str(len(items)),
            items[0].date.isoformat(),
            latest.isoformat(),
            _human(sum(c.size for c in items)),
            "ok" if any(c.date == today for c in items) else "MISSING",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return EXIT_OK


def describe(value: Any, head: int = 5) -> str:
    """A short human description of a cached value: type, keys, DataFrame shape and head."""
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__
    shape = getattr(value, "shape", None)
    if shape is not None and hasattr(value, "head"):
        lines = [f"{name} shape={tuple(shape)}"]
        dtypes = getattr(value, "dtypes", None)
        if dtypes is not None and hasattr(dtypes, "items"):
            lines.append("columns: " + ", ".join(f"{c}: {t}" for c, t in dtypes.items()))
        lines.append(str(value.head(head)))
        return "\n".join(lines)
    if isinstance(value, dict):
        lines = [f"dict with {len(value)} keys"]
        for key, item in list(value.items())[:50]:
            sub = describe(item, head).splitlines()
            lines.append(f"  {key!r}: {sub[0]}")
            lines.extend("    " + line for line in sub[1:])
        if len(value) > 50:
            lines.append(f"  ... {len(value) - 50} more keys")
        return "\n".join(lines)
    if isinstance(value, list | tuple | set):
        return f"{name} of {len(value)} items: {repr(value)[:200]}"
    return f"{name}: {repr(value)[:200]}"


def cmd_show(args: argparse.Namespace) -> int:
    options = _storage_options(args.storage_options)
    day = args.date
    if day is None:  # the newest good file up to today, as load_cache would use it
        hit, skipped = load_latest_cache(args.prefix, None, args.directory, storage_options=options)
        for s in skipped:
            print(f"cache-utils: skipped corrupt file {printable(s.path)}: {s.reason}", file=sys.stderr)
        if hit is None:
            print(f"cache-utils: not found: no usable {args.prefix} file in {args.directory}",
                  file=sys.stderr)
            return EXIT_NOT_FOUND
        print(f"{args.prefix} {hit.date.isoformat()}")
        value = hit.data
    else:
        value = read_cache(args.prefix, day, args.directory, storage_options=options)
    print(describe(value, args.head))
    return EXIT_OK


def cmd_prune(args: argparse.Namespace) -> int:
    paths = prune(
        args.prefix, args.keep, args.directory, dry_run=args.dry_run,
        storage_options=_storage_options(args.storage_options),
    )
    verb = "would delete" if args.dry_run else "deleted"
    for path in paths:
        print(f"{verb} {printable(path)}")
    print(f"{verb} {len(paths)} file(s)")
    return EXIT_OK


def cmd_alert_test(args: argparse.Namespace) -> int:
    """Send a test alert through the configured backend and close it: 0 only when both calls
    were accepted."""
    import logging

    from .alerts import get_alerter, send_test_alert

    if not args.alias.strip():
        raise ValueError("alert-test: --alias must not be empty")

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    # A bad setting is logged as a warning when the backend is chosen: fold it into our one line.
    seen: list[str] = []
    logger, notes = logging.getLogger("cache_utils.alerts"), Collect(logging.WARNING)
    logger.addHandler(notes)
    propagate, logger.propagate = logger.propagate, False
    try:
        alerter = get_alerter()
    finally:
        logger.removeHandler(notes)
        logger.propagate = propagate
    ok, report = send_test_alert(alerter, args.alias)
    if alerter is None and seen:
        report = "; ".join(seen)
    elif seen:
        report += f" (note: {'; '.join(seen)})"
    if not ok:
        print(f"cache-utils: alert-test: {report}", file=sys.stderr)
        return EXIT_USAGE if alerter is None else EXIT_ERROR  # nothing usable configured: usage
    print(f"alert-test: {report}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `cache-utils`."""
    parser = argparse.ArgumentParser(
        prog="cache-utils", description="Inspect date-stamped <prefix>_<YYYYMMDD>.pkl.gz caches."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    storage = argparse.ArgumentParser(add_help=False)
    storage.add_argument(
        "--storage-options", metavar="JSON", help="fsspec storage options for URLs, as JSON"
    )

    ls = sub.add_parser("ls", parents=[storage], help="list prefixes with counts, dates, sizes")
    ls.add_argument("directory", nargs="?", default="data", help="directory or URL (default: data)")
    ls.set_defaults(func=cmd_ls)

    show = sub.add_parser("show", parents=[storage], help="describe what one cache file holds")
    show.add_argument("prefix")
    show.add_argument("--date", default=None, help="date of the file (default: the newest up to today)")
    show.add_argument("--dir", dest="directory", default="data", help="directory (default: data)")
    show.add_argument("--head", type=int, default=5, help="rows of DataFrames to show")
    show.set_defaults(func=cmd_show)

    pr = sub.add_parser("prune", parents=[storage], help="delete all but the newest N files")
    pr.add_argument("prefix")
    pr.add_argument("--keep", type=int, required=True, help="how many of the newest files to keep")
    pr.add_argument("--dir", dest="directory", default="data", help="directory (default: data)")
    pr.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    pr.set_defaults(func=cmd_prune)

    at = sub.add_parser(
        "alert-test", help="send a test alert through the configured backend, then close it",
        description="Create a P5 test alert and close it, through the backend the environment "
        "selects (JSM_OPS_API_KEY: JSM Operations, else OPSGENIE_API_KEY: OpsGenie). Exit 0 only "
        "when both calls were accepted; 1 when one failed; 2 when no backend is configured.",
    )
    at.add_argument("--alias", default="cache_utils:alert-test",
                    help="alias of the test alert (default: cache_utils:alert-test)")
    at.set_defaults(func=cmd_alert_test)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line tool; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except FileNotFoundError as e:
        print(f"cache-utils: not found: {printable(e.filename or e)}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (ValueError, TypeError) as e:
        print(f"cache-utils: {printable(e)}", file=sys.stderr)
        return EXIT_USAGE
    except (CacheError, OSError) as e:
        print(f"cache-utils: {printable(e)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

