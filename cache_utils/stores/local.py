"""Cache files in a directory on a local (or mounted) file system: the fast path."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from typing import IO

from ..naming import TEMP_SUFFIX, is_temp_name, join, matching_stamps
from .base import Entry, NotARegularFileError, UnreadableFileError

DEFAULT_FILE_MODE = 0o600  # mkstemp's mode: owner-only unless configured otherwise


class LocalStore:
    """A directory on a local (or mounted) file system."""

    def __init__(self, directory: str, file_mode: int | None = None) -> None:
        self.directory = directory
        self.file_mode = DEFAULT_FILE_MODE if file_mode is None else file_mode

    def __repr__(self) -> str:
        return f"LocalStore({self.directory!r})"

    def path(self, name: str) -> str:
        return join(self.directory, name)

    def stamps(self, prefix: str, on_or_before: str | None = None) -> list[str]:
        """Stamps of regular files named `<prefix>_<YYYYMMDD>.pkl.gz`, newest first."""
        head = prefix + "_"  # cheap name test first: is_file only for the few candidates
        files = [e.name for e in self._listing() if e.name.startswith(head) and _is_file(e)]
        return matching_stamps(files, prefix, on_or_before)

    def _listing(self) -> list[os.DirEntry[str]]:
        """The directory's entries at once (no generator step per entry: 100,000 files add up).
        A directory that can be listed but not searched is an error, not an empty listing."""
        try:
            with os.scandir(self.directory or ".") as it:
                entries = list(it)
        except FileNotFoundError:
            return []
        except NotADirectoryError as e:
            raise NotADirectoryError(
                e.errno, f"cache directory {self.directory!r} is not a directory", e.filename
            ) from e
        self._check_searchable()
        return entries

    def _check_searchable(self) -> None:
        """PermissionError naming the directory when this process may not search it (no x bit):
        its names can be listed, but no file in it can be checked or opened."""
        directory = self.directory or "."
        try:
            os.stat(os.path.join(directory, "."))  # resolving `dir/.` needs search permission on dir
        except PermissionError as e:
            raise PermissionError(
                e.errno, f"cache directory {directory!r} cannot be searched (no execute permission "
                "for this user): its files can be listed but not opened; check its mode and owner",
                directory,
            ) from e

    def entries(self) -> Iterator[Entry]:
        return iter(self.prefix_entries(""))

    def prefix_entries(self, start: str) -> list[Entry]:
        """Files whose names start with `start` (stat only for those)."""
        found = []
        for e in self._listing():
            if e.name.startswith(start):
                # Removed since the listing, a symlink loop, no permission: not a usable file.
                with contextlib.suppress(OSError):
                    if e.is_file():
                        st = e.stat()
                        found.append(Entry(e.name, st.st_size, st.st_mtime))
        return found

    def exists(self, name: str) -> bool:
        try:
            return stat.S_ISREG(os.stat(self.path(name)).st_mode)
        except PermissionError:  # stat needs no permission on the file: the directory is the cause
            self._check_searchable()
            return False
        except (OSError, ValueError):  # as os.path.isfile: absent, a symlink loop, a bad name
            return False

    def open_read(self, name: str) -> IO[bytes]:
        """Open a regular file for reading; anything else (a FIFO, a device, a directory) raises
        `NotARegularFileError` at once instead of blocking or reading forever."""
        path = self.path(name)
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait for one, forever.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except PermissionError as e:
            self._check_searchable()  # the directory's fault: raised as such
            raise UnreadableFileError(e.errno, UnreadableFileError.reason, path) from e
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
                raise NotARegularFileError(errno.EINVAL, f"is {kind}", path)
            os.set_blocking(fd, True)
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def write_atomic(self, name: str, write: Callable[[IO[bytes]], None]) -> None:
        """Write via a temp file in the same directory, fsync, then rename over `name`."""
        directory = self.directory or "."
        try:
            os.makedirs(directory, exist_ok=True)
        except FileExistsError as e:
            raise NotADirectoryError(
                errno.ENOTDIR, f"cache directory {directory!r} exists and is not a directory", e.filename
            ) from e
        final = self.path(name)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TEMP_SUFFIX, dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                if self.file_mode != DEFAULT_FILE_MODE:
                    os.fchmod(f.fileno(), self.file_mode)
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_directory(directory)

    def remove(self, name: str) -> None:
        os.unlink(self.path(name))

    def temp_entries(self, prefix: str | None = None) -> list[Entry]:
        found = []
        for e in self._listing():
            if is_temp_name(e.name, prefix):
                with contextlib.suppress(OSError):
                    st = e.stat()
                    found.append(Entry(e.name, st.st_size, st.st_mtime))
        return found


def _is_file(entry: os.DirEntry[str]) -> bool:
    """`entry.is_file()`, False for entries that cannot be checked (a symlink loop, EACCES)."""
    try:
        return entry.is_file()
    except OSError:
        return False


def _fsync_directory(directory: str) -> None:
    """Make the rename durable; not every platform or file system allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
