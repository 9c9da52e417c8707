"""The SPADE generator: a latent map upsampled through SPADE residual blocks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.models.blocks import SPADEResBlock
from spadekit.models.layout import Layout

UPSAMPLINGS = {"normal": 5, "more": 6, "most": 7}
LAYOUT_PATHS = ("band", "gather", "dense")
"""How a training-mode forward computes SPADE's modulation from one-hot semantics: band-sparse
where the band is small enough, the gather everywhere, or the official dense convolutions."""


def latent_size(width: int, aspect_ratio: float, upsampling: str) -> tuple[int, int]:
    """(sw, sh) of the starting map: ``sw = width // 2**u``, ``sh = round(sw / aspect_ratio)``."""
    sw = width // (2 ** UPSAMPLINGS[upsampling])
    return sw, round(sw / aspect_ratio)


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
    ):
        super().__init__()
        self.layout_classes = layout_classes
        self.layout_path = "band"
        self.band_threshold = 0.5
        """Largest band fraction at which a level takes the band-sparse path (``layout_path="band"``)."""
        if upsampling not in UPSAMPLINGS:
            raise ValueError(f"upsampling must be one of {', '.join(UPSAMPLINGS)}")
        self.semantic_nc = semantic_nc
        self.upsampling = upsampling
        self.use_vae = use_vae
        self.z_dim = z_dim
        self.ngf = ngf
        self.sw, self.sh = latent_size(width, aspect_ratio, upsampling)
        nf = ngf
        if use_vae:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sw * self.sh)
        else:
            self.fc = nn.Conv2d(semantic_nc, 16 * nf, 3, padding=1)

        def block(fin: int, fout: int) -> SPADEResBlock:
            return SPADEResBlock(fin, fout, semantic_nc, norm, spectral, spade_kernel, spade_hidden)

        self.head_0 = block(16 * nf, 16 * nf)
        self.G_middle_0 = block(16 * nf, 16 * nf)
        self.G_middle_1 = block(16 * nf, 16 * nf)
        self.up_0 = block(16 * nf, 8 * nf)
        self.up_1 = block(8 * nf, 4 * nf)
        self.up_2 = block(4 * nf, 2 * nf)
        self.up_3 = block(2 * nf, 1 * nf)
        final_nc = nf
        if upsampling == "most":
            self.up_4 = block(1 * nf, nf // 2)
            final_nc = nf // 2
        self.conv_img = nn.Conv2d(final_nc, 3, 3, padding=1)

    spatial_latent = False

    @property
    def latent_dim(self) -> int | None:
        """Size of ``z`` (VAE generators); None: the generator is deterministic."""
        return self.z_dim if self.use_vae else None

    @staticmethod
    def up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest")

    def layout(self, semantics: torch.Tensor) -> torch.Tensor | Layout:
        """What the SPADE layers receive: a :class:`Layout` in training mode when allowed, else ``semantics``."""
        if self.layout_path not in LAYOUT_PATHS:
            raise ValueError(f"layout_path must be one of {', '.join(LAYOUT_PATHS)}, not {self.layout_path!r}")
        if not self.training or self.layout_classes is None or self.layout_path == "dense":
            return semantics
        threshold = self.band_threshold if self.layout_path == "band" else 0.0
        return Layout.from_semantics(semantics, self.layout_classes, threshold) or semantics

    def start_map(self, seg: torch.Tensor | Layout, z: torch.Tensor | None) -> torch.Tensor:
        """The (N, 16·ngf, sh, sw) map the blocks start from."""
        if self.use_vae:
            if z is None:
                # Sampled where the input lives (the official code assumes a GPU here).
                reference = seg.index if isinstance(seg, Layout) else seg
                z = torch.randn(reference.shape[0], self.z_dim, device=reference.device, dtype=seg.dtype)
            return self.fc(z).unflatten(1, (16 * self.ngf, self.sh, self.sw))
        if isinstance(seg, Layout):
            return self.fc(seg.semantics((self.sh, self.sw), seg.dtype))
        return self.fc(F.interpolate(seg, size=(self.sh, self.sw), mode="nearest"))

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        seg = self.layout(semantics)
        x = self.start_map(seg, z)
        x = self.head_0(x, seg)
        x = self.up(x)
        x = self.G_middle_0(x, seg)
        if self.upsampling in ("more", "most"):
            x = self.up(x)
        x = self.G_middle_1(x, seg)
        for name in ("up_0", "up_1", "up_2", "up_3"):
            x = self.up(x)
            x = getattr(self, name)(x, seg)
        if self.upsampling == "most":
            x = self.up(x)
            x = self.up_4(x, seg)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.tanh(x)
