"""The SPADE residual block (pre-activation, learned shortcut when widths differ)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from spadekit.models.norms import SPADE


def maybe_spectral(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap with PyTorch's spectral norm (state keys ``weight_orig``/``weight_u``/``weight_v``, as in
    the official checkpoints) when ``enabled``."""
    return spectral_norm(module) if enabled else module


class SPADEResBlock(nn.Module):
    """``x_s + conv_1(lrelu(SPADE_1(conv_0(lrelu(SPADE_0(x, seg))), seg)))``.

    The shortcut ``x_s`` is ``x`` when ``fin == fout`` and otherwise ``conv_s(SPADE_s(x, seg))``
    (1×1, no bias, no activation). Spectral norm, when on, wraps conv_0, conv_1 and conv_s only.

    Shapes: ``x`` (N, fin, H, W), ``seg`` (N, S, H', W') → (N, fout, H, W).
    """

    def __init__(
        self,
        fin: int,
        fout: int,
        semantic_nc: int,
        norm: str = "syncbatch",
        spectral: bool = True,
        spade_kernel: int = 3,
        spade_hidden: int = 128,
        latent_dim: int | None = None,
    ):
        super().__init__()
        self.learned_shortcut = fin != fout
        fmiddle = min(fin, fout)
        self.conv_0 = maybe_spectral(nn.Conv2d(fin, fmiddle, 3, padding=1), spectral)
        self.conv_1 = maybe_spectral(nn.Conv2d(fmiddle, fout, 3, padding=1), spectral)
        if self.learned_shortcut:
            self.conv_s = maybe_spectral(nn.Conv2d(fin, fout, 1, bias=False), spectral)
        spade = dict(semantic_nc=semantic_nc, norm=norm, kernel_size=spade_kernel, hidden=spade_hidden, latent_dim=latent_dim)
        self.norm_0 = SPADE(fin, **spade)
        self.norm_1 = SPADE(fmiddle, **spade)
        if self.learned_shortcut:
            self.norm_s = SPADE(fin, **spade)

    def shortcut(self, x: torch.Tensor, seg: torch.Tensor, latent: torch.Tensor | None = None) -> torch.Tensor:
        if self.learned_shortcut:
            return self.conv_s(self.norm_s(x, seg, latent))
        return x

    def forward(self, x: torch.Tensor, seg: torch.Tensor, latent: torch.Tensor | None = None) -> torch.Tensor:
        x_s = self.shortcut(x, seg, latent)
        # In place: the SPADE output is a fresh tensor that nothing else reads (saves one activation per layer).
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg, latent), 0.2, inplace=True))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg, latent), 0.2, inplace=True))
        return x_s + dx
