"""ASAPNet's low-resolution stream: a plain CNN that predicts the parameters of every cell's pixel MLP."""

from __future__ import annotations

import math

import torch
from torch import nn

from spadekit.methods.asapnet.layers import normed_conv


def _padded(conv: nn.Conv2d, norm: str, spectral: bool, reflection_pad: bool) -> list[nn.Module]:
    """[ReflectionPad2d(1)?, normed 3×3 conv] (zero padding 1 inside the conv otherwise)."""
    layer = normed_conv(conv, norm, spectral)
    return [nn.ReflectionPad2d(1), layer] if reflection_pad else [layer]


class LowResBlock(nn.Module):
    """3×3 conv (width → width), norm, ReLU. No residual connection (the paper's code names it a block)."""

    def __init__(self, width: int, norm: str, spectral: bool, reflection_pad: bool):
        super().__init__()
        conv = nn.Conv2d(width, width, 3, padding=0 if reflection_pad else 1)
        self.conv_block = nn.Sequential(*_padded(conv, norm, spectral, reflection_pad), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_block(x)


class LowResStream(nn.Module):
    """Input → per-cell MLP parameters, ``downsampling`` (S2) times smaller.

    ``model`` (one Sequential, the paper's key layout): a stride-1 3×3 conv to ``width``; log2(S2)
    stride-2 3×3 convs (``width`` → ``width``, the last one → ``max_width``), each with norm and
    ReLU; ``depth`` :class:`LowResBlock` s at that width; a final 1×1 conv (bias, no norm) to
    ``num_params`` channels. With ``reflection_pad`` a ReflectionPad2d(1) precedes every 3×3 conv.

    Args:
        in_channels: input channels (all semantic channels, instance edges included).
        num_params: parameters per cell (:attr:`PixelMLP.num_params`).
        width, max_width, depth: ``lr_width``, ``lr_max_width``, ``lr_depth``.
        downsampling: the learned factor S2 (a power of two).
        norm, spectral: the norm layer after each 3×3 conv (see :func:`normed_conv`).

    Shapes: (N, in_channels, h, w) → (N, num_params, h / S2, w / S2).
    """

    def __init__(
        self,
        in_channels: int,
        num_params: int,
        width: int = 64,
        max_width: int = 1024,
        depth: int = 7,
        downsampling: int = 16,
        norm: str = "instanceaffine",
        spectral: bool = False,
        reflection_pad: bool = False,
    ):
        super().__init__()
        steps = round(math.log2(downsampling))
        if downsampling < 1 or 2**steps != downsampling:
            raise ValueError(f"the learned downsampling factor must be a power of two, got {downsampling}")
        pad = 0 if reflection_pad else 1
        layers: list[nn.Module] = [
            *_padded(nn.Conv2d(in_channels, width, 3, padding=pad), norm, spectral, reflection_pad),
            nn.ReLU(inplace=True),
        ]
        channels = width
        for step in range(steps):
            out = max_width if step == steps - 1 else width
            layers += [*_padded(nn.Conv2d(channels, out, 3, stride=2, padding=pad), norm, spectral, reflection_pad), nn.ReLU(inplace=True)]
            channels = out
        layers += [LowResBlock(channels, norm, spectral, reflection_pad) for _ in range(depth)]
        layers.append(nn.Conv2d(channels, num_params, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)
