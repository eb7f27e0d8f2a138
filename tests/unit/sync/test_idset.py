"""IdSet: the set operations an import needs, exact, at 8 bytes an id."""

from __future__ import annotations

import random
import sys

from hypothesis import given
from hypothesis import strategies as st

from delightbridge.sync import idset
from delightbridge.sync.idset import IdSet

hex_ids = st.integers(0, 2**64 - 1).map(lambda n: f"{n:016x}")
any_ids = st.one_of(hex_ids, st.text(max_size=20))


@given(st.lists(any_ids, max_size=300), st.lists(any_ids, max_size=50))
def test_it_behaves_as_a_set(added: list[str], probes: list[str]) -> None:
    ids, reference = IdSet(), set()
    for value in added:
        ids.add(value)
        reference.add(value)
    assert len(ids) == len(reference)
    for value in [*added, *probes]:
        assert (value in ids) == (value in reference)
    assert set(ids) == reference


def test_merged_ids_stay_found_and_uncounted_twice() -> None:
    rng = random.Random(7)
    values = [f"{rng.getrandbits(64):016x}" for _ in range(3 * idset.MERGE_EVERY + 5)]
    ids = IdSet(values)
    ids |= values[:100]  # again, after they were merged into the sorted array
    assert len(ids) == len(set(values))
    assert all(v in ids for v in values)
    assert "0" * 15 + "g" not in ids
    assert ids == set(values)


def test_it_is_smaller_than_a_set_of_strings() -> None:
    rng = random.Random(1)
    values = [f"{rng.getrandbits(64):016x}" for _ in range(50_000)]
    ids = IdSet(values)
    list(ids)  # merged
    compact = sys.getsizeof(ids._sorted)
    plain = sys.getsizeof(set(values)) + sum(sys.getsizeof(v) for v in values)
    assert compact * 10 < plain
