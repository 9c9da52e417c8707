"""Exponential moving average of the generator's weights (the "EMA generator")."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


def warmup_decay(decay: float, updates: int) -> float:
    """The decay of update number ``updates`` (0-based) with warm-up: ``min(decay, (1 + t) / (10 + t))``.

    Early on the average follows the live weights closely (0.1 at the first update, 0.5 at the 8th,
    0.9 at the 81st), so a short run is not released as a blend of mostly random initial weights
    (which synthesizes flat grey images); the full ``decay`` applies from ``t ≈ (10·decay − 1) / (1 − decay)``.
    The schedule of TensorFlow's ``ExponentialMovingAverage(num_updates=...)``.
    """
    return min(decay, (1.0 + updates) / (10.0 + updates))


def ema_horizon(decay: float) -> int:
    """Steps the average spans, ``1 / (1 - decay)`` (1000 for 0.999): a run shorter than this
    releases an EMA that still lags the live generator."""
    return math.ceil(1.0 / (1.0 - decay))


def describe_release(decay: float, warmup: bool, total_steps: int) -> str:
    """The training plan's line saying which generator the run's release model will hold."""
    if not decay:
        return "release model/: the raw generator (train.ema_decay=0: no EMA)"
    ramp = ", warm-up min(decay, (1+t)/(10+t))" if warmup else ", no warm-up"
    line = f"release model/: the EMA generator (decay {decay}{ramp}; horizon {ema_horizon(decay)} steps)"
    if total_steps < ema_horizon(decay):
        line += f"; warning: {total_steps} steps is shorter than the EMA horizon, the EMA will lag the raw generator"
    return line


def release_provenance(decay: float, warmup: bool, step: int) -> dict[str, Any]:
    """What a release made at ``step`` holds, for its config.json: which generator, after how many steps."""
    info: dict[str, Any] = {"generator": "ema" if decay else "raw", "steps": int(step)}
    if decay:
        horizon = ema_horizon(decay)
        info.update(ema_decay=decay, ema_warmup=warmup, ema_horizon=horizon, ema_horizon_reached=step >= horizon)
    return info


class EMA:
    """A frozen copy of ``network`` whose floating-point parameters follow
    ``ema = d * ema + (1 - d) * live`` after every optimiser step, with ``d = decay``, or with
    ``warmup`` the ramp :func:`warmup_decay` (``d`` grows from 0.1 towards ``decay``).

    Buffers (batch-norm running statistics, spectral-norm power-iteration vectors, counters) are
    copied as they are: they are estimates, not weights. The copy stays in eval mode.
    ``updates`` counts the updates so far (the training step; restored on resume).
    """

    def __init__(self, network: nn.Module, decay: float, warmup: bool = True):
        if not 0.0 < decay < 1.0:
            raise ValueError("EMA decay must lie in (0, 1)")
        self.decay = decay
        self.warmup = warmup
        self.updates = 0
        self.module = copy.deepcopy(network).eval().requires_grad_(False)

    @property
    def horizon(self) -> int:
        return ema_horizon(self.decay)

    def current_decay(self) -> float:
        """The decay the next :meth:`update` applies."""
        return warmup_decay(self.decay, self.updates) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        ema_params = [p for p in self.module.parameters() if p.dtype.is_floating_point]
        live_params = [p for p in network.parameters() if p.dtype.is_floating_point]
        torch._foreach_lerp_(ema_params, live_params, 1.0 - self.current_decay())
        for ema_buffer, live_buffer in zip(self.module.buffers(), network.buffers()):
            ema_buffer.copy_(live_buffer)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int | None = None) -> None:
        """Restore the averaged weights; ``updates`` (the step they were saved at) resumes the warm-up."""
        self.module.load_state_dict(state)
        if updates is not None:
            self.updates = int(updates)
