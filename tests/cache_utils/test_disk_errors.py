"""A full disk or a read-only directory gives a clear OSError naming the path, the
previous file stays intact and no temp file is left behind."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest

import cache_utils.stores.local as local_store
from cache_utils import read_cache, save_cache

PREVIOUS = {"previous": list(range(100))}


def _setup(directory: str) -> str:
    return save_cache(PREVIOUS, "p", "2024-01-15", directory)


def _check_after_failure(directory: str, path: str, error: pytest.ExceptionInfo, code: int) -> None:
    assert isinstance(error.value, OSError)
    assert error.value.errno == code
    assert path in str(error.value)  # the message names the file that could not be saved
    assert read_cache("p", "2024-01-15", directory) == PREVIOUS
    assert os.listdir(directory) == [os.path.basename(path)]  # no temp file left


class _FillsUp:
    """A file that accepts `room` bytes and then fails like a full disk."""

    def __init__(self, raw, room: int) -> None:
        self._raw = raw
        self._room = room

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        if n > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= n
        return self._raw.write(data)

    def __getattr__(self, name):
        return getattr(self._raw, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._raw.close()


def test_enospc_partway_through_the_write(tmp_path, monkeypatch):
    d = str(tmp_path)
    path = _setup(d)
    real_fdopen = os.fdopen
    monkeypatch.setattr(local_store.os, "fdopen", lambda fd, mode: _FillsUp(real_fdopen(fd, mode), 50_000))
    with pytest.raises(OSError) as error:
        save_cache({"big": os.urandom(1 << 20)}, "p", "2024-01-15", d)
    _check_after_failure(d, path, error, errno.ENOSPC)


def test_enospc_reported_at_fsync(tmp_path, monkeypatch):
    d = str(tmp_path)
    path = _setup(d)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(local_store.os, "fsync", full)
    with pytest.raises(OSError) as error:
        save_cache({"new": 1}, "p", "2024-01-15", d)
    _check_after_failure(d, path, error, errno.ENOSPC)


@pytest.mark.parametrize("where", ["mkstemp", "replace"])
def test_eacces(tmp_path, monkeypatch, where):
    d = str(tmp_path)
    path = _setup(d)

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    if where == "mkstemp":
        monkeypatch.setattr(local_store.tempfile, "mkstemp", denied)
    else:
        monkeypatch.setattr(local_store.os, "replace", denied)
    with pytest.raises(PermissionError) as error:
        save_cache({"new": 1}, "p", "2024-01-15", d)
    _check_after_failure(d, path, error, errno.EACCES)


# --- the real thing, where this machine allows it (root) -------------------------------------


@contextlib.contextmanager
def _mounted(target: str, *args: str) -> Iterator[None]:
    result = subprocess.run(["mount", *args, target], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here: {result.stderr.strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", target], check=False)


def test_real_full_tmpfs(tmp_path):
    mnt = str(tmp_path / "small")
    os.mkdir(mnt)
    with _mounted(mnt, "-t", "tmpfs", "-o", "size=1m", "tmpfs"):
        path = _setup(mnt)
        with pytest.raises(OSError) as error:
            save_cache({"big": os.urandom(3 << 20)}, "p", "2024-01-15", mnt)
        _check_after_failure(mnt, path, error, errno.ENOSPC)
        assert shutil.disk_usage(mnt).used < 200_000  # the partial temp file's blocks were freed


def test_real_read_only_directory(tmp_path):
    d = str(tmp_path / "ro")
    os.mkdir(d)
    path = _setup(d)
    with _mounted(d, "--bind", d):
        if subprocess.run(["mount", "-o", "remount,ro,bind", d], capture_output=True).returncode:
            pytest.skip("cannot remount read-only")
        with pytest.raises(OSError) as error:
            save_cache({"new": 1}, "p", "2024-01-15", d)
        _check_after_failure(d, path, error, errno.EROFS)


def test_real_immutable_target_file(tmp_path):
    """`chattr +i` on the existing file: the rename over it fails after the temp file was written."""
    d = str(tmp_path / f"imm-{uuid.uuid4().hex[:6]}")
    os.mkdir(d)
    path = _setup(d)
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", path],
                                                        capture_output=True).returncode:
        pytest.skip("chattr +i is not supported here")
    try:
        with pytest.raises(OSError) as error:
            save_cache({"new": 1}, "p", "2024-01-15", d)
        _check_after_failure(d, path, error, errno.EPERM)
    finally:
        subprocess.run(["chattr", "-i", path], check=False)
