"""The CLADE generator: SPADE's generator with every SPADE layer replaced by a CLADE lookup."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.methods.clade.blocks import CLADEResBlock
from spadekit.methods.clade.positional import offsets_of_index
from spadekit.models.trunk import BLOCKS, block_widths, check_upsampling, latent_size, run_blocks, start_layer


class CLADEGenerator(nn.Module):
    """Semantic map (and optional latent ``z``, optional ICPE offsets ``dist``) → image in [-1, 1].

    The layout is SPADE's (same module names, hence the paper's state-dict keys): ``fc`` (a 3×3
    conv of the semantics resized to the latent size, or with VAE a linear map of ``z``),
    ``head_0``, ``G_middle_0``, ``G_middle_1``, ``up_0``..``up_3`` (+ ``up_4`` for ``most``) with
    nearest ×2 upsampling between them (one more before ``G_middle_1`` for ``more``/``most``),
    LeakyReLU(0.2), ``conv_img`` and tanh.

    Args:
        num_classes: label channels L (don't-care included).
        ngf: base width (the blocks run at 16, 16, 16, 8, 4, 2, 1 (, 1/2) × ngf).
        width, aspect_ratio, upsampling: output width, width/height and ``normal``/``more``/``most``
            (they fix the latent size ``sw = width // 2**(5|6|7)``, ``sh = round(sw / aspect_ratio)``).
        norm: parameter-free norm of the CLADE layers (``batch``/``syncbatch``/``instance``).
        spectral: spectral norm on the block convolutions.
        use_instance: the semantics carry an instance-edge channel last.
        use_dist: CLADE-ICPE: ``forward`` takes the intra-class offsets ``dist`` (see
            :func:`spadekit.methods.clade.positional.intra_class_offsets`; the data pipeline computes
            them on the raw annotation for training). When ``dist`` is None they are computed from
            the semantics' class map with ``offsets_normalize`` and ``offsets_ignore`` (the class
            index without offsets, None for none).
        use_vae: start from ``fc(z)`` instead of the semantics; ``z_dim`` its size.

    Shapes: ``semantics`` (N, L (+1), H, W) one-hot (+ edges); ``z`` (N, z_dim) or None;
    ``dist`` (N, 2, H, W) or None → (N, 3, H, W).
    """

    spatial_latent = False

    def __init__(
        self,
        num_classes: int,
        ngf: int = 64,
        width: int = 256,
        aspect_ratio: float = 1.0,
        upsampling: str = "normal",
        norm: str = "syncbatch",
        spectral: bool = True,
        use_instance: bool = False,
        use_dist: bool = False,
        use_vae: bool = False,
        z_dim: int = 256,
        offsets_normalize: bool = True,
        offsets_ignore: int | None = 0,
    ):
        super().__init__()
        self.offsets_normalize = offsets_normalize
        self.offsets_ignore = offsets_ignore
        check_upsampling(upsampling)
        self.num_classes = num_classes
        self.use_instance = use_instance
        self.use_dist = use_dist
        self.semantic_nc = num_classes + int(use_instance)
        self.upsampling = upsampling
        self.use_vae = use_vae
        self.z_dim = z_dim
        self.ngf = ngf
        self.sw, self.sh = latent_size(width, aspect_ratio, upsampling)
        self.fc = start_layer(self.semantic_nc, ngf, self.sw, self.sh, use_vae, z_dim)
        widths = block_widths(ngf, upsampling)
        for name, (fin, fout) in widths.items():
            self.add_module(name, CLADEResBlock(fin, fout, num_classes, norm, spectral, use_instance, use_dist))
        self.conv_img = nn.Conv2d(widths[self.block_names[-1]][1], 3, 3, padding=1)

    @property
    def latent_dim(self) -> int | None:
        return self.z_dim if self.use_vae else None

    @property
    def extra_inputs(self) -> dict[str, int]:
        """Inputs besides semantics and z, by name and channel count (``dist`` for ICPE)."""
        return {"dist": 2} if self.use_dist else {}

    def offsets(self, index: torch.Tensor) -> torch.Tensor:
        """The ICPE offset map of class-index maps (N, H, W) → (N, 2, H, W), as ``forward`` computes it."""
        return offsets_of_index(index, self.offsets_normalize, self.offsets_ignore)

    @property
    def block_names(self) -> list[str]:
        return [name for name in BLOCKS if hasattr(self, name)]

    def start_map(self, seg: torch.Tensor, z: torch.Tensor | None) -> torch.Tensor:
        """The (N, 16·ngf, sh, sw) map the blocks start from."""
        if self.use_vae:
            if z is None:
                z = torch.randn(seg.shape[0], self.z_dim, device=seg.device, dtype=seg.dtype)
            return self.fc(z).unflatten(1, (16 * self.ngf, self.sh, self.sw))
        return self.fc(F.interpolate(seg, size=(self.sh, self.sw), mode="nearest"))

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None, dist: torch.Tensor | None = None) -> torch.Tensor:
        if semantics.shape[1] != self.semantic_nc:
            raise ValueError(f"CLADE generator takes {self.semantic_nc} semantic channels, got {semantics.shape[1]}")
        seg = semantics
        if not self.use_dist:
            dist = None
        elif dist is None:
            dist = self.offsets(semantics[:, : self.num_classes].argmax(dim=1)).to(semantics.dtype)
        x = run_blocks(self.start_map(seg, z), self.upsampling, self.block_names, lambda name, x: getattr(self, name)(x, seg, dist))
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.tanh(x)
