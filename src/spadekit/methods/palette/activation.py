"""Turning raw class scores into a layout: the proportion-aware ("assisted") activation.

The layout generator's 1×1 ``to_mask`` convolution gives raw per-class scores r (N, C, H, W). The
assisted activation spreads each class over the image so that its area equals the requested
proportion: a softmax of r_c over all H·W positions, times p_c·H·W, gives the class mask m_c
(Σ_hw m_c = p_c·H·W); the layout is the per-pixel normalisation of the masks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ACTIVATIONS = ("assisted", "weakly_assisted", "softmax")
"""``assisted``: spatial softmax × proportions (the paper). ``weakly_assisted``: a per-pixel sigmoid
instead of the spatial softmax. ``softmax``: a plain softmax over classes, proportions unused."""

MASK_EPS = 1e-6


@dataclass
class LayoutStep:
    """One layout the generator emits (after a joint, or the final one).

    ``sem_seg``: soft layout (N, C, H, W), a distribution over classes at each pixel.
    ``sem_mask``: the class masks m (N, C, H, W) of the assisted activation, None for ``softmax``.
    ``raw``: the raw class scores r (N, C, H, W), None for ``softmax``.
    """

    sem_seg: torch.Tensor
    sem_mask: torch.Tensor | None = None
    raw: torch.Tensor | None = None

    def mix(self, other: "LayoutStep", alpha: float) -> "LayoutStep":
        """``(1 - alpha) · self + alpha · other``, field by field (the fade-in between resolutions)."""

        def blend(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
            return None if a is None or b is None else (1 - alpha) * a + alpha * b

        return LayoutStep(blend(self.sem_seg, other.sem_seg), blend(self.sem_mask, other.sem_mask), blend(self.raw, other.raw))


def filter_palette(palette: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Zero the proportions below one pixel (p < 1 / (H·W)) and renormalise (the ``filter_cond`` option).

    Shapes: (N, C) → (N, C).
    """
    palette = palette.clone()
    palette[palette < 1.0 / (height * width)] = 0
    return palette / palette.sum(dim=1, keepdim=True)


def assisted_activation(
    raw: torch.Tensor,
    palette: torch.Tensor,
    weakly: bool = False,
    filter_small: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(layout, masks) from raw scores and the palette.

    Shapes: ``raw`` (N, C, H, W), ``palette`` (N, C) → two (N, C, H, W) tensors.
    """
    n, c, h, w = raw.shape
    if filter_small:
        palette = filter_palette(palette, h, w)
    if weakly:
        spread = torch.sigmoid(raw)
    else:
        spread = F.softmax(raw.reshape(n, c, h * w), dim=2).view_as(raw)
    # Same operation order as the official code (p first, then H, then W) to stay bit-close.
    mask = spread * palette.reshape(n, c, 1, 1) * h * w
    layout = (mask + MASK_EPS) / torch.sum(mask + MASK_EPS, dim=1, keepdim=True)
    return layout, mask


def activate(raw: torch.Tensor, palette: torch.Tensor | None, kind: str, filter_small: bool = False) -> LayoutStep:
    """Apply activation ``kind`` (one of :data:`ACTIVATIONS`) to raw scores (N, C, H, W)."""
    if kind == "softmax":
        return LayoutStep(torch.softmax(raw, dim=1))
    if palette is None:
        raise ValueError(f"the {kind!r} activation needs a palette")
    layout, mask = assisted_activation(raw, palette, weakly=kind == "weakly_assisted", filter_small=filter_small)
    return LayoutStep(layout, mask, raw)
