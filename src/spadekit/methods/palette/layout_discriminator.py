"""The progressive WGAN-GP critic of Semantic Palette's layouts (ProGAN-style, no minibatch-std).

``blocks`` run from high to low resolution: list entry k is the block at height 2^(B+1-k)
(B blocks; the last entry works at 4 × 4·aspect). A layout of height ``res`` enters at entry
``B + 1 - log2(res)`` through that block's 1×1 ``from_mask`` conv + LeakyReLU(0.2); each block then
applies conv3×3 → LeakyReLU → conv3×3 → LeakyReLU → average-pool ×2; the last block instead applies
conv3×3 with stride (1, aspect) → LeakyReLU → conv4×4 (valid) → LeakyReLU → linear → one score.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.methods.palette.layers import EqualizedConv2d, EqualizedLinear
from spadekit.methods.palette.layout_generator import blocks_for_res, num_blocks

CGAN_CHANNELS = 8
"""Channels of the broadcast palette embedding in the ``original_cgan`` critic."""


def official_critic_widths(max_dim: int, max_hidden_dim: int) -> tuple[list[int], int]:
    """(widths, final_width) of the official critic: block b (counted from the 4×4 end) takes
    ``min(max_hidden_dim, 2^(12-b))`` channels; the last block outputs ``min(max_hidden_dim, 2^13)``."""
    return [min(max_hidden_dim, 2 ** (12 - b)) for b in range(num_blocks(max_dim))], min(max_hidden_dim, 2**13)


class CriticBlock(nn.Module):
    """One resolution of the critic (keys ``from_mask``, ``conv1``, ``conv2``, and ``fc3`` for the last).

    Shapes: ``forward`` (N, in, H, W) → (N, out, H/2, W/2), or (N, 1) for the last block;
    ``enter`` (N, layout channels, H, W) → (N, in, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, layout_channels: int, final: bool, aspect_ratio: int):
        super().__init__()
        self.final = final
        self.from_mask = EqualizedConv2d(layout_channels, in_channels, 1, gain=1.0)
        stride = (1, aspect_ratio) if final else 1
        self.conv1 = EqualizedConv2d(in_channels, in_channels, 3, stride=stride, padding=1)
        if final:
            self.conv2 = EqualizedConv2d(in_channels, out_channels, 4)
            self.fc3 = EqualizedLinear(out_channels, 1)
        else:
            self.conv2 = EqualizedConv2d(in_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv1(x), 0.2)
        x = F.leaky_relu(self.conv2(x), 0.2)
        if self.final:
            return self.fc3(x.reshape(x.shape[0], -1))
        return F.avg_pool2d(x, 2)

    def enter(self, x: torch.Tensor, downsample: bool = False) -> torch.Tensor:
        if downsample:
            x = F.avg_pool2d(x, 2)
        return F.leaky_relu(self.from_mask(x), 0.2)


class LayoutDiscriminator(nn.Module):
    """Soft layouts (N, C, H, W) → Wasserstein critic scores (N, 1).

    Args:
        num_semantics: classes C of the layouts.
        widths: input channels of each block counted from the 4×4 end (B entries, see
            :func:`official_critic_widths`); block b outputs ``widths[b-1]`` (the next block's input),
            and block 0 outputs ``final_width`` into the linear layer.
        final_width: channels of the last conv's output.
        aspect_ratio: layout width / height (integer).
        palette_input: the ``original_cgan`` variant: a linear embedding (``fc0``) of the palette to
            8 channels is broadcast and concatenated to the layout.

    The resolution stage is the height of the layout it is given.
    """

    runs_parameter_subsets = True
    """Only the blocks of the current resolution run (DDP must look for unused parameters)."""

    def __init__(
        self,
        num_semantics: int,
        widths: Sequence[int],
        final_width: int,
        aspect_ratio: int = 1,
        palette_input: bool = False,
    ):
        super().__init__()
        if not widths:
            raise ValueError("widths must list at least one block")
        self.num_semantics = num_semantics
        self.widths = list(widths)
        self.final_width = final_width
        self.aspect_ratio = int(aspect_ratio)
        self.palette_input = palette_input
        if palette_input:
            self.fc0 = EqualizedLinear(num_semantics, CGAN_CHANNELS)
        layout_channels = num_semantics + (CGAN_CHANNELS if palette_input else 0)
        outputs = [final_width] + self.widths[:-1]
        # List order is high → low resolution, as in the official checkpoints.
        self.blocks = nn.ModuleList(
            CriticBlock(self.widths[b], outputs[b], layout_channels, final=b == 0, aspect_ratio=self.aspect_ratio)
            for b in reversed(range(len(self.widths)))
        )

    @property
    def max_dim(self) -> int:
        return 2 ** (len(self.blocks) + 1)

    def _entry(self, res: int) -> int:
        active = blocks_for_res(res)
        if active > len(self.blocks):
            raise ValueError(f"resolution {res} is above this critic's maximum {self.max_dim}")
        return len(self.blocks) - active

    def _with_palette(self, x: torch.Tensor, palette: torch.Tensor | None) -> torch.Tensor:
        if not self.palette_input:
            return x
        if palette is None:
            raise ValueError("this critic takes the palette as input (original_cgan): pass it")
        n, _, h, w = x.shape
        embedding = self.fc0(palette).view(n, CGAN_CHANNELS, 1, 1).repeat(1, 1, h, w)
        return torch.cat([x, embedding], dim=1)

    def forward(self, layout: torch.Tensor, palette: torch.Tensor | None = None, alpha: float | None = None) -> torch.Tensor:
        """Scores (N, 1); with ``alpha`` the fade-in score (see :meth:`fade`)."""
        if alpha is not None:
            return self.fade(layout, alpha, palette)
        entry = self._entry(layout.shape[2])
        x = self.blocks[entry].enter(self._with_palette(layout, palette))
        for block in self.blocks[entry:]:
            x = block(x)
        return x

    def fade(self, layout: torch.Tensor, alpha: float, palette: torch.Tensor | None = None) -> torch.Tensor:
        """The score during the fade-in to the layout's resolution: ``(1-alpha)·enter_next(avgpool(x)) +
        alpha·block_entry(enter_entry(x))``, then the remaining blocks."""
        entry = self._entry(layout.shape[2])
        if entry + 1 >= len(self.blocks):
            raise ValueError("there is no fade-in into the first resolution (4)")
        x = self._with_palette(layout, palette)
        fine = self.blocks[entry](self.blocks[entry].enter(x))
        coarse = self.blocks[entry + 1].enter(x, downsample=True)
        x = (1 - alpha) * coarse + alpha * fine
        for block in self.blocks[entry + 1 :]:
            x = block(x)
        return x
