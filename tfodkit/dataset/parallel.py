"""Ordered map over a process pool with a bounded number of chunks in flight (memory independent of input size)."""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import multiprocessing
import os
import threading
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def _run_chunk(function: Callable[[Item], Result], chunk: Sequence[Item]) -> list[Result]:
    return [function(item) for item in chunk]


def _chunks(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _start_method() -> str:
    """`fork` (about 10x quicker to start) while this process runs a single thread: a forked child then holds
    no lock or state another thread was using. Otherwise (TensorFlow, for one, starts threads) workers start
    from a fresh interpreter."""
    try:
        single_thread = len(os.listdir("/proc/self/task")) == 1
    except OSError:  # no /proc: cannot tell
        single_thread = False
    methods = multiprocessing.get_all_start_methods()
    if single_thread and threading.active_count() == 1 and "fork" in methods:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


class WorkerPool:
    """`workers` processes (none when 1: everything runs in this process)."""

    def __init__(self, workers: int, initializer: Callable[[], None] | None = None) -> None:
        """`initializer` runs once in each worker (and is the caller's to run in this process)."""
        self.workers = workers
        self._executor: concurrent.futures.ProcessPoolExecutor | None = None
        if workers > 1:
            context = multiprocessing.get_context(_start_method())
            self._executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context,
                                                                    initializer=initializer)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(cancel_futures=True)

    def map(self, function: Callable[[Item], Result], items: Iterable[Item], chunk_size: int) -> Iterator[Result]:
        """Results in input order; at most 2 chunks per worker are pending at any time."""
        if self._executor is None:
            yield from map(function, items)
            return
        pending: collections.deque[concurrent.futures.Future[list[Result]]] = collections.deque()
        for chunk in _chunks(items, chunk_size):
            pending.append(self._executor.submit(_run_chunk, function, chunk))
            if len(pending) >= 2 * self.workers:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()
