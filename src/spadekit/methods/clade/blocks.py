"""The CLADE residual block: SPADE's block with CLADE layers (and one extra conv input per instance channel)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.methods.clade.norm import CLADE
from spadekit.models.blocks import maybe_spectral


class CLADEResBlock(nn.Module):
    """``x_s + conv_1(lrelu(CLADE_1(conv_0(lrelu(CLADE_0(x))))))``, the shortcut ``x_s`` being ``x``
    when ``fin == fout`` and otherwise ``conv_s(CLADE_s(x))`` (1×1, no bias, no activation).

    With instances on, each CLADE layer appends the instance feature as an extra channel, so
    conv_0, conv_1 and conv_s take fin + 1, fmiddle + 1 and fin + 1 inputs; the identity shortcut
    keeps fin. Spectral norm, when on, wraps conv_0, conv_1 and conv_s only.

    Shapes: ``x`` (N, fin, H, W), ``seg`` (N, L (+1), H', W'), ``dist`` (N, 2, H'', W'') or None →
    (N, fout, H, W).
    """

    def __init__(
        self,
        fin: int,
        fout: int,
        num_classes: int,
        norm: str = "syncbatch",
        spectral: bool = True,
        use_instance: bool = False,
        use_dist: bool = False,
    ):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        extra = int(use_instance)
        self.conv_0 = maybe_spectral(nn.Conv2d(fin + extra, fmiddle, 3, padding=1), spectral)
        self.conv_1 = maybe_spectral(nn.Conv2d(fmiddle + extra, fout, 3, padding=1), spectral)
        if self.learned_shortcut:
            self.conv_s = maybe_spectral(nn.Conv2d(fin + extra, fout, 1, bias=False), spectral)
        layer = dict(num_classes=num_classes, norm=norm, use_instance=use_instance, use_dist=use_dist)
        self.norm_0 = CLADE(fin, **layer)
        self.norm_1 = CLADE(fmiddle, **layer)
        if self.learned_shortcut:
            self.norm_s = CLADE(fin, **layer)

    def shortcut(self, x: torch.Tensor, seg: torch.Tensor, dist: torch.Tensor | None) -> torch.Tensor:
        if self.learned_shortcut:
            return self.conv_s(self.norm_s(x, seg, dist))
        return x

    def forward(self, x: torch.Tensor, seg: torch.Tensor, dist: torch.Tensor | None = None) -> torch.Tensor:
        x_s = self.shortcut(x, seg, dist)
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg, dist), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg, dist), 0.2))
        return x_s + dx
