"""One synthesis at a time, with dynamic batching: a dedicated thread runs the model's jobs in
arrival order, and runs compatible waiting requests together in one generator call.

The model is not safe to run from several threads at once (batch-norm statistics, one set of
buffers, and concurrent CPU runs would only fight over the same cores), so every request's forward
pass is queued here. The event loop only awaits the job's future, so it keeps accepting uploads and
sending responses while the model works.

Dynamic batching (as inference servers do): a request submitted with :meth:`SynthesisWorker.run_batched`
names a :class:`BatchGroup` (what can share a call, e.g. "plain syntheses of this model"). When
the thread takes such a request it also takes the other waiting requests of the same group, in
queue order, up to ``max_batch``; if fewer are waiting it waits up to ``max_wait_s`` for more.
Requests of other groups, and plain jobs (:meth:`SynthesisWorker.run`), keep their places. If a
batch fails, its requests run one by one, so a bad request only fails itself.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence, TypeVar

T = TypeVar("T")


class QueueFull(Exception):
    """More jobs are waiting than the worker accepts; the client should retry later."""


@dataclass(frozen=True)
class BatchGroup:
    """Requests that may run in one call: ``run(items) -> results`` (one result per item, in order)."""

    key: Hashable
    run: Callable[[list[Any]], Sequence[Any]]


@dataclass
class _Entry:
    future: Future
    job: Callable[[], Any] | None = None
    group: BatchGroup | None = None
    item: Any = None
    queued: float = field(default_factory=time.perf_counter)


class SynthesisWorker:
    """A FIFO queue of jobs served by a single thread, batching compatible requests.

    Args:
        max_pending: jobs allowed to wait or run at once; the next one raises :class:`QueueFull`.
        max_batch: most requests of one :class:`BatchGroup` per call (1: no batching).
        max_wait_s: how long a batch that is not full waits for more requests.
    """

    def __init__(self, max_pending: int = 256, max_batch: int = 8, max_wait_s: float = 0.005) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be >= 1")
        if max_batch < 1 or max_wait_s < 0:
            raise ValueError("max_batch must be >= 1 and max_wait_s >= 0")
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: collections.deque[_Entry] = collections.deque()
        self._closed = False
        self._pending = 0
        self._completed = 0
        self._failed = 0
        self._busy_seconds = 0.0
        self._calls = 0
        self._batched = 0
        self._running = 0
        self.max_running_seen = 0
        """Most generator calls ever seen running at the same moment (1 unless something is wrong)."""
        self.largest_batch = 0
        """The most requests one call has served."""
        self._thread = threading.Thread(target=self._serve, name="spadekit-synthesis", daemon=True)
        self._thread.start()

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
                "calls": self._calls,
                "mean_batch": round(self._batched / self._calls, 2) if self._calls else None,
                "max_batch": self.max_batch,
            }

    # ------------------------------------------------------------------ submitting

    async def run(self, job: Callable[[], T]) -> T:
        """Queue ``job`` (run alone) and await its result. If the awaiting request is cancelled
        (the client went away) before the job starts, the job is dropped without running."""
        return await self._submit(_Entry(Future(), job=job))

    async def run_batched(self, group: BatchGroup, item: Any) -> Any:
        """Queue ``item`` to run with other waiting items of ``group``; await its own result."""
        return await self._submit(_Entry(Future(), group=group, item=item))

    async def _submit(self, entry: _Entry) -> Any:
        with self._lock:
            if self._closed:
                raise RuntimeError("the synthesis worker is closed")
            if self._pending >= self.max_pending:
                raise QueueFull(f"{self._pending} syntheses are already queued (limit {self.max_pending})")
            self._pending += 1
            self._queue.append(entry)
            self._ready.notify()
        entry.future.add_done_callback(self._release)
        return await asyncio.wrap_future(entry.future)

    def _release(self, _future: Future) -> None:
        with self._lock:
            self._pending -= 1

    # ------------------------------------------------------------------ serving

    def _take(self) -> list[_Entry] | None:
        """The next job, or the next batch of one group (called by the worker thread)."""
        with self._ready:
            while not self._queue and not self._closed:
                self._ready.wait()
            if self._closed:
                return None
            first = self._queue.popleft()
            if first.group is None or self.max_batch == 1:
                return [first]
            batch = [first]
            deadline = time.perf_counter() + self.max_wait_s
            while True:
                for entry in list(self._queue):
                    if len(batch) >= self.max_batch:
                        break
                    if entry.group is not None and entry.group.key == first.group.key:
                        self._queue.remove(entry)
                        batch.append(entry)
                left = deadline - time.perf_counter()
                if len(batch) >= self.max_batch or left <= 0:
                    return batch
                self._ready.wait(left)

    def _serve(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            # Requests whose clients went away before their turn are dropped here.
            batch = [e for e in batch if e.future.set_running_or_notify_cancel()]
            if batch:
                self._execute(batch)

    def _execute(self, batch: list[_Entry]) -> None:
        with self._lock:
            self._running += 1
            self.max_running_seen = max(self.max_running_seen, self._running)
        start = time.perf_counter()
        try:
            if batch[0].group is None:
                outcomes = [_call(batch[0].job)]
            else:
                outcomes = _run_group(batch[0].group, [e.item for e in batch])
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                self._running -= 1
                self._calls += 1
                self._batched += len(batch)
                self.largest_batch = max(self.largest_batch, len(batch))
        for entry, (ok, value) in zip(batch, outcomes):
            with self._lock:
                if ok:
                    self._completed += 1
                    self._busy_seconds += elapsed / len(batch)
                else:
                    self._failed += 1
            if ok:
                entry.future.set_result(value)
            else:
                entry.future.set_exception(value)

    def close(self) -> None:
        """Drop waiting jobs and stop the thread once the running one ends."""
        with self._ready:
            self._closed = True
            dropped = list(self._queue)
            self._queue.clear()
            self._ready.notify_all()
        for entry in dropped:
            entry.future.cancel()


def _call(job: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return True, job()
    except BaseException as exc:  # noqa: BLE001  (handed to the awaiting request)
        return False, exc


def _run_group(group: BatchGroup, items: list[Any]) -> list[tuple[bool, Any]]:
    """``group.run`` on all items; if that fails, each item alone (so only a bad one fails)."""
    if len(items) > 1:
        try:
            results = list(group.run(items))
            if len(results) == len(items):
                return [(True, r) for r in results]
        except Exception:  # noqa: BLE001  (retried one by one below)
            pass
    outcomes = []
    for item in items:
        try:
            outcomes.append((True, group.run([item])[0]))
        except BaseException as exc:  # noqa: BLE001
            outcomes.append((False, exc))
    return outcomes


def synthesis_group(pipeline: Any, key: Hashable = "synthesize") -> BatchGroup:
    """A :class:`BatchGroup` of plain syntheses on a :class:`~spadekit.inference.Pipeline`: items
    are ``(ids, seed)`` ((H, W) ids at the model size, an int seed), results ``(PIL image, seconds
    the call took)``. Each image is the one ``pipeline(ids, seed=seed)`` gives alone (the latent
    of every item comes from its own seed; outputs agree to float rounding, i.e. within one grey
    level after quantisation)."""
    import torch

    from spadekit.inference import to_pil

    def run(items: list[tuple[Any, int]]) -> list[tuple[Any, float]]:
        start = time.perf_counter()
        if len(items) == 1:  # alone: exactly the unbatched call
            ids, seed = items[0]
            image = pipeline(ids, seed=seed, num_samples=1, output="pil")[0]
            return [(image, time.perf_counter() - start)]
        index, edges = pipeline.prepare([ids for ids, _ in items])
        latents = [pipeline.latents(1, 1, seed) for _, seed in items]
        z = torch.cat(latents) if latents[0] is not None else None
        images = to_pil(pipeline.generate(index, edges, z))
        seconds = time.perf_counter() - start
        return [(image, seconds) for image in images]

    return BatchGroup(key, run)
