"""Ordered parallel maps: results in input order, the same with one worker or several."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from pipeline.data.parallel import block_length, chunk_bounds, ordered_blocks, ordered_map


def square(x: int) -> int:
    return x * x


def fill_rows(out: np.ndarray, chunk: Sequence[int]) -> int:
    """Row ``i`` of ``out`` becomes the item's value repeated: checkable after the fact."""
    if -1 in chunk:
        raise ValueError("bad item -1")
    for i, value in enumerate(chunk):
        out[i] = value
    return sum(chunk)


@pytest.mark.parametrize("workers", [1, 2])
def test_ordered_map_keeps_order(workers: int) -> None:
    items = list(range(100))
    got = list(ordered_map(square, items, total=len(items), workers=workers, desc="t"))
    assert got == [x * x for x in items]


@pytest.mark.parametrize(("workers", "count", "block"), [(1, 50, 7), (2, 50, 3), (2, 64, 4)])
def test_ordered_blocks_in_order(workers: int, count: int, block: int) -> None:
    # With 2 workers the ring has 8 slots: 50 items in chunks of at most 3 reuse every slot.
    items = list(range(count))
    seen: list[np.ndarray] = []
    sums: list[int] = []
    for array, result in ordered_blocks(fill_rows, items, shape=(2, 3), dtype=np.int32,
                                        block=block, workers=workers, desc="t"):
        assert array.shape[1:] == (2, 3) and 1 <= len(array) <= block
        seen.append(array.copy())  # the view is only valid until the next block
        sums.append(result)
    stacked = np.concatenate(seen)
    np.testing.assert_array_equal(stacked, np.broadcast_to(np.arange(count)[:, None, None],
                                                           (count, 2, 3)))
    assert sum(sums) == sum(items) and len(sums) >= -(-count // block)


def test_ordered_blocks_under_spawn() -> None:
    # Where fork is missing (Windows), workers attach to the ring through the pool initializer.
    got = [array[:, 0].copy() for array, _ in ordered_blocks(
        fill_rows, list(range(30)), shape=(1,), dtype=np.int16, block=2, workers=2, desc="t",
        start_method="spawn")]
    np.testing.assert_array_equal(np.concatenate(got), np.arange(30))


def test_ordered_blocks_worker_error_reaches_the_caller() -> None:
    items = [*range(40), -1, *range(40)]
    with pytest.raises(ValueError, match="bad item -1"):
        for _ in ordered_blocks(fill_rows, items, shape=(1,), dtype=np.uint8, block=4,
                                workers=2, desc="t"):
            pass


def test_chunks_cover_everything_and_shrink_at_the_end() -> None:
    bounds = chunk_bounds(1360, 32, 2)
    assert bounds[0] == (0, 32) and bounds[-1][1] == 1360
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [stop - start for start, stop in bounds]
    assert max(sizes) == 32 and sizes[-1] == 1 and sizes == sorted(sizes, reverse=True)


def test_block_length_bounds() -> None:
    assert block_length(64 * 64 * 3) == 32
    assert block_length(512 * 512 * 3) == 5  # a block stays within 4 MiB
    assert block_length(100 << 20) == 1
