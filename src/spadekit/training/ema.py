"""Exponential moving average of the generator's weights (the "EMA generator")."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of ``network`` whose floating-point parameters follow
    ``ema = decay * ema + (1 - decay) * live`` after every optimiser step.

    Buffers (batch-norm running statistics, spectral-norm power-iteration vectors, counters) are
    copied as they are: they are estimates, not weights. The copy stays in eval mode.
    """

    def __init__(self, network: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError("EMA decay must lie in (0, 1)")
        self.decay = decay
        self.module = copy.deepcopy(network).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        ema_params = [p for p in self.module.parameters() if p.dtype.is_floating_point]
        live_params = [p for p in network.parameters() if p.dtype.is_floating_point]
        torch._foreach_lerp_(ema_params, live_params, 1.0 - self.decay)
        for ema_buffer, live_buffer in zip(self.module.buffers(), network.buffers()):
            ema_buffer.copy_(live_buffer)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
