"""Dynamic batching in the studio's synthesis worker: compatible waiting requests share one
generator call, each gets its own result, and a batched image is its unbatched one."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest
import torch

from spadekit.inference import Pipeline
from spadekit.studio.worker import BatchGroup, SynthesisWorker, synthesis_group
from test_fast import tiny_model


def recording_group(key: str, calls: list[list], fail_on=None) -> BatchGroup:
    def run(items: list) -> list:
        calls.append(list(items))
        if fail_on is not None and fail_on in items:
            raise ValueError(f"bad item {fail_on}")
        return [(key, item * 10) for item in items]

    return BatchGroup(key, run)


def test_waiting_requests_of_one_group_share_calls_in_queue_order():
    worker = SynthesisWorker(max_pending=100, max_batch=4, max_wait_s=0.0)
    gate = threading.Event()
    calls: list[list] = []
    group = recording_group("a", calls)

    async def main():
        blocker = asyncio.ensure_future(worker.run(lambda: gate.wait(10)))  # keeps the thread busy
        await asyncio.sleep(0.05)
        waiting = [asyncio.ensure_future(worker.run_batched(group, i)) for i in range(10)]
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        return await asyncio.gather(*waiting)

    assert asyncio.run(main()) == [("a", i * 10) for i in range(10)]
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    stats = worker.stats()
    assert stats["completed"] == 11 and stats["calls"] == 4 and worker.largest_batch == 4 and worker.pending == 0
    assert worker.max_running_seen == 1
    worker.close()


def test_groups_are_never_mixed_and_plain_jobs_run_alone():
    worker = SynthesisWorker(max_pending=100, max_batch=8, max_wait_s=0.0)
    gate = threading.Event()
    calls_a: list[list] = []
    calls_b: list[list] = []
    a, b = recording_group("a", calls_a), recording_group("b", calls_b)
    plain_runs: list[int] = []

    async def main():
        blocker = asyncio.ensure_future(worker.run(lambda: gate.wait(10)))
        await asyncio.sleep(0.05)
        futures = []
        for i in range(6):
            futures.append(worker.run_batched(a if i % 2 == 0 else b, i))
            futures.append(worker.run(lambda i=i: plain_runs.append(i) or i))
        futures = [asyncio.ensure_future(f) for f in futures]
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        return await asyncio.gather(*futures)

    results = asyncio.run(main())
    assert results[::2] == [("a" if i % 2 == 0 else "b", i * 10) for i in range(6)]
    assert results[1::2] == list(range(6))
    assert calls_a == [[0, 2, 4]] and calls_b == [[1, 3, 5]]
    assert plain_runs == list(range(6))
    worker.close()


def test_a_failing_batch_is_retried_one_by_one_so_only_the_bad_request_fails():
    worker = SynthesisWorker(max_pending=100, max_batch=8, max_wait_s=0.0)
    gate = threading.Event()
    calls: list[list] = []
    group = recording_group("a", calls, fail_on=3)

    async def main():
        blocker = asyncio.ensure_future(worker.run(lambda: gate.wait(10)))
        await asyncio.sleep(0.05)
        futures = [asyncio.ensure_future(worker.run_batched(group, i)) for i in range(5)]
        await asyncio.sleep(0.05)
        gate.set()
        await blocker
        return await asyncio.gather(*futures, return_exceptions=True)

    results = asyncio.run(main())
    assert [r for i, r in enumerate(results) if i != 3] == [("a", i * 10) for i in (0, 1, 2, 4)]
    assert isinstance(results[3], ValueError)
    assert calls[0] == [0, 1, 2, 3, 4] and calls[1:] == [[0], [1], [2], [3], [4]]
    assert worker.stats()["failed"] == 1 and worker.stats()["completed"] == 5  # blocker + 4
    worker.close()


def test_a_lone_request_waits_at_most_the_batch_wait():
    worker = SynthesisWorker(max_batch=8, max_wait_s=0.05)
    calls: list[list] = []
    group = recording_group("a", calls)

    async def main():
        loop = asyncio.get_running_loop()
        start = loop.time()
        result = await worker.run_batched(group, 1)
        return result, loop.time() - start

    result, seconds = asyncio.run(main())
    assert result == ("a", 10) and calls == [[1]] and 0.04 < seconds < 2.0
    worker.close()


def test_batched_images_are_the_unbatched_ones_within_one_grey_level():
    model = tiny_model(use_vae=True, use_instance=True)  # seeds matter: a latent per request
    pipeline = Pipeline(model, batch_size=8)
    torch.manual_seed(1)
    maps = [torch.randint(0, 6, (8, 8)).repeat_interleave(8, 0).repeat_interleave(8, 1) for _ in range(5)]
    requests = [(maps[i % 5], 100 + i) for i in range(7)]
    group = synthesis_group(pipeline)
    batched = [np.asarray(image) for image, _ in group.run(requests)]
    alone = [np.asarray(pipeline(ids, seed=seed, num_samples=1, output="pil")[0]) for ids, seed in requests]
    for got, expected in zip(batched, alone):
        difference = np.abs(got.astype(int) - expected.astype(int))
        assert difference.max() <= 1 and difference.mean() < 0.01
    # The requests really differ (per-request seeds and maps), so the comparison is not trivial.
    assert np.abs(alone[0].astype(int) - alone[5].astype(int)).mean() > 2  # same map, other seed
    assert float(np.std(alone[0])) > 10


@pytest.mark.parametrize("max_batch", [0, -1])
def test_worker_refuses_bad_batch_settings(max_batch):
    with pytest.raises(ValueError):
        SynthesisWorker(max_batch=max_batch)
