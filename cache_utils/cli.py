"""`cache-utils`: list, inspect and prune date-stamped caches.

It behaves like a Unix tool: `-d/--dir DIR` names the directory (or URL) in every subcommand,
`--json` prints a stable shape for scripts, errors are one line on stderr naming the bad value, a
closed pipe (`cache-utils show x | head -1`) ends it quietly, and a progress line is drawn on stderr
only when stderr is a terminal."""

from __future__ import annotations

import argparse
import json
import logging
import os
import reprlib
import sys
from collections.abc import Callable, Sequence
from itertools import groupby
from typing import Any, NoReturn

from . import __version__
from .cli_output import (
    DEFAULT_DIR,
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    Failure,
    Progress,
    _human,
    _missing_directory,
    _no_files,
    _no_such_directory,
    _Warnings,
    describe_os_error,
    plain,
    printable,
)
from .errors import CacheError
from .files import CacheFile, cache_dates, list_caches, prune, read_cache
from .loading import load_latest_cache
from .naming import cache_filename, to_date

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_NOT_FOUND", "EXIT_OK", "EXIT_USAGE",
           "Progress", "build_parser", "describe_os_error", "main"]


# --- argument types ----------------------------------------------------------------------------------


def _whole(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def _day(text: str) -> Any:
    """A date by the library's rules (`cache_utils.naming.to_date`): partial dates, two-digit
    years and 6-digit dates are refused."""
    try:
        return to_date(text)
    except (ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(plain(e)) from e


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false",
               type(None): "null"}


def _storage_options(text: str | None) -> dict[str, Any] | None:
    """The `--storage-options` JSON object. The value itself is never echoed in an error: it holds
    credentials; a syntax error is located by line and column instead."""
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:  # e.msg is a fixed phrase such as "Expecting value", never the text
        raise Failure(f"--storage-options is not valid JSON: {e.msg.lower()} at line {e.lineno}, column "
                      f"{e.colno} (value not shown: it may hold secrets)", EXIT_USAGE) from e
    if not isinstance(value, dict):
        kind = _JSON_KINDS.get(type(value), "not an object")
        raise Failure(f"--storage-options must be a JSON object such as '{{\"key\": \"...\"}}', got "
                      f"{kind} (value not shown: it may hold secrets)", EXIT_USAGE)
    return value


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))  # ASCII-only: undecodable file names come out as \udcxx


def _file_json(c: CacheFile) -> dict[str, Any]:
    return {"prefix": c.prefix, "date": c.date.isoformat(), "path": c.path, "size": c.size}


# --- commands ---------------------------------------------------------------------------------------


def _ls_directory(args: argparse.Namespace) -> str:
    """`--dir`, or the deprecated positional `ls DIR`."""
    legacy = args.legacy_directory
    if legacy is None:
        return str(args.directory or DEFAULT_DIR)
    if args.directory is not None and args.directory != legacy:
        raise Failure(f"ls: give the directory once, as --dir (got {printable(repr(legacy))} and "
                      f"--dir {printable(repr(args.directory))})", EXIT_USAGE)
    print(f"{PROG}: warning: `ls DIR` is deprecated: use `ls --dir {printable(legacy)}`", file=sys.stderr)
    return str(legacy)


def cmd_ls(args: argparse.Namespace) -> int:
    directory = _ls_directory(args)
    files = list_caches(directory, storage_options=_storage_options(args.storage_options))
    if not files and _missing_directory(directory):  # a mistyped directory is not an empty one
        raise _no_such_directory(directory)
    if args.json:
        _print_json([_file_json(c) for c in files])
        return EXIT_OK
    if not files:
        print(f"no cache files in {printable(directory)}")
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
    name = _type_name(value)
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


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__name__


class _ShortRepr(reprlib.Repr):
    """`reprlib`, with a DataFrame or Series as `<pandas.DataFrame shape=(3, 2)>`."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxtuple, self.maxset = 2, 8, 8, 8, 8
        self.maxstring, self.maxother = 60, 60

    def repr1(self, x: Any, level: int) -> str:
        shape = getattr(x, "shape", None)
        if shape is not None and hasattr(x, "head"):
            return f"<{_type_name(x)} shape={tuple(shape)}>"
        return super().repr1(x, level)


_SHORT = _ShortRepr()


def cmd_show(args: argparse.Namespace) -> int:
    options = _storage_options(args.storage_options)
    directory = args.directory or DEFAULT_DIR
    if args.date is None:  # the newest good file up to today, as load_cache would use it
        hit, _ = load_latest_cache(args.prefix, None, directory, storage_options=options)
        if hit is None:
            if _missing_directory(directory):
                raise _no_such_directory(directory)
            raise _no_files(args.prefix, directory, "usable")
        day, path, value = hit.date, hit.path, hit.data
    else:
        day = args.date
        try:
            value = read_cache(args.prefix, day, directory, storage_options=options)
        except FileNotFoundError as e:
            if _missing_directory(directory):
                raise _no_such_directory(directory) from e
            dates = cache_dates(args.prefix, directory, storage_options=options)
            where = (f"{printable(args.prefix)} has {len(dates)} file(s), {dates[-1]} to {dates[0]}"
                     if dates else f"no {printable(args.prefix)} files in {printable(directory)}")
            raise Failure(f"{printable(e.filename or e)}: no such file ({where})", EXIT_NOT_FOUND) from e
        path = cache_filename(args.prefix, day, directory=directory)
    try:
        if args.json:
            size = next((c.size for c in list_caches(directory, args.prefix, storage_options=options)
                         if c.date == day), None)
            _print_json({"prefix": args.prefix, "date": day.isoformat(), "path": path, "size": size,
                         "type": _type_name(value), "repr": _SHORT.repr(value)})
            return EXIT_OK
        lines = describe(value, args.head).splitlines()
    except RecursionError as e:  # a value nested deeper than Python's stack allows (built by a loop)
        raise Failure(f"{printable(path)}: the value is nested too deeply to describe; load it in "
                      f"Python and look at it part by part") from e
    print(f"{printable(args.prefix)} {day.isoformat()}")
    for line in lines:
        print(printable(line))
    return EXIT_OK


def _print_pruned(args: argparse.Namespace, paths: list[str], planned: int | None = None) -> None:
    """What prune deleted (or would): one line per file and a count, or JSON. `planned` is given
    when it was interrupted: how many it meant to delete."""
    if args.json:
        report: dict[str, Any] = {"prefix": args.prefix, "dry_run": args.dry_run, "removed": paths}
        if planned is not None:
            report.update(interrupted=True, planned=planned)
        _print_json(report)
        return
    verb = "would delete" if args.dry_run else "deleted"
    for path in paths:
        print(f"{verb} {printable(path)}")
    if planned is None:
        print(f"{verb} {len(paths)} file(s)")
    else:
        print(f"interrupted: deleted {len(paths)} of {planned} file(s)")


def cmd_prune(args: argparse.Namespace) -> int:
    options = _storage_options(args.storage_options)
    directory = args.directory or DEFAULT_DIR
    removed: list[str] = []
    planned: list[int] = []  # how many files the prune means to delete, once it says
    progress = Progress(f"deleting {printable(args.prefix)} files", 0)

    def deleted(path: str, total: int) -> None:
        if not planned:
            planned.append(total)
            progress.start(total)
        removed.append(path)
        progress.advance()

    try:
        with progress:
            paths = prune(args.prefix, args.keep, directory, dry_run=args.dry_run, storage_options=options,
                          on_delete=deleted)
    except KeyboardInterrupt:  # say what is already gone, then exit 130 as before
        if planned:
            _print_pruned(args, removed, planned[0])
        raise
    if not paths and not list_caches(directory, args.prefix, storage_options=options):
        if _missing_directory(directory):
            raise _no_such_directory(directory)
        raise _no_files(args.prefix, directory)
    _print_pruned(args, paths)
    return EXIT_OK


def cmd_alert_test(args: argparse.Namespace) -> int:
    """Send a test alert through the configured backend and close it: 0 only when both calls
    were accepted."""
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
        print(f"{PROG}: alert-test: {report}", file=sys.stderr)
        return EXIT_USAGE if alerter is None else EXIT_ERROR  # nothing usable configured: usage
    print(f"alert-test: {report}")
    return EXIT_OK


# --- the parser -------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line: what is wrong, with the bad value, and where to look."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {printable(message)} (see `{self.prog} --help`)\n")


EXIT_CODES = (
    "exit codes: 0 ok; 1 a file or directory that cannot be used (corrupt, not a directory, "
    "permission denied, no credentials); 2 bad usage or a bad value; 3 not found (no such file, "
    "prefix or directory); 130 interrupted; 141 stdout closed early (| head)"
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `cache-utils`."""
    parser = _Parser(
        prog=PROG,
        description="Inspect date-stamped <prefix>_<YYYYMMDD>.pkl.gz caches. Every command takes "
        "the directory the same way, -d/--dir DIR (default: data; a path or a URL such as "
        "s3://bucket/caches), and ls, show and prune take --json for scripts.",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    where = _Parser(add_help=False)
    where.add_argument("-d", "--dir", dest="directory", metavar="DIR", default=None,
                       help="directory or URL of the cache files (default: data)")
    where.add_argument("--storage-options", metavar="JSON",
                       help="fsspec storage options for URLs, as a JSON object")
    out = _Parser(add_help=False)
    out.add_argument("--json", action="store_true", help="print JSON (see the description) instead of text")

    ls = sub.add_parser(
        "ls", parents=[where, out], help="list prefixes with counts, dates, sizes",
        description="List each prefix with its file count, first and latest date, total size and "
        "whether today's file is there (from the names and sizes: no file is read). --json: a list of "
        "{prefix, date (ISO), path, size (bytes)}, "
        "one per file. (`ls DIR`, the directory as a positional argument, still works but is "
        "deprecated: use --dir.)", epilog=EXIT_CODES,
    )
    ls.add_argument("legacy_directory", nargs="?", default=None, help=argparse.SUPPRESS)
    ls.set_defaults(func=cmd_ls)

    show = sub.add_parser(
        "show", parents=[where, out], help="describe what one cache file holds",
        description="Print `PREFIX DATE`, then what the file holds: keys, types, DataFrame shapes, "
        "dtypes and a head. Without --date: the newest file up to today that loads (corrupt ones "
        "are skipped with a warning). --json: {prefix, date, path, size, type, repr} (repr: short). "
        "show unpickles the file, and unpickling runs code the file names: show only files you "
        "trust. With CACHE_UTILS_SIGNING_KEY set (older keys in CACHE_UTILS_SIGNING_KEY_FALLBACKS, "
        "comma-separated), an unsigned or wrongly signed file is refused before anything in it is "
        "read. ls and prune never unpickle.",
        epilog=EXIT_CODES,
    )
    show.add_argument("prefix", metavar="PREFIX", help="the <prefix> of <prefix>_<YYYYMMDD>.pkl.gz")
    show.add_argument("--date", type=_day, default=None, metavar="DATE",
                      help="date of the file: 2024-01-15, 20240115 or 15 Jan 2024 "
                      "(default: the newest up to today)")
    show.add_argument("--head", type=_whole(0), default=5, metavar="N",
                      help="rows of DataFrames to show (default: 5)")
    show.set_defaults(func=cmd_show)

    pr = sub.add_parser(
        "prune", parents=[where, out], help="delete all but the newest N files",
        description="Delete all but the newest N files of PREFIX dated up to today, and its stale "
        "temp files; when none of the N newest files is sound, the newest sound one is kept too "
        "(load_cache would fall back to it). prune never unpickles: a file is checked without "
        "running it (signature when CACHE_UTILS_SIGNING_KEY is set, gzip CRC to the end, a walk of "
        "its pickle opcodes). A progress line is shown on stderr "
        "when it is a terminal. --json: {prefix, dry_run, removed: [paths]}.",
        epilog=EXIT_CODES,
    )
    pr.add_argument("prefix", metavar="PREFIX", help="the <prefix> of <prefix>_<YYYYMMDD>.pkl.gz")
    pr.add_argument("--keep", type=_whole(1), required=True, metavar="N",
                    help="how many of the newest files to keep (>= 1)")
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


def _run(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version and usage errors: argparse has printed them
        return e.code if isinstance(e.code, int) else EXIT_OK if e.code is None else EXIT_USAGE
    if args.func is cmd_alert_test:  # folds the alert warnings into its own line
        return int(cmd_alert_test(args))
    logger, handler = logging.getLogger("cache_utils"), _Warnings(logging.WARNING)
    logger.addHandler(handler)
    try:
        return int(args.func(args))
    finally:
        logger.removeHandler(handler)


def _report(line: str) -> None:
    print(f"{PROG}: {line}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line tool; returns the exit code (argparse's too: never raises SystemExit)."""
    try:
        try:
            code = _run(argv)
        except Failure as e:
            _report(str(e))
            code = e.code
        except FileNotFoundError as e:
            _report(describe_os_error(e))
            code = EXIT_NOT_FOUND
        except (ValueError, TypeError) as e:
            _report(plain(e))
            code = EXIT_USAGE
        except CacheError as e:
            _report(plain(e))
            code = EXIT_ERROR
        except BrokenPipeError:
            raise
        except OSError as e:
            _report(describe_os_error(e))
            code = EXIT_ERROR
        except KeyboardInterrupt:
            _report("interrupted")
            code = EXIT_INTERRUPTED
        except RecursionError:  # a value nested too deeply, anywhere else
            _report("a value is nested too deeply for Python's recursion limit")
            code = EXIT_ERROR
        except MemoryError:
            _report("out of memory (the file may be too large for this machine)")
            code = EXIT_ERROR
        sys.stdout.flush()  # a closed pipe shows here, not at exit as "Exception ignored"
        return code
    except BrokenPipeError:
        _stdout_to_devnull()
        return EXIT_BROKEN_PIPE


def _stdout_to_devnull() -> None:
    """What Python's docs recommend after EPIPE (library/signal.html, "Note on SIGPIPE"): point
    stdout at devnull, so the flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured in-process)
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
