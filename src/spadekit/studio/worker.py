"""One synthesis at a time: a dedicated thread that runs the model's jobs in arrival order.

The model is not safe to run from several threads at once (batch-norm statistics, one set of
buffers, and concurrent CPU runs would only fight over the same cores), so every request's forward
pass is queued here. The event loop only awaits the job's future, so it keeps accepting uploads and
sending responses while the model works.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """More jobs are waiting than the worker accepts; the client should retry later."""


class SynthesisWorker:
    """A FIFO queue of jobs served by a single thread.

    Args:
        max_pending: jobs allowed to wait or run at once; the next one raises :class:`QueueFull`.
    """

    def __init__(self, max_pending: int = 256) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spadekit-synthesis")
        self._lock = threading.Lock()
        self._pending = 0
        self._completed = 0
        self._failed = 0
        self._busy_seconds = 0.0
        self._running = 0
        self.max_running_seen = 0
        """Most jobs ever seen running at the same moment (1 unless something is wrong)."""

    @property
    def pending(self) -> int:
        """Jobs waiting or running now."""
        return self._pending

    def stats(self) -> dict:
        with self._lock:
            done = self._completed
            return {
                "pending": self._pending,
                "completed": done,
                "failed": self._failed,
                "mean_job_ms": round(1000 * self._busy_seconds / done, 2) if done else None,
                "max_pending": self.max_pending,
            }

    def _timed(self, job: Callable[[], T]) -> T:
        with self._lock:
            self._running += 1
            self.max_running_seen = max(self.max_running_seen, self._running)
        start = time.perf_counter()
        ok = False
        try:
            result = job()
            ok = True
            return result
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._running -= 1
                if ok:
                    self._completed += 1
                    self._busy_seconds += elapsed
                else:
                    self._failed += 1

    def _release(self, _future: Future) -> None:
        with self._lock:
            self._pending -= 1

    async def run(self, job: Callable[[], T]) -> T:
        """Queue ``job`` and await its result. If the awaiting request is cancelled (the client went
        away) before the job starts, the job is dropped without running."""
        with self._lock:
            if self._pending >= self.max_pending:
                raise QueueFull(f"{self._pending} syntheses are already queued (limit {self.max_pending})")
            self._pending += 1
        try:
            future = self._executor.submit(self._timed, job)
        except BaseException:
            with self._lock:
                self._pending -= 1
            raise
        future.add_done_callback(self._release)
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Drop waiting jobs and stop the thread once the running one ends."""
        self._executor.shutdown(wait=False, cancel_futures=True)
