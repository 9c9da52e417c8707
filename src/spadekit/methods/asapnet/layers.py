"""Small layers of ASAPNet: the normalised convolution and the fixed "tent" pre-downsampling filter."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.models.discriminator import _normed_conv

NORMS = ("none", "instance", "instanceaffine", "batch", "syncbatch")


def normed_conv(conv: nn.Conv2d, norm: str, spectral: bool) -> nn.Module:
    """``conv`` with optional spectral norm, then a norm layer: ``Sequential(conv, norm)`` (the conv's
    bias removed), or the conv alone (bias kept) for ``none``.

    Norms are SPADE's (``instance`` without affine, ``batch``/``syncbatch`` with affine) plus
    ASAPNet's ``instanceaffine`` (instance norm with a learned per-channel scale and shift).
    """
    if norm not in NORMS:
        raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    if norm != "instanceaffine":
        return _normed_conv(conv, norm, spectral)
    wrapped = _normed_conv(conv, "instance", spectral)
    wrapped[1] = nn.InstanceNorm2d(conv.out_channels, affine=True)
    return wrapped


def tent_kernel(stride: int) -> torch.Tensor:
    """The 1-D kernel ``[1, 3, …, 2s−1, 2s−1, …, 3, 1] / (2s²)`` (length 2s), float32 (computed in float64)."""
    ramp = torch.arange(1, 2 * stride, 2, dtype=torch.float64)
    kernel = torch.cat([ramp, ramp.flip(0)])
    return (kernel / kernel.sum()).float()


class TentDownsample(nn.Module):
    """Fixed separable anti-aliased downsampling by an even factor ``stride``, per channel.

    Reflection padding of ``stride // 2`` on every side, then the tent kernel along the width
    (stride ``stride``), then along the height. For H, W multiples of ``stride`` the output is
    exactly (H / stride, W / stride). The kernels are buffers that are not saved in the state dict.

    Shapes: (N, C, H, W) → (N, C, H / stride, W / stride).
    """

    def __init__(self, stride: int, channels: int):
        super().__init__()
        self.stride = stride
        self.channels = channels
        kernel = tent_kernel(stride)
        self.register_buffer("kernel_w", kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), persistent=False)
        self.register_buffer("kernel_h", kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = self.stride // 2
        x = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        x = F.conv2d(x, self.kernel_w.to(x.dtype), stride=(1, self.stride), groups=self.channels)
        return F.conv2d(x, self.kernel_h.to(x.dtype), stride=(self.stride, 1), groups=self.channels)
