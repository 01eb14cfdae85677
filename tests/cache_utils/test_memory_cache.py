"""InMemoryCache: the seed's classmethod API and semantics, plus delete/clear/keys/contains."""

from __future__ import annotations

import re
import threading

import numpy as np
import pandas as pd
import pytest
from freezegun import freeze_time

from cache_utils import InMemoryCache


def test_key_forms_address_the_same_entry() -> None:
    InMemoryCache.put({"user": "john"}, "users", "john")
    assert InMemoryCache.get("users", "john") == {"user": "john"}
    assert InMemoryCache.get(["users"], "john") == {"user": "john"}
    assert InMemoryCache.get(("users", "john")) == {"user": "john"}
    assert InMemoryCache.get(["users", "john"]) == {"user": "john"}
    InMemoryCache.put(2, ("users", "john"))
    assert InMemoryCache.get("users", "john") == 2
    assert InMemoryCache.keys() == [("users", "john")]


def test_single_string_key_and_non_string_parts() -> None:
    InMemoryCache.put("v", "solo")
    assert InMemoryCache.get("solo") == "v"
    InMemoryCache.put("w", "prices", 2024, ("AAPL", "close"))
    assert InMemoryCache.get("prices", 2024, ("AAPL", "close")) == "w"
    assert InMemoryCache.get("prices", 2024, "AAPL", "close") is None  # a tuple key part stays whole


def test_get_missing_is_none() -> None:
    assert InMemoryCache.get("nothing", "here") is None
    assert InMemoryCache.get("nothing", "here", default_copy=False) is None


def test_unhashable_or_empty_key_is_an_error() -> None:
    with pytest.raises(TypeError, match="hashable"):
        InMemoryCache.put(1, "users", ["not", "hashable"])
    with pytest.raises(ValueError, match="empty"):
        InMemoryCache.get(())


def test_get_many_with_a_list_returns_the_found_ones() -> None:
    InMemoryCache.put_many({"john": {"age": 30}, "jane": {"age": 25}}, "users")
    assert InMemoryCache.get_many("users", ["john", "jane", "bob"]) == {
        "john": {"age": 30},
        "jane": {"age": 25},
    }
    assert InMemoryCache.get_many(["users"], ("jane",)) == {"jane": {"age": 25}}


def test_get_many_with_a_dict_fills_it_in_place_keeping_defaults() -> None:
    InMemoryCache.put_many({"john": {"age": 30}}, "users")
    wanted = {"john": None, "bob": "default"}
    result = InMemoryCache.get_many("users", wanted)
    assert result is wanted
    assert wanted == {"john": {"age": 30}, "bob": "default"}
    wanted["john"]["age"] = 99  # a copy: the cache is untouched
    assert InMemoryCache.get("users", "john") == {"age": 30}


def test_get_many_default_copy_false_returns_stored_objects() -> None:
    InMemoryCache.put({"age": 30}, "users", "john")
    first = InMemoryCache.get_many("users", ["john"], default_copy=False)["john"]
    second = InMemoryCache.get_many("users", ["john"], default_copy=False)["john"]
    assert first is second


def test_deep_copy_isolation_at_any_depth() -> None:
    original = {"a": [1, {"b": [2, {"c": {"d": [3]}}]}], "s": {1, 2}, "t": ([1],)}
    InMemoryCache.put(original, "deep")
    original["a"][1]["b"][1]["c"]["d"].append("changed after put")  # the put stored a copy
    got = InMemoryCache.get("deep")
    assert got["a"][1]["b"][1]["c"]["d"] == [3]
    got["a"][1]["b"][1]["c"]["d"].append(4)
    got["a"].append("x")
    got["s"].add(3)
    got["t"][0].append(2)
    assert InMemoryCache.get("deep") == {"a": [1, {"b": [2, {"c": {"d": [3]}}]}], "s": {1, 2}, "t": ([1],)}


class Point:
    def __init__(self, xs: list[int]) -> None:
        self.xs = xs


def test_custom_objects_and_numpy_arrays_are_copied() -> None:
    InMemoryCache.put({"p": Point([1]), "arr": np.arange(3)}, "objs")
    got = InMemoryCache.get("objs")
    got["p"].xs.append(2)
    got["arr"][0] = 100
    again = InMemoryCache.get("objs")
    assert again["p"].xs == [1]
    assert again["arr"].tolist() == [0, 1, 2]


def test_dataframe_copy_isolation_both_ways() -> None:
    frame = pd.DataFrame({"a": [1, 2, 3], "b": [1.0, 2.0, 3.0]})
    InMemoryCache.put({"frame": frame, "series": frame["a"]}, "frames")
    frame.loc[0, "a"] = 100  # caller changes its own frame after the put
    got = InMemoryCache.get("frames")
    assert got["frame"]["a"].tolist() == [1, 2, 3]
    got["frame"].loc[1, "a"] = -1  # caller changes the returned frame
    got["frame"]["c"] = 0
    got["series"].iloc[2] = -3
    again = InMemoryCache.get("frames")
    assert again["frame"]["a"].tolist() == [1, 2, 3]
    assert list(again["frame"].columns) == ["a", "b"]
    assert again["series"].tolist() == [1, 2, 3]


def test_dataframe_get_shares_memory_until_written() -> None:
    frame = pd.DataFrame({"a": np.arange(1_000_000)})
    InMemoryCache.put(frame, "big")
    stored = InMemoryCache.get("big", default_copy=False)
    got = InMemoryCache.get("big")
    assert got is not stored
    # Copy-on-write: the returned frame is a view of the same buffer, not a full copy ...
    assert np.shares_memory(got["a"].to_numpy(), stored["a"].to_numpy())
    got.loc[0, "a"] = -1
    # ... until one side writes, which then copies.
    assert stored.loc[0, "a"] == 0


def test_default_copy_false_and_get_state_return_the_same_object() -> None:
    value = {"n": [1]}
    InMemoryCache.put(value, "shared", "k")
    a = InMemoryCache.get("shared", "k", default_copy=False)
    b = InMemoryCache.get("shared", "k", default_copy=False)
    assert a is b
    state = {"counter": 0}
    key = InMemoryCache.put_state(state, "process")
    assert InMemoryCache.get_state("process", key) is state  # put_state stores the object itself
    InMemoryCache.get_state("process", key)["counter"] += 1
    assert state["counter"] == 1
    assert InMemoryCache.get("process", key) == {"counter": 1}
    assert InMemoryCache.get("process", key) is not state


def test_put_state_with_explicit_key() -> None:
    assert InMemoryCache.put_state({"s": 1}, "process", "state_1") == "state_1"
    assert InMemoryCache.get_state("process", "state_1") == {"s": 1}
    assert InMemoryCache.get_state(["process"], "state_1") == {"s": 1}


def test_put_state_keys_are_unique_across_threads_in_the_same_microsecond() -> None:
    keys: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        mine = [InMemoryCache.put_state({"i": i}, "states") for i in range(1000)]
        with lock:
            keys.extend(mine)

    with freeze_time("2024-01-15 09:30:00.123456"):  # every call sees the same microsecond
        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert len(keys) == 8000
    assert len(set(keys)) == 8000
    assert all(re.fullmatch(r"agk_20240115093000123456_\d+", k) for k in keys), keys[:3]
    assert len(InMemoryCache.keys("states")) == 8000


def test_delete() -> None:
    InMemoryCache.put(1, "users", "john")
    assert InMemoryCache.delete("users", "john") is True
    assert InMemoryCache.get("users", "john") is None
    assert InMemoryCache.delete(["users"], "john") is False


def test_clear_a_subtree() -> None:
    InMemoryCache.put(1, ["market_data", "stocks"], "AAPL")
    InMemoryCache.put(2, ["market_data", "stocks"], "MSFT")
    InMemoryCache.put(3, ["market_data", "fx"], "EURUSD")
    InMemoryCache.put(4, "market_data_archive", "x")  # similar name, different subtree
    InMemoryCache.put(5, "users", "john")
    assert InMemoryCache.clear(["market_data", "stocks"]) == 2
    assert InMemoryCache.keys("market_data") == [("market_data", "fx", "EURUSD")]
    assert InMemoryCache.clear("market_data") == 1
    assert InMemoryCache.keys() == [("market_data_archive", "x"), ("users", "john")]
    assert InMemoryCache.clear() == 2
    assert InMemoryCache.keys() == []


def test_keys_and_contains() -> None:
    InMemoryCache.put_many({"john": 1, "jane": 2}, "users")
    InMemoryCache.put(3, "groups", "admins")
    assert InMemoryCache.keys("users") == [("users", "jane"), ("users", "john")]
    assert InMemoryCache.keys(["users"], "jane") == [("users", "jane")]
    assert InMemoryCache.contains("users", "john")
    assert InMemoryCache.contains(("users", "john"))
    assert not InMemoryCache.contains("users")  # a prefix is not an entry
    InMemoryCache.put(None, "users", "nobody")
    assert InMemoryCache.contains("users", "nobody")  # a stored None is still an entry


def test_seed_complex_key_example_working_equivalent() -> None:
    # The seed passes "AAPL", "2024-01-15" after prefix_keys=... (a SyntaxError). This is it, valid:
    InMemoryCache.put({"price": 150.50}, ["market_data", "stocks"], "AAPL", "2024-01-15")
    price_data = InMemoryCache.get(["market_data", "stocks"], "AAPL", "2024-01-15")
    assert price_data == {"price": 150.50}
    assert InMemoryCache.get(("market_data", "stocks", "AAPL", "2024-01-15")) == {"price": 150.50}


def test_seed_in_memory_example_runs() -> None:
    InMemoryCache.put({"user": "john"}, "users", "john_id")
    assert InMemoryCache.get("users", "john_id") == {"user": "john"}
    users = {"john": {"name": "John", "age": 30}, "jane": {"name": "Jane", "age": 25}}
    InMemoryCache.put_many(users, "users")
    assert InMemoryCache.get_many("users", ["john", "jane"]) == users
    state = {"counter": 0, "status": "running"}
    assert InMemoryCache.put_state(state, "process", "state_1") == "state_1"
    auto_key = InMemoryCache.put_state(state, "process")
    assert auto_key.startswith("agk_")
    assert InMemoryCache.get_state("process", auto_key) is state


def test_internal_methods_of_the_seed_still_work() -> None:
    with InMemoryCache._lock:
        InMemoryCache._assume_locked_put({"a": [1]}, ("x", "y"))
        got = InMemoryCache._assume_locked_get(("x", "y"))
    got["a"].append(2)
    assert InMemoryCache.get("x", "y") == {"a": [1]}
    assert InMemoryCache._combine_prefix_with_keys(["x"], ["y"]) == ("x", "y")


class SlowToCopy:
    """Copying it blocks until released, so a test can look at the lock mid-copy."""

    started = threading.Event()
    release = threading.Event()

    def __deepcopy__(self, memo: dict[int, object]) -> SlowToCopy:
        SlowToCopy.started.set()
        SlowToCopy.release.wait(30)
        return SlowToCopy()


def test_copying_a_value_does_not_hold_the_lock() -> None:
    InMemoryCache.put_state(SlowToCopy(), "slow", "k")  # put_state stores without copying
    reader = threading.Thread(target=InMemoryCache.get, args=("slow", "k"))
    reader.start()
    try:
        assert SlowToCopy.started.wait(30)
        # The reader is in the middle of copying: other threads can still use the cache.
        assert InMemoryCache._lock.acquire(timeout=5)
        InMemoryCache._lock.release()
        InMemoryCache.put(1, "other")
        assert InMemoryCache.get("other") == 1
    finally:
        SlowToCopy.release.set()
        reader.join(30)
    assert not reader.is_alive()


def test_concurrent_puts_and_gets_are_consistent() -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(500):
                InMemoryCache.put({"n": n, "i": i}, "t", n)
                got = InMemoryCache.get("t", n)
                assert got == {"n": n, "i": i}
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(InMemoryCache.keys("t")) == 4


class Node:
    def __init__(self) -> None:
        self.parent: Node | None = None
        self.children: list[Node] = []


def test_self_referencing_values_keep_their_cycles() -> None:
    """Issue 18 item 10: a value that contains itself raised RecursionError on put and get; the
    copy now holds the same cycle, as `copy.deepcopy` makes it, and shares nothing with the stored one."""
    looped: list[object] = [1]
    looped.append(looped)
    mapping: dict[str, object] = {"name": "m"}
    mapping["self"] = mapping
    through_tuple: list[object] = []
    through_tuple.append((through_tuple, "x"))
    root = Node()
    child = Node()
    child.parent = root
    root.children.append(child)
    value = {"list": looped, "dict": mapping, "tuple": through_tuple, "tree": root}
    InMemoryCache.put(value, "cycles")
    for got in (InMemoryCache.get("cycles"), InMemoryCache.get("cycles")):
        assert got["list"][1] is got["list"] and got["list"] is not looped
        assert got["dict"]["self"] is got["dict"] and got["dict"] is not mapping
        assert got["tuple"][0][0] is got["tuple"] and got["tuple"] is not through_tuple
        tree = got["tree"]
        assert tree is not root and tree.children[0].parent is tree
    stored = InMemoryCache.get("cycles", default_copy=False)
    assert stored["list"] is not looped  # put stored a copy
    got = InMemoryCache.get("cycles")
    got["list"].append("changed")
    assert len(InMemoryCache.get("cycles")["list"]) == 2


def test_shared_sub_objects_stay_shared_in_the_copy() -> None:
    """Issue 18 item 10: one object reached twice came back as two separate copies."""
    shared = [1, 2]
    point = Point(shared)
    frame = pd.DataFrame({"cells": [shared, shared], "n": [1, 2]})
    cells = np.empty(1, dtype=object)
    cells[0] = shared
    value = {"a": shared, "b": shared, "t": (shared,), "p": point, "q": point, "f": frame, "g": frame,
             "arr": cells}
    InMemoryCache.put(value, "shared")
    got = InMemoryCache.get("shared")
    assert got["a"] is got["b"] is got["t"][0] is got["p"].xs is got["f"]["cells"][0] is got["f"]["cells"][1]
    assert got["a"] is not shared and got["p"] is got["q"] and got["p"] is not point
    assert got["f"] is got["g"] and got["f"] is not frame
    assert got["arr"][0] is got["a"]
    got["a"].append(3)
    assert InMemoryCache.get("shared")["b"] == [1, 2] and shared == [1, 2]
