"""A pix2pixHD-style generator for the paper's ablation: the semantics enter at the first layer only."""

from __future__ import annotations

import torch
from torch import nn


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind in ("batch", "syncbatch"):
        return nn.BatchNorm2d(channels)
    raise ValueError(f"unknown norm {kind!r}")


class _ResBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(norm, channels),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(channels, channels, 3),
            _norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Pix2PixHDGenerator(nn.Module):
    """Encoder–residual–decoder generator fed the one-hot labels directly (pix2pixHD's global net).

    7×7 conv → ``downsampling`` stride-2 convs → ``blocks`` residual blocks → as many transposed
    convs → 7×7 conv → tanh, with ordinary (non-spatially-adaptive) norms. It is the baseline the
    paper compares SPADE against: the same input, but normalisation can wash the labels out.

    Shapes: ``semantics`` (N, S, H, W) → (N, 3, H, W); ``z`` is accepted and ignored.
    """

    def __init__(self, semantic_nc: int, ngf: int = 64, downsampling: int = 4, blocks: int = 9, norm: str = "instance"):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(semantic_nc, ngf, 7), _norm(norm, ngf), nn.ReLU(True)]
        width = ngf
        for _ in range(downsampling):
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1), _norm(norm, width * 2), nn.ReLU(True)]
            width *= 2
        layers += [_ResBlock(width, norm) for _ in range(blocks)]
        for _ in range(downsampling):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                _norm(norm, width // 2),
                nn.ReLU(True),
            ]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self.use_vae = False
        self.semantic_nc = semantic_nc

    latent_dim = None  # deterministic: the z argument is ignored
    spatial_latent = False

    def forward(self, semantics: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(semantics)
