"""The SPADE generator: a latent map upsampled through SPADE residual blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.models.blocks import SPADEResBlock
from spadekit.models.layout import Layout
from spadekit.models.trunk import BLOCKS, block_widths, check_upsampling, latent_size, run_blocks, start_layer

LAYOUT_PATHS = ("band", "gather", "dense")
"""How a training-mode forward computes SPADE's modulation from one-hot semantics: band-sparse
where the band is small enough, the gather everywhere, or the official dense convolutions."""


class SPADEGenerator(nn.Module):
    """Semantic map (and optional latent ``z``) → image in [-1, 1].

    Without VAE the start map is ``fc`` (3×3 conv) of the semantics resized to the latent size;
    with VAE it is ``fc`` (linear) of ``z`` reshaped to (16·ngf, sh, sw). Then ``head_0``,
    ``G_middle_0``, ``G_middle_1``, ``up_0``..``up_3`` (and ``up_4`` for ``most``), each followed
    or preceded by nearest ×2 upsampling, LeakyReLU(0.2), ``conv_img`` and tanh.

    Shapes: ``semantics`` (N, S, H, W) one-hot; ``z`` (N, z_dim) or None → (N, 3, H, W) where
    (W, H) is the generator's output size.

    ``layout_classes`` (C, the one-hot channels before the optional edge channel) lets a
    training-mode forward replace the one-hot tensor by class indices (:mod:`spadekit.models.layout`):
    the same outputs and gradients up to float summation order, with the first SPADE convolution
    as a gather and gamma/beta convolved only near boundaries. ``layout_path`` (``band``, ``gather``
    or ``dense``) picks how far; eval mode and inputs that are not exactly one-hot always take the
    dense path.

    ``latent_spade`` (VAE only) also feeds ``z`` to every SPADE layer (see :class:`SPADE`'s
    ``latent_dim``), so that the latent reaches every resolution and not only the start map. Not in
    the official SPADE; its training forward takes the dense path.
    """

    def __init__(
        self,
        semantic_nc: int,
        ngf: int = 64,
        width: int = 256,
        aspect_ratio: float = 1.0,
        upsampling: str = "normal",
        norm: str = "syncbatch",
        spectral: bool = True,
        spade_kernel: int = 3,
        spade_hidden: int = 128,
        use_vae: bool = False,
        z_dim: int = 256,
        layout_classes: int | None = None,
        latent_spade: bool = False,
    ):
        super().__init__()
        if latent_spade and not use_vae:
            raise ValueError("latent_spade needs use_vae: the SPADE layers are conditioned on the VAE latent")
        self.latent_spade = latent_spade
        self.layout_classes = layout_classes
        self.layout_path = "band"
        self.band_threshold = 0.5
        """Largest band fraction at which a level takes the band-sparse path (``layout_path="band"``)."""
        check_upsampling(upsampling)
        self.semantic_nc = semantic_nc
        self.upsampling = upsampling
        self.use_vae = use_vae
        self.z_dim = z_dim
        self.ngf = ngf
        self.sw, self.sh = latent_size(width, aspect_ratio, upsampling)
        self.fc = start_layer(semantic_nc, ngf, self.sw, self.sh, use_vae, z_dim)
        widths = block_widths(ngf, upsampling)
        for name, (fin, fout) in widths.items():
            self.add_module(
                name,
                SPADEResBlock(fin, fout, semantic_nc, norm, spectral, spade_kernel, spade_hidden, z_dim if latent_spade else None),
            )
        self.conv_img = nn.Conv2d(widths[self.block_names[-1]][1], 3, 3, padding=1)

    spatial_latent = False

    @property
    def latent_dim(self) -> int | None:
        """Size of ``z`` (VAE generators); None: the generator is deterministic."""
        return self.z_dim if self.use_vae else None

    @property
    def block_names(self) -> list[str]:
        return [name for name in BLOCKS if hasattr(self, name)]

    def layout(self, semantics: torch.Tensor) -> torch.Tensor | Layout:
        """What the SPADE layers receive: a :class:`Layout` in training mode when allowed, else ``semantics``."""
        if self.layout_path not in LAYOUT_PATHS:
            raise ValueError(f"layout_path must be one of {', '.join(LAYOUT_PATHS)}, not {self.layout_path!r}")
        if not self.training or self.layout_classes is None or self.layout_path == "dense" or self.latent_spade:
            return semantics
        threshold = self.band_threshold if self.layout_path == "band" else 0.0
        return Layout.from_semantics(semantics, self.layout_classes, threshold) or semantics

    def latent(self, seg: torch.Tensor | Layout, z: torch.Tensor | None) -> torch.Tensor | None:
        """``z`` as given, or drawn from N(0, I) for a VAE generator without one; None otherwise."""
        if not self.use_vae or z is not None:
            return z
        # Sampled where the input lives (the official code assumes a GPU here).
        reference = seg.index if isinstance(seg, Layout) else seg
        return torch.randn(reference.shape[0], self.z_dim, device=reference.device, dtype=seg.dtype)

    def start_map(self, seg: torch.Tensor | Layout, z: torch.Tensor | None) -> torch.Tensor:
        """The (N, 16·ngf, sh, sw) map the blocks start from."""
        if self.use_vae:
            return self.fc(self.latent(seg, z)).unflatten(1, (16 * self.ngf, self.sh, self.sw))
        if isinstance(seg, Layout):
            return self.fc(seg.semantics((self.sh, self.sw), seg.dtype))
        return self.fc(F.interpolate(seg, size=(self.sh, self.sw), mode="nearest"))

    def features(self, seg: torch.Tensor | Layout, z: torch.Tensor | None = None) -> torch.Tensor:
        """The trunk: LeakyReLU(0.2) of the last block, (N, ngf (ngf/2 for ``most``), H, W)."""
        z = self.latent(seg, z)
        block_latent = z if self.latent_spade else None
        x = run_blocks(
            self.start_map(seg, z), self.upsampling, self.block_names, lambda name, x: getattr(self, name)(x, seg, block_latent)
        )
        return F.leaky_relu(x, 0.2)

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tanh(self.conv_img(self.features(self.layout(semantics), z)))
