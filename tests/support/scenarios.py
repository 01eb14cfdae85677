"""Child-process workers and the shared fault-injection measurements.

The reliability tests call `run_kill_points`, `run_concurrency`, `run_memory_stress` and
`measure_alert_bound` with short settings and assert on what they return;
`benchmarks/reliability_figures.py` calls the same functions with longer settings and prints
the figures. Children run this file as a script: `python tests/support/scenarios.py MODE ...`.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import cache_utils
from cache_utils import (
    InMemoryCache,
    get_latest_cache_filename,
    list_caches,
    load_cache,
    load_latest_cache,
    read_cache,
    save_cache,
)
from cache_utils.stores import get_store

WORKERS = os.path.abspath(__file__)
DAY = "2024-01-15"
FROZEN_NOW = "2024-01-15 12:00:00"  # UTC; cb_time 23:00 UTC is still ahead, so nothing is stale
CB_TIME = "23:00"
TZ = "UTC"
# freezegun replaces module attributes that are time functions; one inside a dict stays real.
_CLOCK: dict[str, Callable[[], float]] = {"now": time.perf_counter}


def clock() -> float:
    """A monotonic clock that freezegun does not freeze."""
    return _CLOCK["now"]()


# --- values whose integrity can be checked ------------------------------------------------


def make_blob(size: int, seed: int) -> bytes:
    """Incompressible bytes, so a write of `size` bytes takes a predictable time."""
    return random.Random(seed).randbytes(size)


def make_value(writer: int, seq: int, payload: bytes) -> dict[str, Any]:
    """A value that carries its own checksum."""
    digest = _digest(writer, seq, hashlib.sha256(payload).hexdigest())
    return {"writer": writer, "seq": seq, "payload": payload, "sha": digest}


def _digest(writer: int, seq: int, payload_sha: str) -> str:
    return hashlib.sha256(f"{writer}:{seq}:{payload_sha}".encode()).hexdigest()


def value_ok(value: Any) -> bool:
    """Whether `value` is a complete value made by `make_value`."""
    if not isinstance(value, dict) or set(value) != {"writer", "seq", "payload", "sha"}:
        return False
    again = make_value(value["writer"], value["seq"], value["payload"])
    return again["sha"] == value["sha"]


def _env() -> dict[str, str]:
    """Children get no alerting or signing configuration from the parent."""
    env = dict(os.environ)
    for name in ("OPSGENIE_API_KEY", "OPSGENIE_API_URL", "CACHE_UTILS_SIGNING_KEY"):
        env.pop(name, None)
    return env


def spawn(*args: str) -> subprocess.Popen[str]:
    """Start `python tests/support/scenarios.py *args` with piped stdout."""
    return subprocess.Popen(
        [sys.executable, WORKERS, *args], stdout=subprocess.PIPE, text=True, env=_env()
    )


# --- child modes -----------------------------------------------------------------------------


def child_crash_writer(directory: str, prefix: str, start_seq: int, size: int) -> None:
    """Save ever newer values until killed; print `saved N` after each save returns."""
    payload = make_blob(size, start_seq)
    payload_sha = hashlib.sha256(payload).hexdigest()  # once: the loop is nearly all writing
    print("ready", flush=True)
    seq = start_seq
    while True:
        value = {"writer": 0, "seq": seq, "payload": payload, "sha": _digest(0, seq, payload_sha)}
        save_cache(value, prefix, DAY, directory)
        print(f"saved {seq}", flush=True)
        seq += 1


def child_writer(directory: str, prefix: str, writer: int, size: int, seconds: float) -> None:
    """Save this writer's values for `seconds`; print a JSON summary."""
    payload = make_blob(size, writer)
    saves, errors = 0, []
    deadline = clock() + seconds
    while clock() < deadline:
        try:
            save_cache(make_value(writer, saves, payload), prefix, DAY, directory)
            saves += 1
        except Exception as e:  # noqa: BLE001 - counted and reported to the parent
            errors.append(repr(e))
    print(json.dumps({"role": "writer", "saves": saves, "errors": errors[:5], "n_errors": len(errors)}))


def child_reader(directory: str, prefix: str, seconds: float) -> None:
    """`load_cache` over and over (time frozen at FROZEN_NOW); check every value; print a summary."""
    from freezegun import freeze_time

    loads, bad, errors, writers = 0, 0, [], set()
    with freeze_time(FROZEN_NOW, tick=True):
        deadline = clock() + seconds
        while clock() < deadline:
            try:
                data, _ = load_cache(prefix, CB_TIME, directory, tz=TZ)
            except Exception as e:  # noqa: BLE001 - counted and reported to the parent
                errors.append(repr(e))
                continue
            loads += 1
            if value_ok(data):
                writers.add(data["writer"])
            else:
                bad += 1
    print(json.dumps({"role": "reader", "loads": loads, "bad": bad, "errors": errors[:5],
                      "n_errors": len(errors), "writers": sorted(writers)}))


def child_pickle_vanishing_class(directory: str, prefix: str, module_dir: str) -> None:
    """Pickle an instance of a class from a module that only exists in this process."""
    sys.path.insert(0, module_dir)
    import vanishing_module_for_tests as mod  # created by the parent in module_dir

    save_cache({"obj": mod.Gone(42)}, prefix, DAY, directory)
    print("saved", flush=True)


# --- kill points ------------------------------------------------------------------------------


def run_kill_points(
    directory: str,
    kills: int = 20,
    size: int = 16 << 20,
    seed: int = 1,
    prefix: str = "crash",
    initial: bool = True,
) -> dict[str, Any]:
    """SIGKILL a child that saves `size`-byte values in a loop, `kills` times at random points.

    After each kill the final name must hold a complete value (the one before the kill or the
    one the child was finishing) or nothing when no save ever completed. Returns counts and
    every violation found.
    """
    rng = random.Random(seed)
    store = get_store(directory)
    path = os.path.join(directory, f"{prefix}_{DAY.replace('-', '')}.pkl.gz")
    prev: int | None = None
    if initial:
        save_cache(make_value(0, 0, make_blob(1024, 0)), prefix, DAY, directory)
        prev = 0
    write_s = _time_one_write(size)
    violations: list[str] = []
    mid_write = 0
    loads_checked = 0
    for k in range(kills):
        start = (prev or 0) + 1
        temps_before = {e.name for e in store.temp_entries(prefix)}
        proc = spawn("crash-writer", directory, prefix, str(start), str(size))
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("crash writer did not start")
        time.sleep(rng.uniform(0.0, 2.5 * write_s))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        acked = [int(line.split()[1]) for line in proc.stdout.read().splitlines()
                 if line.startswith("saved ")]
        proc.stdout.close()
        if {e.name for e in store.temp_entries(prefix)} - temps_before:
            mid_write += 1
        floor = acked[-1] if acked else prev
        try:
            value = read_cache(prefix, DAY, directory)
        except FileNotFoundError:
            if floor is not None:
                violations.append(f"kill {k}: final file missing after seq {floor} was saved")
            continue
        except Exception as e:  # noqa: BLE001 - any failure to read is a violation
            violations.append(f"kill {k}: {e!r}")
            continue
        seq = value.get("seq") if isinstance(value, dict) else None
        if not value_ok(value):
            violations.append(f"kill {k}: final file holds an inconsistent value")
        elif not (floor is None or seq in (floor, floor + 1)) or (floor is None and seq != start):
            violations.append(f"kill {k}: final file holds seq {seq}, expected {floor} or next")
        else:
            loaded = _load_frozen(prefix, directory)
            loads_checked += 1
            if not value_ok(loaded) or loaded["seq"] != seq:
                violations.append(f"kill {k}: load_cache did not return the file's value")
            prev = seq
    temps = store.temp_entries(prefix)
    latest = get_latest_cache_filename(prefix, directory)
    listed = [c.path for c in list_caches(directory)]
    if (prev is None and latest is not None) or (prev is not None and latest != path):
        violations.append(f"get_latest_cache_filename gave {latest!r}")
    if listed != ([path] if prev is not None else []):
        violations.append(f"list_caches gave {listed!r}")
    return {"kills": kills, "mid_write_kills": mid_write, "write_seconds": write_s,
            "loads_checked": loads_checked, "temp_files_left": len(temps),
            "violations": violations}


def _time_one_write(size: int) -> float:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        payload = make_blob(size, 99)
        t0 = clock()
        save_cache(make_value(0, 0, payload), "timing", DAY, d)
        return clock() - t0


def _load_frozen(prefix: str, directory: str) -> Any:
    from freezegun import freeze_time

    with freeze_time(FROZEN_NOW):
        return load_cache(prefix, CB_TIME, directory, tz=TZ)[0]


def age_temp_files(directory: str, prefix: str | None = None, seconds: float = 7200) -> int:
    """Set the mtime of every temp file back by `seconds`, as if its writer died long ago."""
    store = get_store(directory)
    entries = store.temp_entries(prefix)
    past = time.time() - seconds
    for e in entries:
        os.utime(store.path(e.name), (past, past))
    return len(entries)


# --- bit rot -----------------------------------------------------------------------------------


def run_bit_rot(
    directory: str, flips: int = 300, seed: int = 5, signing_key: str | None = None
) -> dict[str, int]:
    """Flip `flips` random single bits of a saved file, one at a time, and read it each time.

    `same`: loaded as the exact original (a harmless bit, e.g. the gzip header's MTIME);
    `detected`: CorruptCacheError from read_cache; `fallback`: load_latest_cache used the older
    file; `different`: data that differs from what was saved (must stay 0).
    """
    from cache_utils import CorruptCacheError, load_latest_cache

    original = {"ints": list(range(3000)), "text": "abc" * 300, "floats": [i / 7 for i in range(400)]}
    older = {"older": True}
    save_cache(older, "rot", "2024-01-14", directory, signing_key=signing_key)
    path = save_cache(original, "rot", "2024-01-15", directory, signing_key=signing_key)
    with open(path, "rb") as f:
        pristine = f.read()
    rng = random.Random(seed)
    counts = {"flips": flips, "same": 0, "detected": 0, "different": 0, "fallback": 0,
              "file_bytes": len(pristine)}
    for _ in range(flips):
        bit = rng.randrange(len(pristine) * 8)
        damaged = bytearray(pristine)
        damaged[bit // 8] ^= 1 << (bit % 8)
        with open(path, "wb") as f:
            f.write(damaged)
        try:
            data = read_cache("rot", "2024-01-15", directory, signing_key=signing_key)
        except CorruptCacheError:
            counts["detected"] += 1
        else:
            counts["same" if data == original else "different"] += 1
        hit, _ = load_latest_cache("rot", "2024-01-15", directory, signing_key=signing_key)
        if hit is not None and hit.data == older:
            counts["fallback"] += 1
        elif hit is None or hit.data != original:
            counts["different"] += 1
    with open(path, "wb") as f:
        f.write(pristine)
    return counts


# --- concurrent writers and readers ----------------------------------------------------------


def run_concurrency(
    directory: str,
    writers: int = 8,
    readers: int = 4,
    seconds: float = 3.0,
    size: int = 256 << 10,
    prefix: str = "shared",
) -> dict[str, Any]:
    """`writers` processes save the same prefix and date while `readers` processes load it."""
    save_cache(make_value(-1, 0, make_blob(1024, 0)), prefix, DAY, directory)
    procs = [spawn("writer", directory, prefix, str(w), str(size), str(seconds))
             for w in range(writers)]
    procs += [spawn("reader", directory, prefix, str(seconds)) for _ in range(readers)]
    summaries = []
    for p in procs:
        out, _ = p.communicate(timeout=seconds + 120)
        if p.returncode != 0:
            raise RuntimeError(f"worker exited with {p.returncode}")
        summaries.append(json.loads(out.strip().splitlines()[-1]))
    w = [s for s in summaries if s["role"] == "writer"]
    r = [s for s in summaries if s["role"] == "reader"]
    seen = sorted({x for s in r for x in s["writers"]})
    return {
        "writers": writers, "readers": readers, "seconds": seconds,
        "saves": sum(s["saves"] for s in w), "loads": sum(s["loads"] for s in r),
        "write_errors": sum(s["n_errors"] for s in w), "load_errors": sum(s["n_errors"] for s in r),
        "bad_values": sum(s["bad"] for s in r), "writers_seen": seen,
        "error_samples": [e for s in summaries for e in s["errors"]][:5],
    }


# --- InMemoryCache threaded stress -----------------------------------------------------------


def run_memory_stress(threads: int = 8, seconds: float = 2.5, seed: int = 7) -> dict[str, Any]:
    """Random get/put/put_many/get_many/put_state/delete/clear/keys from `threads` threads.

    Each thread owns the keys under ("own", i) and checks them exactly against its own model;
    all threads share the keys under ("shared",), where every read must be None or a value
    some thread put. Returns operation counts and every violation.
    """
    InMemoryCache.clear()
    ever_put: set[tuple[int, int]] = set()
    ever_lock = threading.Lock()
    state_keys: list[Any] = []
    violations: list[str] = []
    ops = [0] * threads
    start = threading.Barrier(threads)

    def shared_value(t: int, n: int) -> dict[str, Any]:
        return {"t": t, "n": n, "data": [n, [n + 1]]}

    def check_shared(v: Any, where: str) -> None:
        if v is None:
            return
        ok = (isinstance(v, dict) and v.get("data") == [v.get("n"), [v.get("n", 0) + 1]]
              and (v["t"], v["n"]) in ever_put)
        if not ok:
            violations.append(f"{where}: shared value never put: {v!r}")

    def worker(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        model: dict[tuple[Any, ...], Any] = {}
        states: dict[Any, Any] = {}
        counter = 0
        start.wait()
        deadline = clock() + seconds
        try:
            while clock() < deadline:
                counter += 1
                op = rng.randrange(11)
                g, k = rng.randrange(3), rng.randrange(6)
                key = ("own", i, g, k)
                if op == 0:
                    v = {"i": i, "n": counter, "l": [counter, {"x": counter}]}
                    InMemoryCache.put(v, key)
                    model[key] = {"i": i, "n": counter, "l": [counter, {"x": counter}]}
                    v["l"][1]["x"] = -1  # the cache holds a copy: this must not leak in
                elif op == 1:
                    got = InMemoryCache.get(key)
                    if got != model.get(key):
                        violations.append(f"thread {i}: get {key} = {got!r}, model {model.get(key)!r}")
                    elif isinstance(got, dict):
                        got["l"][1]["x"] = -2  # mutate the copy: the cache must not change
                elif op == 2:
                    batch = {kk: [i, counter, kk] for kk in rng.sample(range(6), 3)}
                    InMemoryCache.put_many(batch, ("own", i, g))
                    model.update({("own", i, g, kk): v for kk, v in batch.items()})
                elif op == 3:
                    wanted = rng.sample(range(6), 3)
                    got = InMemoryCache.get_many(("own", i, g), wanted)
                    expect = {kk: model[("own", i, g, kk)] for kk in wanted if ("own", i, g, kk) in model}
                    if got != expect:
                        violations.append(f"thread {i}: get_many {got!r} != {expect!r}")
                    filled = InMemoryCache.get_many(("own", i, g), {kk: "dflt" for kk in wanted})
                    expect2 = {kk: model.get(("own", i, g, kk), "dflt") for kk in wanted}
                    if filled != expect2:
                        violations.append(f"thread {i}: get_many(dict) {filled!r} != {expect2!r}")
                elif op == 4:
                    existed = InMemoryCache.delete(key)
                    if existed != (key in model):
                        violations.append(f"thread {i}: delete {key} returned {existed}")
                    model.pop(key, None)
                elif op == 5 and rng.random() < 0.2:
                    n = InMemoryCache.clear("own", i, g)
                    doomed = [kk for kk in model if kk[:3] == ("own", i, g)]
                    if n != len(doomed):
                        violations.append(f"thread {i}: clear removed {n}, model had {len(doomed)}")
                    for kk in doomed:
                        del model[kk]
                elif op == 6:
                    keys = set(InMemoryCache.keys("own", i))
                    if keys != set(model):
                        violations.append(f"thread {i}: keys {sorted(keys ^ set(model))} differ")
                elif op == 7:
                    state = [i, counter]
                    sk = InMemoryCache.put_state(state, ("state", i))
                    states[sk] = state
                    with ever_lock:
                        state_keys.append(sk)
                    if InMemoryCache.get_state(("state", i), sk) is not state:
                        violations.append(f"thread {i}: get_state did not return the same object")
                elif op == 8:
                    with ever_lock:
                        ever_put.add((i, counter))
                    InMemoryCache.put(shared_value(i, counter), "shared", k)
                elif op == 9:
                    check_shared(InMemoryCache.get("shared", k), f"thread {i}")
                else:
                    got = InMemoryCache.get_many("shared", list(range(6)))
                    for v in got.values():
                        check_shared(v, f"thread {i} get_many")
                ops[i] += 1
        except Exception as e:  # noqa: BLE001 - an exception is a violation
            violations.append(f"thread {i}: {e!r}")
            return
        final = {kk: InMemoryCache.get(kk) for kk in model}
        if final != model:
            violations.append(f"thread {i}: final state differs from model (lost update)")
        if set(InMemoryCache.keys("own", i)) != set(model):
            violations.append(f"thread {i}: final keys differ from model")
        for sk, state in states.items():
            if InMemoryCache.get_state(("state", i), sk) is not state:
                violations.append(f"thread {i}: state {sk} lost")

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = clock()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = clock() - t0
    if len(state_keys) != len(set(state_keys)):
        violations.append("put_state generated a duplicate key")
    total = sum(ops)
    InMemoryCache.clear()
    return {"threads": threads, "seconds": elapsed, "ops": total, "ops_per_second": total / elapsed,
            "state_keys": len(state_keys), "violations": violations[:20]}


def measure_reader_latency(items: int = 200_000, hold_lock: bool = False) -> dict[str, float]:
    """Max latency of small gets while another thread copies a huge nested list out of the cache.

    `hold_lock=True` is the control: the copier holds the cache's lock while it copies, which is
    what a design that copies under the lock would do; readers then wait for the whole copy.
    """
    from cache_utils.memory import copy_value

    InMemoryCache.clear()
    big = [[i, [i]] for i in range(items)]
    InMemoryCache.put(big, "big")
    InMemoryCache.put({"small": 1}, "small")
    started, done = threading.Event(), threading.Event()
    copy_time: list[float] = []

    def copier() -> None:
        started.set()
        t0 = clock()
        if hold_lock:
            with InMemoryCache._lock:
                copy_value(InMemoryCache._cache_data[("big",)])
        else:
            InMemoryCache.get("big")
        copy_time.append(clock() - t0)
        done.set()

    # The collector's pauses stop every thread whatever the locking: keep them out of the figure.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        thread = threading.Thread(target=copier)
        thread.start()
        started.wait()
        worst, gets = 0.0, 0
        while not done.is_set():
            t0 = clock()
            InMemoryCache.get("small")
            worst = max(worst, clock() - t0)
            gets += 1
        thread.join()
    finally:
        if gc_was_enabled:
            gc.enable()
    InMemoryCache.clear()
    return {"copy_seconds": copy_time[0], "reader_max_seconds": worst, "reader_gets": gets}


# --- alert failures --------------------------------------------------------------------------


class _Counter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def measure_alert_bound(
    directory: str, api_url: str, api_key: str, timeout: float = 1.0, prefix: str = "alerted"
) -> dict[str, Any]:
    """Time one `load_cache` that must alert (today's file corrupt, yesterday's good) against
    an alert endpoint; count the warnings about the failed alert; check the data."""
    from freezegun import freeze_time

    good = make_value(1, 1, make_blob(4096, 1))
    save_cache(good, prefix, "2024-01-14", directory)
    with open(os.path.join(directory, f"{prefix}_20240115.pkl.gz"), "wb") as f:
        f.write(b"\x1f\x8b\x08 not really gzip")
    alerter = cache_utils.configure_alerts(api_key=api_key, api_url=api_url, timeout=timeout)
    counter = _Counter()
    logger = logging.getLogger("cache_utils.alerts")
    logger.addHandler(counter)
    try:
        with freeze_time(FROZEN_NOW, tick=True):
            t0 = clock()
            data, _ = load_cache(prefix, CB_TIME, directory, tz=TZ)
            elapsed = clock() - t0
    finally:
        logger.removeHandler(counter)
        cache_utils.configure_alerts()
    failures = [r for r in counter.records if not r.getMessage().startswith("ALERT [")]
    messages = [r.getMessage() for r in counter.records]
    return {"elapsed": elapsed, "timeout": timeout, "failure_logs": len(failures),
            "data_ok": data == good, "messages": messages, "alerter": repr(alerter)}


# --- bad inputs ------------------------------------------------------------------------------


def bad_input_cases(directory: str) -> list[tuple[str, str, Callable[[], Any], type[BaseException], str]]:
    """(what, call shown to the user, call, expected exception type, text the message must name)."""
    from cache_utils import (
        GzipPickleSerializer,
        OpsGenieAlerter,
        WebhookAlerter,
        cache_dates,
        cache_filename,
        configure_alerts,
        prune,
    )
    from cache_utils import InMemoryCache as C
    from cache_utils.alerts import Alert
    from cache_utils.timing import resolve_zone

    a_file = os.path.join(directory, "plain_file")
    if os.path.isdir(directory):  # (only listing the cases, e.g. for test ids, creates nothing)
        with open(a_file, "w") as f:
            f.write("not a directory")
    d = directory
    cases: list[tuple[str, str, Callable[[], Any], type[BaseException], str]] = [
        ("prefix", "save_cache(1, '')", lambda: save_cache(1, "", DAY, d), ValueError, "empty"),
        ("prefix", "save_cache(1, '../x')", lambda: save_cache(1, "../x", DAY, d), ValueError, "'../x'"),
        ("prefix", "save_cache(1, '/etc/passwd')", lambda: save_cache(1, "/etc/passwd", DAY, d),
         ValueError, "'/etc/passwd'"),
        ("prefix", "save_cache(1, 'a/b')", lambda: save_cache(1, "a/b", DAY, d), ValueError, "'a/b'"),
        ("prefix", "save_cache(1, 'a\\\\b')", lambda: save_cache(1, "a\\b", DAY, d), ValueError, "'a\\\\b'"),
        ("prefix", "save_cache(1, '..')", lambda: save_cache(1, "..", DAY, d), ValueError, "'..'"),
        ("prefix", "save_cache(1, '.hidden')", lambda: save_cache(1, ".hidden", DAY, d),
         ValueError, "'.hidden'"),
        ("prefix", "save_cache(1, 'a\\x00b')", lambda: save_cache(1, "a\0b", DAY, d),
         ValueError, "'a\\x00b'"),
        ("prefix", "save_cache(1, 'sales_*')", lambda: save_cache(1, "sales_*", DAY, d),
         ValueError, "'sales_*'"),
        ("prefix", "get_latest_cache_filename('p?')", lambda: get_latest_cache_filename("p?", d),
         ValueError, "'p?'"),
        ("prefix", "load_cache('[ab]', '09:00')", lambda: load_cache("[ab]", "09:00", d),
         ValueError, "'[ab]'"),
        ("prefix", "read_cache(None)", lambda: read_cache(None, DAY, d), TypeError, "None"),
        ("prefix", "list_caches(prefix=42)", lambda: list_caches(d, 42), TypeError, "42"),
        ("prefix", "prune(b'x', 1)", lambda: prune(b"x", 1, d), TypeError, "b'x'"),
        ("prefix", "cache_dates('../../etc')", lambda: cache_dates("../../etc", d),
         ValueError, "'../../etc'"),
        ("date", "save_cache(1, 'p', 'not a date')", lambda: save_cache(1, "p", "not a date", d),
         ValueError, "'not a date'"),
        ("date", "save_cache(1, 'p', '20241301')", lambda: save_cache(1, "p", "20241301", d),
         ValueError, "'20241301'"),
        ("date", "save_cache(1, 'p', '../x')", lambda: save_cache(1, "p", "../x", d),
         ValueError, "'../x'"),
        ("date", "read_cache('p', 20240115)", lambda: read_cache("p", 20240115, d),
         TypeError, "20240115"),
        ("date", "get_latest_cache_filename('p', d, on_or_before='soon')",
         lambda: get_latest_cache_filename("p", d, "soon"), ValueError, "'soon'"),
        ("date", "cache_filename('p', '../x', keep_date_as_string=True)",
         lambda: cache_filename("p", "../x", True, d), ValueError, "'../x'"),
        ("cb_time", "load_cache('p', '25:00')", lambda: load_cache("p", "25:00", d), ValueError, "'25:00'"),
        ("cb_time", "load_cache('p', '9am')", lambda: load_cache("p", "9am", d), ValueError, "'9am'"),
        ("cb_time", "load_cache('p', 900)", lambda: load_cache("p", 900, d), TypeError, "900"),
        ("cb_time", "load_cache('p', None)", lambda: load_cache("p", None, d), TypeError, "None"),
        ("retry_interval", "load_cache('p', '09:00', retry_interval=-5)",
         lambda: load_cache("p", "09:00", d, retry_interval=-5), ValueError, "-5"),
        ("retry_interval", "load_cache('p', '09:00', retry_interval='15m')",
         lambda: load_cache("p", "09:00", d, retry_interval="15m"), TypeError, "'15m'"),
        ("timezone", "load_cache('p', '09:00', tz='Mars/Olympus')",
         lambda: load_cache("p", "09:00", d, tz="Mars/Olympus"), ValueError, "'Mars/Olympus'"),
        ("timezone", "resolve_zone(5)", lambda: resolve_zone(5), TypeError, "5"),
        ("directory", "save_cache(1, 'p', directory=<a file>)", lambda: save_cache(1, "p", DAY, a_file),
         NotADirectoryError, a_file),
        ("directory", "list_caches(<a file>)", lambda: list_caches(a_file), NotADirectoryError, a_file),
        ("directory", "save_cache(1, 'p', directory=3)", lambda: save_cache(1, "p", DAY, 3), TypeError, "3"),
        ("directory", "load_cache('p', '09:00', 'da\\x00ta')", lambda: load_cache("p", "09:00", "da\0ta"),
         ValueError, "'da\\x00ta'"),
        ("keep", "prune('p', -1)", lambda: prune("p", -1, d), ValueError, "-1"),
        ("keep", "prune('p', '3')", lambda: prune("p", "3", d), TypeError, "'3'"),
        ("keep", "prune('p', True)", lambda: prune("p", True, d), TypeError, "True"),
        ("level", "save_cache(1, 'p', level=9)", lambda: save_cache(1, "p", DAY, d, level=9),
         ValueError, "9"),
        ("level", "GzipPickleSerializer(level='fast')", lambda: GzipPickleSerializer(level="fast"),
         TypeError, "'fast'"),
        ("signing key", "save_cache(1, 'p', signing_key=123)",
         lambda: save_cache(1, "p", DAY, d, signing_key=123), TypeError, "int"),
        ("key", "InMemoryCache.get(())", lambda: C.get(()), ValueError, "empty"),
        ("key", "InMemoryCache.get('users', ['x'])", lambda: C.get("users", ["x"]), TypeError, "['x']"),
        ("key", "InMemoryCache.put(1, {'a': 1})", lambda: C.put(1, {"a": 1}), TypeError, "{'a': 1}"),
        ("config", "configure_alerts(api_key='k', timeout=0)",
         lambda: configure_alerts(api_key="k", timeout=0), ValueError, "0"),
        ("config", "configure_alerts(api_key='k', timeout='5')",
         lambda: configure_alerts(api_key="k", timeout="5"), TypeError, "'5'"),
        ("config", "OpsGenieAlerter('')", lambda: OpsGenieAlerter(""), ValueError, "api_key"),
        ("config", "OpsGenieAlerter('k', priority='P9')", lambda: OpsGenieAlerter("k", priority="P9"),
         ValueError, "'P9'"),
        ("config", "WebhookAlerter('ftp://x')", lambda: WebhookAlerter("ftp://x"), ValueError, "'ftp://x'"),
        ("config", "Alert('m', alias='')", lambda: Alert("m", ""), ValueError, "alias"),
        ("config", "Alert('m', 'a', priority='urgent')", lambda: Alert("m", "a", priority="urgent"),
         ValueError, "'urgent'"),
    ]
    return cases


def run_bad_inputs(directory: str) -> list[dict[str, str]]:
    """Try every bad input; return what each gave (type, message) and whether it matched."""
    rows = []
    for what, shown, call, expected, needle in bad_input_cases(directory):
        try:
            call()
        except BaseException as e:  # noqa: BLE001 - recorded
            got, message = type(e), str(e)
        else:
            got, message = type(None), "(no error)"
        rows.append({
            "what": what, "call": shown, "expected": expected.__name__, "got": got.__name__,
            "message": message, "ok": str(issubclass(got, expected) and needle in message),
            "needle": needle,
        })
    return rows


def _main(argv: list[str]) -> None:
    mode, args = argv[0], argv[1:]
    if mode == "crash-writer":
        child_crash_writer(args[0], args[1], int(args[2]), int(args[3]))
    elif mode == "writer":
        child_writer(args[0], args[1], int(args[2]), int(args[3]), float(args[4]))
    elif mode == "reader":
        child_reader(args[0], args[1], float(args[2]))
    elif mode == "vanishing-class":
        child_pickle_vanishing_class(args[0], args[1], args[2])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


# --- hangs bounded, bad settings survived, secrets in every form -------------------------------


def _timed_call(fn: Callable[[], Any]) -> tuple[float, str]:
    t0 = clock()
    try:
        value = fn()
    except Exception as e:  # noqa: BLE001 - reported as the outcome
        return clock() - t0, f"{type(e).__name__}: {str(e)[:90]}"
    return clock() - t0, f"returned {value!r}"[:100]


def measure_hangs(directory: str, with_moto: bool = True) -> list[dict[str, Any]]:
    """Things that used to hang: a FIFO or a device named like today's file, and an S3 store that
    accepts connections and never answers, or stops reading mid-upload. Each row: how long, what."""
    from .s3_server import FAKE_ENV, silent_endpoint, stalling_proxy, start_moto

    rows = []
    fifo_dir = os.path.join(directory, "fifo")
    save_cache("yesterday", "p", "2024-01-14", fifo_dir)
    os.mkfifo(os.path.join(fifo_dir, "p_20240115.pkl.gz"))
    took, what = _timed_call(lambda: load_latest_cache("p", "2024-01-15", fifo_dir)[0].data)
    rows.append({"scenario": "a FIFO named like today's file, `load_latest_cache`", "seconds": took,
                 "outcome": what, "ok": what == "returned 'yesterday'"})
    zero_dir = os.path.join(directory, "zero")
    save_cache("yesterday", "p", "2024-01-14", zero_dir, signing_key="k")
    os.symlink("/dev/zero", os.path.join(zero_dir, "p_20240115.pkl.gz"))
    took, what = _timed_call(lambda: load_latest_cache("p", "2024-01-15", zero_dir, signing_key="k")[0].data)
    rows.append({"scenario": "today's file a symlink to /dev/zero, signed load", "seconds": took,
                 "outcome": what, "ok": what == "returned 'yesterday'"})
    saved = {k: os.environ.get(k) for k in FAKE_ENV}
    os.environ.update(FAKE_ENV)
    try:
        with silent_endpoint() as endpoint:
            opts = {"endpoint_url": endpoint, "config_kwargs": {
                "read_timeout": 1, "connect_timeout": 1, "retries": {"max_attempts": 1}}}
            for label, fn in (
                ("read", lambda: cache_utils.read_cache("p", "2024-01-01", "s3://b/c", storage_options=opts)),
                ("save 100 B (one PUT)", lambda: save_cache(b"x" * 100, "p", "2024-01-01", "s3://b/c",
                                                            storage_options=opts)),
                ("save 20 MiB (multipart)", lambda: save_cache(os.urandom(20 << 20), "p", "2024-01-01",
                                                               "s3://b/c", storage_options=opts)),
            ):
                took, what = _timed_call(fn)
                rows.append({"scenario": f"S3 endpoint that accepts and never answers: {label} "
                             "(read_timeout=1, connect_timeout=1, max_attempts=1)", "seconds": took,
                             "outcome": what, "ok": what.startswith("TimeoutError") and took < 10})
        if with_moto:
            moto = start_moto()
            try:
                bucket = moto.new_bucket()
                url = f"s3://{bucket}/c"
                with stalling_proxy(moto.endpoint, f"PUT /{bucket}/c/p_20240101".encode()) as endpoint:
                    opts = {"endpoint_url": endpoint, "config_kwargs": {
                        "read_timeout": 2, "connect_timeout": 2, "retries": {"max_attempts": 1}}}
                    took, what = _timed_call(lambda: save_cache(os.urandom(8 << 20), "p", "2024-01-01", url,
                                                                storage_options=opts))
                rows.append({"scenario": "S3 through a proxy that stops forwarding mid-upload: save 8 MiB "
                             "(bound: 2 s + 2 s + 8 MiB at 1 MiB/s)", "seconds": took, "outcome": what,
                             "ok": what.startswith("TimeoutError") and not moto.keys(bucket)})
            finally:
                moto.server.stop()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return rows


BAD_TIMEOUTS = ["0", "-1", "nan", "inf", "1e300", "abc"]


def measure_bad_alert_settings(directory: str, api_url: str, api_key: str) -> list[dict[str, Any]]:
    """`load_cache` of a good today's file with each malformed CACHE_UTILS_ALERT_TIMEOUT set (and
    a key, so alerting is on): the data still loads, and the setting is reported as a warning."""
    from freezegun import freeze_time

    save_cache("today", "p", "2024-01-15", directory)
    rows = []
    for value in BAD_TIMEOUTS:
        env = {"OPSGENIE_API_KEY": api_key, "OPSGENIE_API_URL": api_url, "CACHE_UTILS_ALERT_TIMEOUT": value}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        cache_utils.configure_alerts(None)  # back to the environment's configuration
        counter = _Counter()
        logging.getLogger("cache_utils").addHandler(counter)
        try:
            with freeze_time(FROZEN_NOW, tick=True):
                took, what = _timed_call(lambda: load_cache("p", CB_TIME, directory, tz=TZ)[0])
        finally:
            logging.getLogger("cache_utils").removeHandler(counter)
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            cache_utils.configure_alerts(None)
        warned = [r.getMessage() for r in counter.records if "CACHE_UTILS_ALERT_TIMEOUT" in r.getMessage()]
        rows.append({"value": value, "seconds": took, "outcome": what, "warnings": len(warned),
                     "ok": what == "returned 'today'" and len(warned) == 1})
    return rows


def measure_secret_forms(directory: str, api_url: str) -> dict[str, Any]:
    """An alert key read from a secret file (ending in a newline) while alerts fail: in how many
    log records (all loggers, DEBUG and up, with tracebacks) any form of it appears."""
    from freezegun import freeze_time

    key = "og-secret-3f9c2a7d\n"
    forms = {key.strip(), repr(key), repr(key.encode()), "GenieKey " + key.strip()}
    save_cache("yesterday", "p", "2024-01-14", directory)
    with open(os.path.join(directory, "p_20240115.pkl.gz"), "wb") as f:
        f.write(b"\x1f\x8b\x08 not really gzip")  # today's file corrupt: load_cache must alert
    seen: list[str] = []

    class _All(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    handler = _All(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    saved = {k: os.environ.get(k) for k in ("OPSGENIE_API_KEY", "OPSGENIE_API_URL")}
    os.environ.update({"OPSGENIE_API_KEY": key, "OPSGENIE_API_URL": api_url})
    cache_utils.configure_alerts(None)
    try:
        with freeze_time(FROZEN_NOW, tick=True):
            data, _ = load_cache("p", CB_TIME, directory, tz=TZ)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        cache_utils.configure_alerts(None)
    leaks = [text for text in seen if any(form in text for form in forms)]
    return {"records": len(seen), "forms": len(forms), "leaks": len(leaks), "data_ok": data == "yesterday"}


if __name__ == "__main__":
    _main(sys.argv[1:])
