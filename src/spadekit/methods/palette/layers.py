"""ProGAN building blocks of the layout networks: equalized-learning-rate layers and pixel norm."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _fan_in(weight: torch.Tensor) -> int:
    return weight.shape[1] * math.prod(weight.shape[2:])


class EqualizedConv2d(nn.Conv2d):
    """A convolution whose weight is stored N(0, 1) and scaled at run time by ``gain / sqrt(fan_in)``
    (ProGAN's equalized learning rate). Biases start at zero. The stored weight is the unscaled one,
    as in the official checkpoints.

    Shapes: (N, in_channels, H, W) → (N, out_channels, H', W').
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int | tuple[int, int] = 1,
        padding: int = 0,
        gain: float = math.sqrt(2),
    ):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding)
        self.scale = gain / math.sqrt(_fan_in(self.weight))

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.scale * self.weight, self.bias, self.stride, self.padding)


class EqualizedLinear(nn.Linear):
    """A linear layer with the equalized learning rate of :class:`EqualizedConv2d`.

    Shapes: (N, in_features) → (N, out_features).
    """

    def __init__(self, in_features: int, out_features: int, gain: float = math.sqrt(2)):
        super().__init__(in_features, out_features)
        self.scale = gain / math.sqrt(_fan_in(self.weight))

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.scale * self.weight, self.bias)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Semantic Palette's pixel norm: ``x / (mean_c x² + eps)`` over the channel axis (dim 1).

    Unlike ProGAN's it divides by the mean square itself, not by its square root; the official
    layout generator was trained that way, so its weights only work with this form.

    Shapes: (N, C) or (N, C, H, W), unchanged.
    """
    return x / (x.pow(2).mean(dim=1, keepdim=True) + eps)
