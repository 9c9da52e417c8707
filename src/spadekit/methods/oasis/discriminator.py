"""The OASIS discriminator: a U-Net that segments an image into N classes + "fake".

State-dict keys equal the official ``OASIS_Discriminator`` keys and order (``body_up.*`` before
``body_down.*``, then ``layer_up_last``); the ``Sequential`` indices of ``conv1``/``conv2`` hold the
activation and upsampling slots of the official layout so the spectral-normed conv keys match.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils import spectral_norm

DEFAULT_WIDTHS = (3, 128, 128, 256, 256, 512, 512)
DEFAULT_LAST_WIDTH = 64


def _conv3(fin: int, fout: int) -> nn.Module:
    return spectral_norm(nn.Conv2d(fin, fout, 3, padding=1))


class DownBlock(nn.Module):
    """Residual block that halves the resolution (average pooling).

    ``first``: main = conv → lrelu → conv → pool, shortcut = pool → 1×1 conv. Otherwise
    main = lrelu → conv → lrelu → conv → pool, shortcut = (1×1 conv if widths differ) → pool.

    Shapes: (N, fin, H, W) → (N, fout, H/2, W/2).
    """

    def __init__(self, fin: int, fout: int, first: bool):
        super().__init__()
        self.first = first
        self.learned_shortcut = fin != fout
        if first:
            self.conv1 = nn.Sequential(_conv3(fin, fout))
        else:
            self.conv1 = nn.Sequential(nn.LeakyReLU(0.2), _conv3(fin, fout))
        self.conv2 = nn.Sequential(nn.LeakyReLU(0.2), _conv3(fout, fout))
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1))
        self.pool = nn.AvgPool2d(2)

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.first:
            x = self.pool(x)
            return self.conv_s(x) if self.learned_shortcut else x
        if self.learned_shortcut:
            x = self.conv_s(x)
        return self.pool(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.pool(self.conv2(self.conv1(x)))


class UpBlock(nn.Module):
    """Residual block that doubles the resolution (nearest).

    main = lrelu → up → conv → lrelu → conv; shortcut = up → (1×1 conv if widths differ).

    Shapes: (N, fin, H, W) → (N, fout, 2H, 2W).
    """

    def __init__(self, fin: int, fout: int):
        super().__init__()
        self.learned_shortcut = fin != fout
        self.conv1 = nn.Sequential(nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2), _conv3(fin, fout))
        self.conv2 = nn.Sequential(nn.LeakyReLU(0.2), _conv3(fout, fout))
        if self.learned_shortcut:
            self.conv_s = spectral_norm(nn.Conv2d(fin, fout, 1))
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_s = self.up(x)
        if self.learned_shortcut:
            x_s = self.conv_s(x_s)
        return x_s + self.conv2(self.conv1(x))


class OasisDiscriminator(nn.Module):
    """Per-pixel (N+1)-class segmenter of images: channel 0 = fake, channel c + 1 = class c.

    Args:
        semantic_nc: N, the number of semantic channels (dontcare included); outputs N + 1.
        widths: encoder widths [3, w1, ..., w6] (official [3, 128, 128, 256, 256, 512, 512]).
        last_width: width of the last decoder block (official 64).

    Decoder block i > 0 takes cat(encoder output of level 5 − i, previous decoder output).

    Shapes: image (B, 3, H, W), H and W multiples of 64 → logits (B, N + 1, H, W).
    """

    def __init__(self, semantic_nc: int, widths: tuple[int, ...] = DEFAULT_WIDTHS, last_width: int = DEFAULT_LAST_WIDTH):
        super().__init__()
        widths = tuple(widths)
        if len(widths) != 7:
            raise ValueError(f"the OASIS discriminator needs 7 widths (input + 6 levels), got {len(widths)}")
        self.semantic_nc = semantic_nc
        self.widths = widths
        self.last_width = last_width
        levels = len(widths) - 1
        # Creation order = official state-dict order: body_up, body_down, layer_up_last.
        self.body_up = nn.ModuleList([UpBlock(widths[-1], widths[-2])])
        for i in range(1, levels - 1):
            self.body_up.append(UpBlock(2 * widths[-1 - i], widths[-2 - i]))
        self.body_up.append(UpBlock(2 * widths[1], last_width))
        self.body_down = nn.ModuleList(DownBlock(widths[i], widths[i + 1], first=i == 0) for i in range(levels))
        self.layer_up_last = nn.Conv2d(last_width, semantic_nc + 1, 1)

    def config(self) -> dict[str, Any]:
        """The constructor arguments, so the network can be rebuilt."""
        return {"semantic_nc": self.semantic_nc, "widths": list(self.widths), "last_width": self.last_width}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = image
        skips = []
        for block in self.body_down:
            x = block(x)
            skips.append(x)
        x = self.body_up[0](x)
        for i in range(1, len(self.body_down)):
            x = self.body_up[i](torch.cat([skips[-i - 1], x], dim=1))
        return self.layer_up_last(x)
