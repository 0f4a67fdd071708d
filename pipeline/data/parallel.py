"""Ordered parallel maps over processes, with a progress bar on stderr."""

from __future__ import annotations

import ctypes
import math
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from multiprocessing.pool import AsyncResult
from typing import TypeVar

import numpy as np

from pipeline.io.progress import progress

T = TypeVar("T")
R = TypeVar("R")


def worker_count(requested: int) -> int:
    """``requested`` workers, or one per usable core when it is 0."""
    if requested > 0:
        return requested
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def ordered_map(
    func: Callable[[T], R], items: Iterable[T], *, total: int, workers: int, desc: str,
    chunksize: int = 16,
) -> Iterator[R]:
    """Yield ``func(item)`` in input order, computed by ``workers`` processes (0 = all cores).

    With one worker it runs in this process, which keeps tracebacks simple. Results stream:
    memory holds a few chunks, not the whole list.
    """
    workers = worker_count(workers)
    bar = progress(desc=desc, total=total)
    try:
        if workers == 1 or total < 2 * chunksize:
            for item in items:
                yield func(item)
                bar.update()
            return
        with multiprocessing.get_context(_start_method()).Pool(workers) as pool:
            for result in pool.imap(func, items, chunksize=chunksize):
                yield result
                bar.update()
    finally:
        bar.close()


def block_length(item_bytes: int, budget: int = 4 << 20, most: int = 32) -> int:
    """Items per block: at most ``most``, and a block of ``item_bytes`` items within ``budget``."""
    return max(1, min(most, budget // max(item_bytes, 1)))


def ordered_blocks(
    fill: Callable[[np.ndarray, Sequence[T]], R], items: Sequence[T], *, shape: tuple[int, ...],
    dtype: np.dtype | type, block: int, workers: int, desc: str, start_method: str | None = None,
) -> Iterator[tuple[np.ndarray, R]]:
    """Yield ``(array, fill(array, chunk))`` for consecutive chunks of at most ``block`` items.

    ``fill(out, chunk)`` writes one ``shape`` item per element of ``chunk`` into ``out`` and may
    return a small value. Workers fill slots of a shared-memory ring, so arrays never travel
    through a pipe; at most ``4 x workers`` blocks are in flight, so memory stays flat. Each
    yielded array is a view of its slot, valid until the next item is asked for.
    ``start_method``: "fork" where available (the default), else "spawn".
    """
    workers = worker_count(workers)
    dtype = np.dtype(dtype)
    bar = progress(desc=desc, total=len(items))
    try:
        if workers == 1 or len(items) < 2 * workers * block:
            out = np.empty((block, *shape), dtype)
            for start in range(0, len(items), block):
                chunk = items[start:start + block]
                result = fill(out[:len(chunk)], chunk)
                yield out[:len(chunk)], result
                bar.update(len(chunk))
            return
        bounds = chunk_bounds(len(items), block, workers)
        slots = 4 * workers
        ring_shape = (slots, block, *shape)
        ctx = multiprocessing.get_context(start_method or _start_method())
        shared = ctx.RawArray(ctypes.c_uint8, math.prod(ring_shape) * dtype.itemsize)
        ring = np.frombuffer(shared, dtype).reshape(ring_shape)
        with ctx.Pool(workers, initializer=_attach_ring,
                      initargs=(shared, ring_shape, dtype.str, fill)) as pool:
            pending: deque[AsyncResult] = deque()

            def submit(k: int) -> None:
                start, stop = bounds[k]
                pending.append(pool.apply_async(_fill_slot, (k % slots, items[start:stop])))

            for k in range(min(slots, len(bounds))):
                submit(k)
            for k, (start, stop) in enumerate(bounds):
                result = pending.popleft().get()
                yield ring[k % slots, :stop - start], result
                bar.update(stop - start)
                if k + slots < len(bounds):
                    submit(k + slots)  # the slot just yielded is free again
    finally:
        bar.close()


def chunk_bounds(count: int, block: int, workers: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of consecutive chunks of at most ``block`` items, shrinking towards the
    end (guided scheduling) so that the workers run out of work at nearly the same time."""
    bounds: list[tuple[int, int]] = []
    start = 0
    while start < count:
        size = max(1, min(block, (count - start) // (2 * workers)))
        bounds.append((start, start + size))
        start += size
    return bounds


def _start_method() -> str:
    return "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


_RING: np.ndarray | None = None
_FILL: Callable[[np.ndarray, Sequence], object] | None = None


def _attach_ring(shared: ctypes.Array, shape: tuple[int, ...], dtype: str,
                 fill: Callable[[np.ndarray, Sequence], object]) -> None:
    """Pool initializer: view the shared ring as an array and keep the fill function."""
    global _RING, _FILL
    _RING = np.frombuffer(shared, np.dtype(dtype)).reshape(shape)
    _FILL = fill


def _fill_slot(slot: int, chunk: Sequence) -> object:
    assert _RING is not None and _FILL is not None
    return _FILL(_RING[slot, :len(chunk)], chunk)
