"""InMemoryCache agrees with a model dict under any operation sequence, and under
8 threads of random operations; a large copy never blocks other readers."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from cache_utils import InMemoryCache
from tests.support.scenarios import measure_reader_latency, run_memory_stress

HEADS = st.sampled_from([("a",), ("b",), ("a", "x")])
LEAVES = st.sampled_from(["k1", "k2", "k3", 7])
VALUES = st.recursive(
    st.integers() | st.text(max_size=3) | st.none(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
    max_leaves=8,
)


class CacheModel(RuleBasedStateMachine):
    """Every public operation, checked against a plain dict of deep-copied values."""

    @initialize()
    def start(self) -> None:
        InMemoryCache.clear()
        self.model: dict[tuple, object] = {}

    @rule(head=HEADS, leaf=LEAVES, value=VALUES)
    def put(self, head, leaf, value):
        InMemoryCache.put(value, head, leaf)
        self.model[(*head, leaf)] = _deep(value)
        if isinstance(value, list):
            value.append("mutated after put")  # the cache holds its own copy

    @rule(head=HEADS, items=st.dictionaries(LEAVES, VALUES, max_size=4))
    def put_many(self, head, items):
        InMemoryCache.put_many(items, head)
        self.model.update({(*head, k): _deep(v) for k, v in items.items()})

    @rule(head=HEADS, leaf=LEAVES)
    def get(self, head, leaf):
        got = InMemoryCache.get(head, leaf)
        assert got == self.model.get((*head, leaf))
        assert InMemoryCache.get((*head, leaf)) == got  # same entry however the key is split
        if isinstance(got, dict):
            got["mutated"] = True  # a copy: must not reach the cache

    @rule(head=HEADS, leaves=st.lists(LEAVES, max_size=4), as_dict=st.booleans())
    def get_many(self, head, leaves, as_dict):
        if as_dict:
            got = InMemoryCache.get_many(head, dict.fromkeys(leaves, "default"))
            assert got == {k: self.model.get((*head, k), "default") for k in leaves}
        else:
            got = InMemoryCache.get_many(head, leaves)
            assert got == {k: self.model[(*head, k)] for k in leaves if (*head, k) in self.model}

    @rule(head=HEADS, value=VALUES)
    def put_state(self, head, value):
        state = [value]
        key = InMemoryCache.put_state(state, head)
        assert str(key).startswith("agk_") and (*head, key) not in self.model
        assert InMemoryCache.get_state(head, key) is state
        self.model[(*head, key)] = _deep(state)

    @rule(head=HEADS, leaf=LEAVES)
    def delete(self, head, leaf):
        assert InMemoryCache.delete(head, leaf) == ((*head, leaf) in self.model)
        self.model.pop((*head, leaf), None)

    @rule(head=st.sampled_from([("a",), ("b",), ("a", "x"), None]))
    def clear(self, head):
        doomed = [k for k in self.model if head is None or k[: len(head)] == head]
        assert InMemoryCache.clear(*(head or (None,))) == len(doomed)
        for k in doomed:
            del self.model[k]

    @rule(head=HEADS)
    def keys_under(self, head):
        assert set(InMemoryCache.keys(head)) == {k for k in self.model if k[: len(head)] == head}

    @invariant()
    def same_keys(self):
        assert set(InMemoryCache.keys()) == set(self.model)
        for key in self.model:
            assert InMemoryCache.contains(key)


def _deep(value):
    if isinstance(value, list):
        return [_deep(v) for v in value]
    if isinstance(value, dict):
        return {k: _deep(v) for k, v in value.items()}
    return value


TestCacheModel = CacheModel.TestCase
TestCacheModel.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


@pytest.mark.integration
def test_eight_threads_random_operations():
    result = run_memory_stress(threads=8, seconds=2.5)
    assert result["violations"] == []
    assert result["ops"] > 1000 and result["state_keys"] > 50, result


@pytest.mark.integration
def test_reader_not_blocked_while_a_huge_value_is_copied():
    # On a loaded machine the OS may deschedule the copier while it holds the GIL, which stalls
    # the reader whatever the locking; so up to 3 attempts. Copying under the lock (the control
    # below) gives a ratio near 1 on every attempt.
    results = []
    for _ in range(3):
        result = measure_reader_latency(items=200_000)
        assert result["reader_gets"] > 10, result
        results.append(result)
        if result["reader_max_seconds"] < result["copy_seconds"] / 5:
            break
    assert results[-1]["reader_max_seconds"] < results[-1]["copy_seconds"] / 5, results


def test_latency_check_would_catch_a_copy_under_the_lock():
    """Control: when the copy holds the lock (the design the library avoids), readers wait it out."""
    result = measure_reader_latency(items=100_000, hold_lock=True)
    assert result["reader_max_seconds"] > result["copy_seconds"] / 5, result


@pytest.mark.slow
def test_eight_threads_random_operations_long():
    result = run_memory_stress(threads=8, seconds=30.0, seed=8)
    assert result["violations"] == []


@pytest.mark.slow
def test_cache_model_many_examples():
    run_state_machine_as_test(
        CacheModel, settings=settings(max_examples=1000, stateful_step_count=50, deadline=None)
    )
