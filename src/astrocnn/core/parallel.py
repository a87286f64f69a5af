"""Work spread over processes, results in input order; progress bars that stay out of logs and pipes.

Core layer: used by the spectra simulator and ``prepare sdss`` (processes over chunks of objects), the
gravitational-wave simulator, and ``predict`` on folders of files.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from typing import Callable, Iterator, Sequence, TypeVar

J = TypeVar("J")
R = TypeVar("R")


def default_workers() -> int:
    """Worker processes when the caller does not say: the machine's cores, at most 8."""
    return max(1, min(os.cpu_count() or 1, 8))


def map_ordered(func: Callable[[J], R], jobs: Sequence[J], workers: int) -> Iterator[R]:
    """Apply ``func`` to each job in ``workers`` processes, yielding the results in job order.

    One worker (or one job) runs in this process. Otherwise the processes fork where the platform can:
    spawn would re-import the caller's ``__main__``, which breaks scripts without a main guard. ``func`` must
    be a module-level function and the jobs picklable.
    """
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield func(job)
        return
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(func, jobs)


def progress(total: int, desc: str, unit: str = "spec"):
    """A tqdm bar on stderr that disables itself when stderr is not a terminal."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=None, leave=False)
