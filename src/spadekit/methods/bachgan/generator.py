"""The BachGAN generator: fuse the box layout with k retrieved layouts, then a SPADE generator fed
the fused map, with an image head and a segmentation head.

Module names and the state-dict keys are the official ones, so official checkpoints load as they
are: SPADE's ``fc``, ``head_0`` .. ``up_3`` (``up_4``), ``conv_img``, then ``conv_seg``,
``encode_shared``, ``memory_shared`` and, when ``legacy_layers``, the official code's unused layers
``conv1_1``, ``conv1_1_memory``, ``conv1_2``, ``conv2_1``, ``conv2_2`` and ``upscore`` (leftovers of an
abandoned fusion design; their widths are fixed whatever the dataset; they take part in nothing).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.models.generator import SPADEGenerator

LEGACY_LAYERS: dict[str, tuple[str, tuple[int, ...], bool]] = {
    # name: (kind, weight shape, has bias); widths hard-coded in the official code
    "conv1_1": ("conv", (64, 35, 3, 3), True),
    "conv1_1_memory": ("conv", (64, 70, 3, 3), True),
    "conv1_2": ("conv", (64, 64, 5, 5), True),
    "conv2_1": ("conv", (128, 64, 3, 3), True),
    "conv2_2": ("conv", (128, 128, 5, 5), True),
    "upscore": ("transpose", (128, 35, 32, 32), False),
}


def _legacy_layer(kind: str, shape: tuple[int, ...], bias: bool) -> nn.Module:
    if kind == "transpose":
        return nn.ConvTranspose2d(shape[0], shape[1], shape[2], stride=16, bias=bias)
    return nn.Conv2d(shape[1], shape[0], shape[2], padding=1, bias=bias)


class Fusion(NamedTuple):
    """Intermediate maps of the fusion, each (N, C, H, W)."""

    fused: torch.Tensor
    """``memory_shared(memory_in) + encoded box layout``: what conditions ``fc`` and every SPADE norm."""
    memory_in: torch.Tensor
    """``encoded box layout + mean of the encoded retrieved layouts``."""


class BachGANGenerator(SPADEGenerator):
    """Box layout + k retrieved layouts → image in [-1, 1] (and per-pixel class log-probabilities).

    ``semantics`` is the official generator's input: the box layout (N, C, H, W) and the k retrieved
    layouts (N, k·C, H, W, candidate-major) concatenated along channels → (N, (1+k)·C, H, W); build it
    with :func:`~spadekit.methods.bachgan.retrieval.compose_semantics`.

    Fusion: the 1+k maps of C channels go through one shared 3×3 conv + ReLU (``encode_shared``) →
    a_0 (box layout), a_1..a_k; ``fused = memory_shared(a_0 + (a_1 + … + a_k)/k) + a_0`` with
    ``memory_shared`` another 3×3 conv + ReLU. ``fused`` (N, C, H, W) then takes the place of the
    one-hot map everywhere in SPADE's generator (the input of ``fc`` and of every SPADE norm).
    Heads on leaky_relu(0.2) of the last block: ``conv_img`` + tanh and ``conv_seg`` + log-softmax.

    Args (those of :class:`SPADEGenerator`, C = ``semantic_nc``), plus:
        num_retrieved: k (the official code hard-wires 3).
        legacy_layers: build the official code's unused layers (needed to round-trip official
            checkpoints; they cost ~5 M parameters and never affect the output).

    ``latent_dim`` is ``z_dim`` with ``use_vae`` (z: (N, z_dim), sampled when None) and None otherwise.
    """

    spatial_latent = False

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
        num_retrieved: int = 3,
        legacy_layers: bool = False,
    ):
        super().__init__(
            semantic_nc, ngf, width, aspect_ratio, upsampling, norm, spectral, spade_kernel, spade_hidden, use_vae, z_dim
        )
        if num_retrieved < 1:
            raise ValueError(f"num_retrieved must be at least 1, got {num_retrieved}")
        self.num_retrieved = num_retrieved
        self.conv_seg = nn.Conv2d(self.conv_img.in_channels, semantic_nc, 3, padding=1)
        self.encode_shared = nn.Sequential(nn.Conv2d(semantic_nc, semantic_nc, 3, padding=1), nn.ReLU())
        self.memory_shared = nn.Sequential(nn.Conv2d(semantic_nc, semantic_nc, 3, padding=1), nn.ReLU())
        self.legacy_layers = legacy_layers
        if legacy_layers:
            for name, (kind, shape, bias) in LEGACY_LAYERS.items():
                self.add_module(name, _legacy_layer(kind, shape, bias))

    @property
    def in_channels(self) -> int:
        """Channels of ``semantics``: (1 + k)·C."""
        return (1 + self.num_retrieved) * self.semantic_nc

    def fuse(self, semantics: torch.Tensor) -> Fusion:
        """The fused layout of (N, (1+k)·C, H, W) semantics."""
        if semantics.dim() != 4 or semantics.shape[1] != self.in_channels:
            raise ValueError(
                f"expected semantics (N, {self.in_channels}, H, W) = box layout + {self.num_retrieved} retrieved "
                f"layouts of {self.semantic_nc} channels, got {tuple(semantics.shape)}"
            )
        n, _, h, w = semantics.shape
        # Map index 4·b + j (batch-major), as the official reshape of the channel concatenation.
        encoded = self.encode_shared(semantics.reshape(n * (1 + self.num_retrieved), self.semantic_nc, h, w))
        encoded = encoded.reshape(n, 1 + self.num_retrieved, self.semantic_nc, h, w)
        box = encoded[:, 0]
        retrieved = encoded[:, 1]
        for j in range(2, 1 + self.num_retrieved):  # summed in order, as the official code
            retrieved = retrieved + encoded[:, j]
        memory_in = box + retrieved / self.num_retrieved
        return Fusion(self.memory_shared(memory_in) + box, memory_in)

    def forward(
        self, semantics: torch.Tensor, z: torch.Tensor | None = None, *, segmentation: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Image (N, 3, H, W) in [-1, 1] for (N, (1+k)·C, H, W) ``semantics`` (see the class docstring);
        with ``segmentation`` also the class log-probabilities (N, C, H, W). (A keyword of ``forward``
        rather than another method, so that the segmentation head also runs through a DDP wrapper.)"""
        x = self.features(self.fuse(semantics).fused, z)
        image = torch.tanh(self.conv_img(x))
        if segmentation:
            return image, F.log_softmax(self.conv_seg(x), dim=1)
        return image

    def forward_with_segmentation(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, class log-probabilities): ``forward(semantics, z, segmentation=True)``."""
        return self(semantics, z, segmentation=True)
