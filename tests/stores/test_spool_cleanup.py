"""Spool files of saves to URLs (issue 18 item 9): a writer killed during a save leaves its local
spool behind; the next save (of any process) deletes it, and never a live writer's spool."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import cache_utils.stores.fsspec as fsspec_store
from cache_utils import write_cache
from tests.support.s3_server import FAKE_ENV, MotoS3, loopback_server

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
WRITER = textwrap.dedent("""
    import sys
    import cache_utils
    cache_utils.write_cache(b"x" * (3 << 20), "p", "2024-01-01", "s3://bucket/c",
                            storage_options={"endpoint_url": sys.argv[1]})
""")


def _spools(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith(fsspec_store.SPOOL_PREFIX))


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_spool_of_a_writer_killed_mid_save_is_deleted_by_the_next_save(
    s3: MotoS3, bucket: str, spool_dir: Path
) -> None:
    """The writer spools its file, then its upload hangs on a store that never answers; SIGKILL
    then. Its spool stays (nothing can run in a killed process); the next save deletes it."""
    connected = threading.Event()

    def swallow(conn: socket.socket, stop: threading.Event) -> None:
        connected.set()  # the upload has begun: the spool is complete
        stop.wait()

    with loopback_server(swallow) as (endpoint, _stop):
        env = {**os.environ, **FAKE_ENV, "TMPDIR": str(spool_dir), "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-c", WRITER, endpoint], env=env, cwd=ROOT)
        try:
            assert connected.wait(60), "the writer never started its upload"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
    left = _spools(spool_dir)
    assert len(left) == 1, left  # what a killed writer leaves
    _age(spool_dir / left[0], 2 * 3600)  # older than any grace period
    write_cache({"x": 1}, "q", "2024-01-01", f"s3://{bucket}/c", storage_options=s3.options())
    assert _spools(spool_dir) == []


def test_a_live_writers_spool_is_never_swept(spool_dir: Path) -> None:
    """The lock, not the age, tells a live writer from a dead one."""
    with fsspec_store._spool() as (f, path):
        f.write(b"partial")
        f.flush()
        _age(Path(path), 10 * fsspec_store.SPOOL_GRACE_SECONDS)
        assert fsspec_store.sweep_spools(every=0) == []
        assert Path(path).exists()
    assert _spools(spool_dir) == []  # the writer removed its own


def test_sweep_leaves_young_spools_and_symlinks(spool_dir: Path, tmp_path: Path) -> None:
    """A spool just created (its writer may not hold the lock yet) and a symlink with a spool's
    name (never followed: its target survives) are left alone; an old unlocked spool goes."""
    young = spool_dir / f"{fsspec_store.SPOOL_PREFIX}young.tmp"
    young.write_bytes(b"x")
    old = spool_dir / f"{fsspec_store.SPOOL_PREFIX}old.tmp"
    old.write_bytes(b"x")
    _age(old, fsspec_store.SPOOL_GRACE_SECONDS + 5)
    target = tmp_path / "precious"
    target.write_bytes(b"keep")
    link = spool_dir / f"{fsspec_store.SPOOL_PREFIX}link.tmp"
    link.symlink_to(target)
    os.utime(link, (0, 0), follow_symlinks=False)
    assert fsspec_store.sweep_spools(every=0) == [str(old)]
    assert young.exists() and link.is_symlink() and target.read_bytes() == b"keep"
