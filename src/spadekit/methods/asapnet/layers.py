"""The fixed "tent" pre-downsampling filter of ASAPNet (its normalised convolution is SPADE's
:func:`spadekit.models.discriminator.normed_conv`, which has ASAPNet's ``instanceaffine``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.models.discriminator import NORMS, normed_conv  # noqa: F401  (re-exported)


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
