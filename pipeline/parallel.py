"""Ordered parallel map over processes, with a progress bar on stderr."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

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
    bar = tqdm(total=total, desc=desc, unit="img", dynamic_ncols=True, mininterval=0.5)
    try:
        if workers == 1 or total < 2 * chunksize:
            for item in items:
                yield func(item)
                bar.update()
            return
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            for result in pool.imap(func, items, chunksize=chunksize):
                yield result
                bar.update()
    finally:
        bar.close()
