"""The block schedule of SPADE's generator, shared by every generator built on its layout.

SPADE, CLADE and BachGAN (and the exact fast twins of the first two) stack the same residual
blocks at the same widths and upsample between them at the same places; only the normalisation
inside a block and what conditions it differ. This module holds that schedule once: the block
names, their widths, the latent size they start from, and the order of blocks and upsamplings.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}
"""Number of ×2 upsamplings from the latent map to the output, by the official option name."""

BLOCKS = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3", "up_4")
"""Every block name, in order; ``up_4`` exists only for ``most``."""


def check_upsampling(upsampling: str) -> None:
    if upsampling not in UPSAMPLINGS:
        raise ValueError(f"upsampling must be one of {', '.join(UPSAMPLINGS)}")


def latent_size(width: int, aspect_ratio: float, upsampling: str) -> tuple[int, int]:
    """(sw, sh) of the starting map: ``sw = width // 2**u``, ``sh = round(sw / aspect_ratio)``."""
    sw = width // (2 ** UPSAMPLINGS[upsampling])
    return sw, round(sw / aspect_ratio)


def block_widths(ngf: int, upsampling: str) -> dict[str, tuple[int, int]]:
    """(in, out) channels of every block the generator has, by name, in order.

    The blocks run at 16, 16, 16, 8, 4, 2, 1 (, 1/2 for ``most``) × ``ngf``; the last ``out`` is
    the input width of ``conv_img``.
    """
    nf = ngf
    widths = {
        "head_0": (16 * nf, 16 * nf),
        "G_middle_0": (16 * nf, 16 * nf),
        "G_middle_1": (16 * nf, 16 * nf),
        "up_0": (16 * nf, 8 * nf),
        "up_1": (8 * nf, 4 * nf),
        "up_2": (4 * nf, 2 * nf),
        "up_3": (2 * nf, 1 * nf),
    }
    if upsampling == "most":
        widths["up_4"] = (1 * nf, nf // 2)
    return widths


def upsample(x: torch.Tensor) -> torch.Tensor:
    """Nearest ×2, the only resampling of the trunk."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def run_blocks(
    x: torch.Tensor, upsampling: str, block_names: list[str], run: Callable[[str, torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """The trunk from the start map to the last block's output (before LeakyReLU and ``conv_img``).

    ``run(name, x)`` applies the block ``name`` with whatever conditions it at ``x``'s resolution.
    ×2 upsampling follows ``head_0``, precedes ``G_middle_1`` for ``more``/``most`` and precedes every
    ``up_i`` block; shapes (N, 16·ngf, sh, sw) → (N, ngf (ngf/2 for ``most``), H, W).
    """
    x = run("head_0", x)
    x = upsample(x)
    x = run("G_middle_0", x)
    if upsampling in ("more", "most"):
        x = upsample(x)
    x = run("G_middle_1", x)
    for name in block_names[3:]:
        x = upsample(x)
        x = run(name, x)
    return x


def start_layer(semantic_nc: int, ngf: int, sw: int, sh: int, use_vae: bool, z_dim: int) -> nn.Module:
    """``fc``, which makes the (N, 16·ngf, sh, sw) start map: a linear map of ``z`` (reshaped
    afterwards) with VAE, else a 3×3 conv of the semantics resized to (sh, sw)."""
    if use_vae:
        return nn.Linear(z_dim, 16 * ngf * sw * sh)
    return nn.Conv2d(semantic_nc, 16 * ngf, 3, padding=1)
