"""The command line tool: `python -m cache_utils` and the `cache-utils` console script."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from freezegun import freeze_time

from cache_utils import save_cache
from cache_utils.cli import (
    EXIT_BROKEN_PIPE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    Progress,
    describe_os_error,
    main,
)
from cache_utils.naming import to_date

SCRIPT = Path(sys.executable).parent / "cache-utils"
ENTRY_POINTS = {"module": [sys.executable, "-m", "cache_utils"], "script": [str(SCRIPT)]}


def run(
    entry: str, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TZ": "UTC"} if env is None else env
    return subprocess.run(
        [*ENTRY_POINTS[entry], *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env
    )


@pytest.fixture
def caches(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    frame = pd.DataFrame({"qty": [1, 2, 3], "name": ["apple", "pear", "fig"]})
    save_cache({"frame": frame, "count": 3, "tags": ["a", "b"]}, "sales", "2024-01-15", str(data))
    save_cache({"count": 2}, "sales", "2024-01-14", str(data))
    save_cache({"count": 1}, "sales", "2024-01-13", str(data))
    save_cache([1, 2], "sales_eu", "2024-01-10", str(data))
    (data / "sales_latest.pkl.gz").write_bytes(b"not a cache file")
    return tmp_path


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_ls(entry: str, caches: Path) -> None:
    result = run(entry, "ls", cwd=caches)  # default directory: data
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["PREFIX", "FILES", "FIRST", "LATEST", "SIZE", "TODAY"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == {"sales", "sales_eu"}
    assert rows["sales"][1:4] == ["3", "2024-01-13", "2024-01-15"]
    assert rows["sales"][-1] == "MISSING"  # the machine's today is not in 2024-01
    assert rows["sales_eu"][1:4] == ["1", "2024-01-10", "2024-01-10"]
    size = sum(f.stat().st_size for f in (caches / "data").glob("sales_2*.pkl.gz"))
    expected = f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} B"
    assert " ".join(rows["sales"][4:6]) == expected


def test_ls_today_column_in_process(caches: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with freeze_time("2024-01-15 12:00:00"):
        assert main(["ls", "--dir", str(caches / "data")]) == EXIT_OK
    rows = {line.split()[0]: line.split()[-1] for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows == {"sales": "ok", "sales_eu": "MISSING"}


def test_ls_empty_and_missing_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run("module", "ls", "--dir", "empty", cwd=tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, "no cache files in empty")
    result = run("script", "ls", "-d", "nowhere", cwd=tmp_path)
    assert result.returncode == EXIT_NOT_FOUND
    assert result.stderr == "cache-utils: nowhere: no such directory\n"


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_show_a_dict_with_a_dataframe(entry: str, caches: Path) -> None:
    result = run(entry, "show", "sales", "--date", "2024-01-15", cwd=caches)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "dict with 3 keys" in out
    assert "'frame': pandas.DataFrame shape=(3, 2)" in out
    assert "qty: int64" in out
    assert "apple" in out and "fig" in out  # the head of the frame
    assert "'count': int: 3" in out
    assert "'tags': list of 2 items" in out


def test_show_defaults_to_the_newest_file(caches: Path) -> None:
    result = run("module", "show", "sales", "--dir", "data", "--head", "1", cwd=caches)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sales 2024-01-15\n")
    assert "apple" in result.stdout and "fig" not in result.stdout  # --head 1


def test_show_without_date_skips_a_corrupt_newest_file(
    caches: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newest = caches / "data" / "sales_20240115.pkl.gz"
    newest.write_bytes(newest.read_bytes()[:40])  # truncated
    with freeze_time("2024-01-16 09:00:00"):
        assert main(["show", "sales", "--dir", str(caches / "data")]) == EXIT_OK
    out, err = capsys.readouterr()
    assert out.startswith("sales 2024-01-14\n") and "'count': int: 2" in out
    # One warning line, from the library's log record (not printed twice), without class names.
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"cache-utils: warning: skipping corrupt cache file {newest}: Compressed file")
    assert "EOFError" not in err


def test_show_with_dir_and_date_formats(caches: Path) -> None:
    for date in ("2024-01-14", "20240114", "14 Jan 2024"):
        result = run("module", "show", "sales", "--date", date, "--dir", str(caches / "data"), cwd=caches)
        assert (result.returncode, result.stdout.strip()) == (
            0, "sales 2024-01-14\ndict with 1 keys\n  'count': int: 2"
        )


def test_prune_dry_run_then_prune(caches: Path) -> None:
    data = caches / "data"
    result = run("module", "prune", "sales", "--keep", "1", "--dry-run", cwd=caches)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"would delete {Path('data') / 'sales_20240114.pkl.gz'}",
        f"would delete {Path('data') / 'sales_20240113.pkl.gz'}",
        "would delete 2 file(s)",
    ]
    assert (data / "sales_20240113.pkl.gz").exists()
    result = run("script", "prune", "sales", "--keep", "1", "--dir", str(data), cwd=caches)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "deleted 2 file(s)"
    assert sorted(p.name for p in data.iterdir()) == [
        "sales_20240115.pkl.gz", "sales_eu_20240110.pkl.gz", "sales_latest.pkl.gz"
    ]


@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_help(entry: str, tmp_path: Path) -> None:
    result = run(entry, "--help", cwd=tmp_path)
    assert result.returncode == 0
    for command in ("ls", "show", "prune"):
        assert command in result.stdout
    result = run(entry, "prune", "--help", cwd=tmp_path)
    assert result.returncode == 0 and "--keep" in result.stdout and "--dry-run" in result.stdout


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["show", "a/b"], EXIT_USAGE, "'a/b'"),
        (["show", ".."], EXIT_USAGE, "'..'"),
        (["show", "sales*"], EXIT_USAGE, "'sales*'"),
        (["prune", "a/b", "--keep", "1"], EXIT_USAGE, "'a/b'"),
        (["show", "sales", "--date", "2024-01-01"], EXIT_NOT_FOUND, "sales_20240101.pkl.gz"),
        (["show", "nothing"], EXIT_NOT_FOUND, "nothing"),
        (["show", "sales", "--date", "not-a-date"], EXIT_USAGE, "'not-a-date'"),
        (["show", "sales", "--date", "2024-01-12"], EXIT_ERROR, "corrupt cache file"),
        (["prune", "sales", "--keep", "-1"], EXIT_USAGE, "-1"),
        (["prune", "sales"], EXIT_USAGE, "--keep"),
        (["ls", "--dir", "data/sales_20240115.pkl.gz"], EXIT_ERROR, "not a directory"),
        (["ls", "--storage-options", "{not json"], EXIT_USAGE, "line 1, column 2"),
        (["ls", "--storage-options", "[1]"], EXIT_USAGE, "JSON object"),
        (["frobnicate"], EXIT_USAGE, "frobnicate"),
        ([], EXIT_USAGE, "COMMAND"),
    ],
)
def test_errors_and_exit_codes(args: list[str], code: int, needle: str, caches: Path) -> None:
    (caches / "data" / "sales_20240112.pkl.gz").write_bytes(b"\x1f\x8b broken")
    result = run("module", *args, cwd=caches)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert needle in result.stderr
    assert "Traceback" not in result.stderr
    assert (caches / "data" / "sales_20240115.pkl.gz").exists()  # errors never delete anything


def test_version(tmp_path: Path) -> None:
    result = run("script", "--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("cache-utils ")


# --- issue 13, part 4: a Unix tool ------------------------------------------------------------------


@pytest.fixture
def big(tmp_path: Path) -> Path:
    """A file whose description is about 3 MB of text: far more than a pipe holds."""
    nested = {f"k{i}": {f"j{j}": {f"m{m}": m for m in range(50)} for j in range(50)} for i in range(50)}
    save_cache(nested, "big", "2024-01-15", str(tmp_path / "data"))
    return tmp_path


@pytest.mark.skipif(shutil.which("head") is None, reason="needs head(1)")
@pytest.mark.parametrize("entry", sorted(ENTRY_POINTS))
def test_a_closed_pipe_ends_quietly(entry: str, big: Path) -> None:
    """`cache-utils show big | head -1`, through a real pipe: no "Broken pipe", no traceback."""
    env = {**os.environ, "TZ": "UTC"}
    tool = subprocess.Popen([*ENTRY_POINTS[entry], "show", "big"], cwd=big, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.run(["head", "-1"], stdin=tool.stdout, capture_output=True, timeout=120)
    assert tool.stdout is not None
    tool.stdout.close()  # head holds the only reader: when it exits, the pipe is closed
    stderr = tool.stderr.read() if tool.stderr else b""
    assert tool.wait(timeout=120) == EXIT_BROKEN_PIPE == 141
    assert stderr == b""
    assert head.stdout == b"big 2024-01-15\n"


def test_a_closed_pipe_in_process_returns_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    def closed(*_: object) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    silenced: list[bool] = []
    monkeypatch.setattr("cache_utils.cli.cmd_ls", closed)
    # Not the real dup2 onto this process's stdout (under `pytest -s` it is the terminal).
    monkeypatch.setattr("cache_utils.cli._stdout_to_devnull", lambda: silenced.append(True))
    assert main(["ls"]) == EXIT_BROKEN_PIPE
    assert silenced == [True]


LS_HINT = "(`cache-utils ls --dir data` lists the prefixes there)"


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["ls", "--dir", "README.md"], EXIT_ERROR, "cache-utils: README.md: not a directory"),
        (["ls", "-d", "nowhere"], EXIT_NOT_FOUND, "cache-utils: nowhere: no such directory"),
        (["show", "sales", "--dir", "nowhere"], EXIT_NOT_FOUND, "cache-utils: nowhere: no such directory"),
        (["show", "sales", "--date", "2024-01-01"], EXIT_NOT_FOUND,
         f"cache-utils: {Path('data') / 'sales_20240101.pkl.gz'}: no such file "
         f"(sales has 3 file(s), 2024-01-13 to 2024-01-15)"),
        (["show", "nothing"], EXIT_NOT_FOUND,
         f"cache-utils: nothing: no usable files in data {LS_HINT}"),
        (["prune", "nothing", "--keep", "1"], EXIT_NOT_FOUND,
         f"cache-utils: nothing: no cache files in data {LS_HINT}"),
        (["prune", "sales", "--keep", "1", "--dir", "nowhere"], EXIT_NOT_FOUND,
         "cache-utils: nowhere: no such directory"),
        (["show", "sales", "--head", "-1"], EXIT_USAGE,
         "cache-utils show: argument --head: must be a whole number >= 0, got '-1' "
         "(see `cache-utils show --help`)"),
        (["show", "sales", "--head", "two"], EXIT_USAGE,
         "cache-utils show: argument --head: must be a whole number >= 0, got 'two' "
         "(see `cache-utils show --help`)"),
        (["prune", "sales", "--keep", "0"], EXIT_USAGE,
         "cache-utils prune: argument --keep: must be a whole number >= 1, got '0' "
         "(see `cache-utils prune --help`)"),
        (["ls", "--storage-options", "[1]"], EXIT_USAGE,
         """cache-utils: --storage-options must be a JSON object such as '{"key": "..."}', got an array """
         "(value not shown: it may hold secrets)"),
    ],
)
def test_errors_are_one_line_and_say_what_to_do(args: list[str], code: int, line: str, caches: Path) -> None:
    (caches / "README.md").write_text("# not a directory\n")
    result = run("module", *args, cwd=caches)
    assert (result.returncode, result.stderr) == (code, line + "\n")
    assert result.stdout == ""


def test_prune_and_show_agree_on_an_unknown_prefix(caches: Path) -> None:
    show = run("module", "show", "nothing", cwd=caches)
    pruned = run("script", "prune", "nothing", "--keep", "1", "--dry-run", cwd=caches)
    assert show.returncode == pruned.returncode == EXIT_NOT_FOUND


def test_missing_s3_credentials_name_the_variables(tmp_path: Path) -> None:
    pytest.importorskip("s3fs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_CONFIG_FILE=str(tmp_path / "none"),
               AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"), TZ="UTC")
    result = run("script", "ls", "--dir", "s3://no-such-bucket/caches", cwd=tmp_path, env=env)
    assert result.returncode == EXIT_ERROR
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith("cache-utils: s3://no-such-bucket/caches: no usable AWS credentials")
    for needle in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "--storage-options"):
        assert needle in result.stderr
    assert "Errno" not in result.stderr and "NoCredentialsError" not in result.stderr


def test_permission_denied_in_process(
    caches: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Tests run as root here, where chmod 000 does not stop a read: the error is raised instead."""
    path = str(caches / "data" / "sales_20240115.pkl.gz")

    def denied(*_: object, **__: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr("cache_utils.cli.read_cache", denied)
    assert main(["show", "sales", "--date", "2024-01-15", "--dir", str(caches / "data")]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert err == f"cache-utils: {path}: permission denied (check its permissions and owner)\n"


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (OSError(errno.ENOSPC, "No space left on device", "d/x"),
         "d/x: no space left on the device (free some space, then retry)"),
        (OSError(errno.EROFS, "Read-only file system", "d/x"),
         "d/x: read-only file system (use a writable directory)"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "d/\x1b[2Jx"),
         "d/\\x1b[2Jx: no such file"),
        (OSError(errno.EXDEV, "Invalid cross-device link", "d/x"), "d/x: invalid cross-device link"),
        (OSError(errno.EIO, "[Errno 5] could not save cache d/x: I/O"), "input/output error"),
        (OSError("ValueError: something odd"), "something odd"),
        (TimeoutError(errno.ETIMEDOUT, "the upload did not finish within 80 s", "s3://b/d/x"),
         "s3://b/d/x: the store did not answer in time (check the network and the endpoint, then retry)"),
    ],
)
def test_os_errors_become_short_phrases(error: OSError, line: str) -> None:
    assert describe_os_error(error) == line


def test_access_denied_with_credentials_says_what_to_check() -> None:
    pytest.importorskip("fsspec")
    error = PermissionError(errno.EACCES, "cannot list: access denied", "s3://b/d")
    assert describe_os_error(error) == (
        "s3://b/d: access denied: the AWS credentials in use may not access it "
        "(check AWS_PROFILE or AWS_ACCESS_KEY_ID, or --storage-options)"
    )


def test_interrupt_exits_130(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted(*_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr("cache_utils.cli.cmd_ls", interrupted)
    assert main(["ls"]) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "cache-utils: interrupted\n"


def test_the_directory_is_given_the_same_way_everywhere(caches: Path) -> None:
    data = str(caches / "data")
    for flag in ("-d", "--dir"):
        for args in (["ls"], ["show", "sales"], ["prune", "sales", "--keep", "1", "--dry-run"]):
            result = run("module", *args, flag, data, cwd=caches.parent)
            assert result.returncode == EXIT_OK, (args, result.stderr)
            assert result.stderr == ""
    for command in ("ls", "show", "prune"):
        result = run("module", command, "--help", cwd=caches)
        assert "-d DIR, --dir DIR" in result.stdout, command


def test_ls_positional_directory_is_a_deprecated_alias(caches: Path) -> None:
    result = run("module", "ls", "data", cwd=caches)
    assert result.returncode == EXIT_OK and "sales_eu" in result.stdout
    assert result.stderr == "cache-utils: warning: `ls DIR` is deprecated: use `ls --dir data`\n"
    assert run("module", "ls", "data", "--dir", "data", cwd=caches).returncode == EXIT_OK
    result = run("module", "ls", "data", "--dir", "other", cwd=caches)
    assert result.returncode == EXIT_USAGE
    assert result.stderr == (
        "cache-utils: ls: give the directory once, as --dir (got 'data' and --dir 'other')\n"
    )


def test_show_with_and_without_date_print_the_same_header(caches: Path) -> None:
    with freeze_time("2024-01-15 12:00:00"):
        newest = _main_out(["show", "sales", "--dir", str(caches / "data")])
        dated = _main_out(["show", "sales", "--date", "2024-01-15", "--dir", str(caches / "data")])
    assert newest == dated
    assert newest.splitlines()[:2] == ["sales 2024-01-15", "dict with 3 keys"]


def _main_out(argv: list[str]) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == EXIT_OK
    return out.getvalue()


@pytest.mark.parametrize(
    "text", ["2024-01", "240115", "15 Jan 24", "Jan 2024", "2024-02-30", "20241301", "09:00"]
)
def test_dates_the_library_refuses_are_refused_with_its_message(text: str, caches: Path) -> None:
    with pytest.raises(ValueError) as refused:
        to_date(text)
    result = run("module", "show", "sales", "--date", text, cwd=caches)
    assert result.returncode == EXIT_USAGE
    assert result.stderr == (
        f"cache-utils show: argument --date: {refused.value} (see `cache-utils show --help`)\n"
    )


@pytest.mark.parametrize(
    "text", ["2024-01-14", "20240114", "14 Jan 2024", "2024-01-14T23:30", "Jan 14, 2024"]
)
def test_dates_the_library_accepts_are_accepted(text: str, caches: Path) -> None:
    assert to_date(text) == dt.date(2024, 1, 14)
    result = run("module", "show", "sales", "--date", text, cwd=caches)
    assert result.returncode == EXIT_OK and result.stdout.startswith("sales 2024-01-14\n"), result.stderr


def test_ls_json(caches: Path) -> None:
    result = run("module", "ls", "--json", cwd=caches)
    assert result.returncode == EXIT_OK, result.stderr
    data = caches / "data"
    assert json.loads(result.stdout) == [
        {"prefix": prefix, "date": day, "path": str(Path("data") / name),
         "size": (data / name).stat().st_size}
        for prefix, day, name in [
            ("sales", "2024-01-13", "sales_20240113.pkl.gz"),
            ("sales", "2024-01-14", "sales_20240114.pkl.gz"),
            ("sales", "2024-01-15", "sales_20240115.pkl.gz"),
            ("sales_eu", "2024-01-10", "sales_eu_20240110.pkl.gz"),
        ]
    ]
    (caches / "empty").mkdir()
    assert json.loads(run("module", "ls", "--json", "-d", "empty", cwd=caches).stdout) == []


def test_show_json(caches: Path) -> None:
    result = run("module", "show", "sales", "--date", "20240115", "--json", cwd=caches)
    assert result.returncode == EXIT_OK, result.stderr
    path = caches / "data" / "sales_20240115.pkl.gz"
    assert json.loads(result.stdout) == {
        "prefix": "sales", "date": "2024-01-15", "path": str(Path("data") / path.name),
        "size": path.stat().st_size, "type": "dict",
        "repr": "{'count': 3, 'frame': <pandas.DataFrame shape=(3, 2)>, 'tags': ['a', 'b']}",
    }


def test_prune_json(caches: Path) -> None:
    result = run("module", "prune", "sales", "--keep", "2", "--json", cwd=caches)
    assert result.returncode == EXIT_OK, result.stderr
    assert json.loads(result.stdout) == {
        "prefix": "sales", "dry_run": False, "removed": [str(Path("data") / "sales_20240113.pkl.gz")],
    }
    assert not (caches / "data" / "sales_20240113.pkl.gz").exists()


@pytest.fixture
def many(tmp_path: Path) -> Path:
    for i in range(40):
        save_cache({"i": i}, "sales", dt.date(2024, 1, 1) + dt.timedelta(days=i), str(tmp_path / "data"))
    return tmp_path


def test_no_progress_when_stderr_is_not_a_terminal(many: Path) -> None:
    result = run("module", "prune", "sales", "--keep", "1", cwd=many)
    assert result.returncode == EXIT_OK
    assert result.stderr == ""
    assert result.stdout.splitlines()[-1] == "deleted 39 file(s)"


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_progress_on_a_terminal(many: Path) -> None:
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([*ENTRY_POINTS["module"], "prune", "sales", "--keep", "1"], cwd=many,
                                stdout=subprocess.PIPE, stderr=slave, env={**os.environ, "TZ": "UTC"})
    finally:
        os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO once the child has closed the terminal (Linux)
            break
        if not chunk:
            break
        drawn += chunk
    os.close(master)
    out = proc.communicate(timeout=120)[0].decode()
    assert proc.returncode == EXIT_OK
    assert out.splitlines()[-1] == "deleted 39 file(s)"  # stdout stays clean
    text = drawn.decode()
    assert "\rdeleting sales files: 39/39" in text
    assert text.endswith("\r")  # the line is erased at the end
    assert len(list((many / "data").iterdir())) == 1


def test_progress_is_drawn_only_on_a_terminal() -> None:
    import io

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    quiet, shown = io.StringIO(), Terminal()
    for stream in (quiet, shown):
        with Progress("deleting", 3, stream=stream, interval=0) as progress:
            for _ in range(3):
                progress.advance()
    assert quiet.getvalue() == ""
    assert shown.getvalue() == "\rdeleting: 1/3\rdeleting: 2/3\rdeleting: 3/3\r             \r"
