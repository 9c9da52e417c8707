"""The official OASIS EMA generator: averaged state and refreshed batch-norm statistics."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

OFFICIAL_REFRESH_BATCHES = 51


@torch.no_grad()
def update_ema_official(ema: nn.Module, live: nn.Module, decay: float) -> None:
    """``ema ← decay · ema + (1 − decay) · live`` for EVERY state-dict entry, as the official code.

    Unlike spadekit's generic EMA, buffers (BN running statistics, spectral-norm u/v) are averaged
    too, and integer counters are averaged then truncated on write, exactly as ``copy_`` does there.
    """
    ema_state = ema.state_dict()
    live_state = live.state_dict()
    if ema_state.keys() != live_state.keys():
        raise ValueError("EMA and live networks have different state-dict keys")
    for key, value in ema_state.items():
        value.copy_(value * decay + live_state[key] * (1 - decay))


@torch.no_grad()
def refresh_batchnorm_stats(
    generator: nn.Module, semantics_batches: Iterable[torch.Tensor], max_batches: int = OFFICIAL_REFRESH_BATCHES
) -> int:
    """Run ``generator`` in train mode (no grad) over up to ``max_batches`` batches of one-hot semantics.

    This is what the official code does to the EMA generator before it is saved, evaluated or used
    for images: averaged weights need fresh BN running statistics (momentum 0.1); the spectral-norm
    u/v advance one power iteration per batch too, and a fresh z is drawn per batch. The official
    loop uses 51 training batches. The generator's previous train/eval mode is restored.

    Returns the number of batches used.
    """
    was_training = generator.training
    generator.train()
    used = 0
    try:
        for semantics in semantics_batches:
            if used >= max_batches:
                break
            generator(semantics)
            used += 1
    finally:
        generator.train(was_training)
    return used
