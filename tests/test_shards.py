from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from gembatch._build.shards import ShardCutter


def _shards(sizes_by_slice, max_rows, max_bytes):
    """Apply the planner over slices and return the shards as lists of global row indices."""
    planner = ShardCutter(max_rows=max_rows, max_bytes=max_bytes)
    shards: list[list[int]] = [[]]
    row = 0
    for sizes in sizes_by_slice:
        cuts = set(planner.cuts(sizes))
        for i in range(len(sizes)):
            if i in cuts and shards[-1]:
                shards.append([])
            shards[-1].append(row)
            row += 1
    return shards


def test_cuts_within_a_slice_and_across_slices():
    p = ShardCutter(max_rows=2, max_bytes=100)
    assert p.cuts([10] * 5) == [2, 4]
    assert p.cuts([10]) == []  # the open shard had one row
    assert p.cuts([10]) == [0]  # now it is full: close it before this slice


def test_bytes_bound_and_oversized_row_alone():
    p = ShardCutter(max_rows=10, max_bytes=25)
    assert p.cuts([10, 0, 10, 10, 0, 30, 5]) == [3, 5, 6]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 50), max_size=30), min_size=1, max_size=6),
    st.integers(1, 7),
    st.integers(1, 120),
)
def test_every_shard_respects_bounds_and_rows_stay_in_order(slices, max_rows, max_bytes):
    sizes = [s for sl in slices for s in sl]
    shards = _shards(slices, max_rows, max_bytes)
    flat = [r for sh in shards for r in sh]
    assert flat == list(range(len(sizes)))
    for sh in shards:
        sent = [sizes[r] for r in sh if sizes[r] > 0]
        assert len(sent) <= max_rows
        assert sum(sent) <= max_bytes or len(sent) == 1
    # greedy: a shard is only closed when the next sent row would not fit
    for a, b in itertools.pairwise(shards):
        sent = [sizes[r] for r in a if sizes[r] > 0]
        first_next = next((sizes[r] for r in b if sizes[r] > 0), None)
        if first_next is not None and sent:
            assert len(sent) == max_rows or sum(sent) + first_next > max_bytes
