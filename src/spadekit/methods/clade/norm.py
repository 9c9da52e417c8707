"""CLADE: class-adaptive (de)normalisation, a per-class lookup of scale and shift in place of SPADE's
modulation network (Tan et al., "Efficient Semantic Image Synthesis via Class-Adaptive Normalization")."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.models.norms import param_free_norm


class ClassAffine(nn.Module):
    """Per-class scale and shift tables, optionally modulated by the intra-class positional map (ICPE).

    ``out = x · gamma + beta`` with ``gamma = weight[class]`` and ``beta = bias[class]``. Unlike SPADE there
    is no ``1 +``: the table holds the scale itself (it starts at U(0, 1), the shift at 0). With ICPE,
    ``gamma · (1 + dist_conv_w(dist))`` and ``beta · (1 + dist_conv_b(dist))``, two 1×1 convolutions
    (2 → 1 channel) broadcast over all channels; the shift is scaled, not offset, as in the paper's code.

    Args:
        num_classes: rows L of the tables (label classes, don't-care included).
        channels: channels C of the normalised activation.
        use_dist: ICPE on (``dist_conv_w``/``dist_conv_b`` exist and ``dist`` is required).

    Shapes: ``x`` (N, C, H, W), ``classes`` (N, H, W) int64, ``dist`` (N, 2, H', W') → (N, C, H, W).
    """

    def __init__(self, num_classes: int, channels: int, use_dist: bool = False):
        super().__init__()
        self.num_classes = num_classes
        self.channels = channels
        self.use_dist = use_dist
        self.weight = nn.Parameter(torch.empty(num_classes, channels).uniform_())
        self.bias = nn.Parameter(torch.zeros(num_classes, channels))
        if use_dist:
            self.dist_conv_w = nn.Conv2d(2, 1, 1)
            self.dist_conv_b = nn.Conv2d(2, 1, 1)
            for conv in (self.dist_conv_w, self.dist_conv_b):
                # Zero: ICPE starts as plain CLADE (a global init may overwrite this, as the paper's does).
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def lookup(self, classes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta), each (N, C, H, W), for a class-index map (N, H, W)."""
        gamma = F.embedding(classes, self.weight).permute(0, 3, 1, 2)
        beta = F.embedding(classes, self.bias).permute(0, 3, 1, 2)
        return gamma, beta

    def forward(self, x: torch.Tensor, classes: torch.Tensor, dist: torch.Tensor | None = None) -> torch.Tensor:
        gamma, beta = self.lookup(classes)
        if self.use_dist:
            if dist is None:
                raise ValueError("this CLADE-ICPE layer needs the intra-class offset map dist (N, 2, H, W)")
            dist = F.interpolate(dist, size=x.shape[-2:], mode="nearest")
            gamma = gamma * (1 + self.dist_conv_w(dist))
            beta = beta * (1 + self.dist_conv_b(dist))
        return x * gamma + beta


class CLADE(nn.Module):
    """Parameter-free norm, then the class-adaptive affine of the class under each pixel.

    The class is the argmax over the label channels of the semantics resized (nearest) to ``x``.
    With instances on, the last semantic channel (the instance edges) is not a class: it goes
    through ``inst_conv`` (1×1, 1 → 1) and is appended as one extra output channel, so the
    convolution that follows takes C + 1 inputs (as in the paper's code).

    Args:
        channels: channels C of ``x``.
        num_classes: label channels L of the semantics (don't-care included, instance edges excluded).
        norm: parameter-free norm: ``batch``, ``syncbatch`` or ``instance``.
        use_instance: the semantics carry an instance-edge channel last.
        use_dist: ICPE (see :class:`ClassAffine`).

    Shapes: ``x`` (N, C, H, W), ``segmap`` (N, L (+1), H', W'), ``dist`` (N, 2, H'', W'') →
    (N, C (+1), H, W).
    """

    def __init__(self, channels: int, num_classes: int, norm: str = "syncbatch", use_instance: bool = False, use_dist: bool = False):
        super().__init__()
        self.use_instance = use_instance
        self.param_free_norm = param_free_norm(norm, channels)
        self.class_specified_affine = ClassAffine(num_classes, channels, use_dist)
        if use_instance:
            self.inst_conv = nn.Conv2d(1, 1, 1)

    @property
    def out_channels(self) -> int:
        return self.class_specified_affine.channels + int(self.use_instance)

    def forward(self, x: torch.Tensor, segmap: torch.Tensor, dist: torch.Tensor | None = None) -> torch.Tensor:
        normalized = self.param_free_norm(x)
        segmap = F.interpolate(segmap, size=x.shape[-2:], mode="nearest")
        if self.use_instance:
            edges, segmap = segmap[:, -1:], segmap[:, :-1]
        out = self.class_specified_affine(normalized, segmap.argmax(dim=1), dist)
        if self.use_instance:
            out = torch.cat([out, self.inst_conv(edges)], dim=1)
        return out
