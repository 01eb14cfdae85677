"""How many threads deflate and inflate members, and the pool they run on.

The pool is `concurrent.futures.ThreadPoolExecutor`: members are submitted in file order and their
futures kept in a deque of at most a few (the members in flight), so memory stays bounded by
those members whatever the file's size. `close_pool` cancels what has not started (after an error
the rest of the file is not wanted) and joins the threads, so no thread outlives a save or a load.
Work that needs no thread (one thread asked for, or a file of one member) runs in the calling
thread and is wrapped in an already finished future (`finished`), so callers handle one kind.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

log = logging.getLogger("cache_utils")

MAX_THREADS = 64
DEFAULT_MAX_THREADS = 8  # the default thread count: the usable cores, at most this many
THREADS_ENV = "CACHE_UTILS_THREADS"
# Members in flight when reading: one per thread and this many more, inflated ahead.
READ_AHEAD = 1

T = TypeVar("T")


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        count = getattr(os, "process_cpu_count", os.cpu_count)()
        return max(1, count or 1)


def check_threads(threads: object) -> int:
    """`threads` as given when it is an int from 1 to MAX_THREADS: TypeError / ValueError otherwise."""
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise TypeError(f"threads must be an int from 1 to {MAX_THREADS}, got "
                        f"{type(threads).__name__}: {threads!r}")
    if not 1 <= threads <= MAX_THREADS:
        raise ValueError(f"threads must be an int from 1 to {MAX_THREADS}, got {threads!r}")
    return threads


def default_threads() -> int:
    """`CACHE_UTILS_THREADS` when set, else the usable cores, at most DEFAULT_MAX_THREADS.

    A malformed value (not a whole number from 1 to MAX_THREADS) is logged as a warning once per
    value and the default is used, as a bad `CACHE_UTILS_ALERT_TIMEOUT` is: a setting that only
    tunes speed must never stop a load."""
    value = os.environ.get(THREADS_ENV, "").strip()
    default = min(available_cores(), DEFAULT_MAX_THREADS)
    if not value:
        return default
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if not 1 <= threads <= MAX_THREADS:
        if value not in _warned_threads:
            _warned_threads.add(value)
            log.warning("ignoring %s=%r: not a whole number from 1 to %d; using %d thread(s)",
                        THREADS_ENV, value[:50], MAX_THREADS, default)
        return default
    return threads


_warned_threads: set[str] = set()  # malformed CACHE_UTILS_THREADS values already reported


def start_pool(size: int, name: str) -> ThreadPoolExecutor:
    """A pool of `size` threads named after `name` (`cache_utils-deflate`, `cache_utils-inflate`)."""
    return ThreadPoolExecutor(max_workers=size, thread_name_prefix=name)


def close_pool(pool: ThreadPoolExecutor) -> None:
    """Skip the jobs not started yet, wait for the running ones, stop the threads."""
    pool.shutdown(wait=True, cancel_futures=True)


def finished(fn: Callable[..., T], *args: Any) -> Future[T]:
    """`fn(*args)` run in the calling thread, as a future that is already done (its error, if
    any, is raised here, as the caller's own)."""
    future: Future[T] = Future()
    future.set_result(fn(*args))
    return future
