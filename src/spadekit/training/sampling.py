"""Data order and augmentation that are pure functions of (seed, epoch, position).

That is what makes a run resumable to the same weights: after a restart the sampler skips the
batches already consumed in the epoch, and each sample's random crop/flip is drawn from RNGs
seeded by (seed, epoch, dataset index), so neither DataLoader workers nor the restart change them.
Under torchrun each process takes every ``world_size``-th index of the epoch's permutation
(PyTorch's :class:`~torch.utils.data.DistributedSampler`), so global batch ``j`` holds the same
samples whatever the number of processes.
"""

from __future__ import annotations

import random
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample of one epoch (independent streams via NumPy's SeedSequence)."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31 | int(state[1]) >> 1) & ((1 << 63) - 1)


class EpochSampler(DistributedSampler):
    """This process's share of each epoch's permutation, cut to whole batches, resumable mid-epoch.

    Yields ``(epoch, index)`` keys for :class:`SeededSamples`. The permutation of epoch ``e`` is
    ``randperm(len(dataset))`` seeded with ``seed + e`` (DistributedSampler's rule); process ``r``
    takes positions ``r, r + world_size, ...``.

    Args:
        dataset: the map-style dataset.
        num_replicas, rank: the process's place in the world.
        seed: the run's seed.
        batch_size: samples per micro-batch on this process.
        batches_per_epoch: micro-batches per epoch on this process (the rest of the epoch is dropped).
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int, batch_size: int, batches_per_epoch: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch and skip its first ``start_batch`` micro-batches (already trained on)."""
        super().set_epoch(epoch)
        self.start_batch = start_batch

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(super().__iter__())[: self.batches_per_epoch * self.batch_size]
        for index in indices[self.start_batch * self.batch_size :]:
            yield (self.epoch, int(index))

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


class SeededSamples(Dataset):
    """Wraps a dataset so item ``(epoch, index)`` is drawn with torch, NumPy and ``random`` seeded
    from (seed, epoch, index). The caller's RNG states are restored afterwards, so loading data
    never shifts the training RNG (z sampling) either."""

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        epoch, index = key
        seed = sample_seed(self.seed, epoch, index)
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                random.seed(seed)
                np.random.seed(seed % (2**32))
                return self.dataset[index]
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)


def epoch_layout(num_samples: int, world_size: int, global_batch: int, grad_accum: int) -> tuple[int, int]:
    """(micro-batch per process, optimiser steps per epoch) for a dataset of ``num_samples``.

    ``global_batch`` samples make one optimiser step: ``world_size`` processes × ``grad_accum``
    micro-batches × the micro-batch. Returns steps = 0 when the dataset is smaller than one step.
    """
    per_step = world_size * grad_accum
    micro = global_batch // per_step
    per_process = num_samples // world_size
    return micro, (per_process // micro) // grad_accum if micro else 0
