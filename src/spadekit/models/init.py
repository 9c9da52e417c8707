"""Weight initialisation: Xavier-normal with gain 0.02 on every conv and linear weight, zero biases.

The paper's code runs this after moving networks to the GPU, where it misses the spectrally
normalised convolutions (their ``weight_orig`` keeps PyTorch's default init there, while CPU runs
get Xavier). We apply the paper's stated init everywhere, on every device: spectral norm
rescales those weights anyway, so only the direction of the initial weights matters.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def init_weights(network: nn.Module, gain: float = 0.02) -> nn.Module:
    for module in network.modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = getattr(module, "weight_orig", None)
            if weight is None:
                weight = module.weight
            nn.init.xavier_normal_(weight, gain=gain)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return network
