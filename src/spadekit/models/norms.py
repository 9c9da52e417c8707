"""Parameter-free normalisation and SPADE, the spatially-adaptive denormalisation layer."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.models.layout import Layout, spade_modulation, uses_plain_weights

# Short names → parameter-free norm constructors (timm-style lookup instead of parsing option strings).
# "syncbatch" is plain batch norm in a single process; the trainer converts it with
# nn.SyncBatchNorm.convert_sync_batchnorm under DDP, which keeps the same state-dict keys.
_PARAM_FREE_NORMS = {
    "batch": lambda channels: nn.BatchNorm2d(channels, affine=False),
    "syncbatch": lambda channels: nn.BatchNorm2d(channels, affine=False),
    "instance": lambda channels: nn.InstanceNorm2d(channels, affine=False),
}


def param_free_norm(kind: str, channels: int) -> nn.Module:
    """A normalisation layer without learned scale/shift: ``batch``, ``syncbatch`` or ``instance``."""
    try:
        return _PARAM_FREE_NORMS[kind](channels)
    except KeyError:
        raise ValueError(f"unknown norm {kind!r}; choose one of {', '.join(_PARAM_FREE_NORMS)}") from None


class SPADE(nn.Module):
    """Spatially-adaptive (de)normalisation.

    ``out = norm(x) * (1 + gamma(seg)) + beta(seg)`` where gamma and beta are predicted per pixel
    from the semantics resized (nearest) to the resolution of ``x``.

    Args:
        channels: channels C of the activation being normalised.
        semantic_nc: channels S of the one-hot semantics.
        norm: parameter-free norm (``batch`` / ``syncbatch`` / ``instance``).
        kernel_size: kernel of the three convolutions (3 in the paper, 5 as an option).
        hidden: width of the shared convolution (128 in the paper).

    Shapes: ``x`` (N, C, H, W), ``segmap`` (N, S, H', W') → (N, C, H, W). ``segmap`` may also be
    a :class:`~spadekit.models.layout.Layout` (class indices standing for one-hot semantics): the
    same values and gradients from a gather and band-sparse convolutions.
    """

    def __init__(self, channels: int, semantic_nc: int, norm: str = "syncbatch", kernel_size: int = 3, hidden: int = 128):
        super().__init__()
        padding = kernel_size // 2
        self.param_free_norm = param_free_norm(norm, channels)
        self.mlp_shared = nn.Sequential(nn.Conv2d(semantic_nc, hidden, kernel_size, padding=padding), nn.ReLU())
        self.mlp_gamma = nn.Conv2d(hidden, channels, kernel_size, padding=padding)
        self.mlp_beta = nn.Conv2d(hidden, channels, kernel_size, padding=padding)

    def modulation(self, segmap: torch.Tensor | Layout, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta) for semantics resized to ``size``."""
        if isinstance(segmap, Layout):
            if uses_plain_weights(self.mlp_shared[0], self.mlp_gamma, self.mlp_beta):
                return spade_modulation(segmap, size, self.mlp_shared[0], self.mlp_gamma, self.mlp_beta)
            segmap = segmap.semantics(size, self.mlp_shared[0].weight.dtype)
        if segmap.shape[-2:] != size:
            segmap = F.interpolate(segmap, size=size, mode="nearest")
        hidden = self.mlp_shared(segmap)
        return self.mlp_gamma(hidden), self.mlp_beta(hidden)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor | Layout) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        if isinstance(segmap, Layout) and uses_plain_weights(self.mlp_shared[0], self.mlp_gamma, self.mlp_beta):
            scale, shift = spade_modulation(
                segmap, tuple(x.shape[-2:]), self.mlp_shared[0], self.mlp_gamma, self.mlp_beta, gamma_offset=1.0
            )
            return torch.addcmul(shift, normalized, scale)
        gamma, beta = self.modulation(segmap, tuple(x.shape[-2:]))
        return normalized * (1 + gamma) + beta
