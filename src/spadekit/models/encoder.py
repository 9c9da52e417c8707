"""The VAE style encoder: image → (mu, logvar) of a 256-d latent."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.models.discriminator import _normed_conv


class ConvEncoder(nn.Module):
    """Six stride-2 3×3 convs (widths ngf·(1, 2, 4, 8, 8, 8)) on the image resized to 256×256,
    then two linear heads from the 4×4 map.

    The official code builds the sixth layer only for crop sizes ≥ 256 yet always resizes to
    256, which breaks smaller models; here the sixth layer always exists (the input is always 256²).

    Shapes: (N, 3, H, W) in [-1, 1] → mu (N, z_dim), logvar (N, z_dim).
    """

    input_size = 256

    def __init__(self, ngf: int = 64, z_dim: int = 256, norm: str = "instance", spectral: bool = True):
        super().__init__()
        widths = [3, ngf, ngf * 2, ngf * 4, ngf * 8, ngf * 8, ngf * 8]
        for index in range(6):
            conv = nn.Conv2d(widths[index], widths[index + 1], 3, stride=2, padding=1)
            self.add_module(f"layer{index + 1}", _normed_conv(conv, norm, spectral))
        self.fc_mu = nn.Linear(ngf * 8 * 4 * 4, z_dim)
        self.fc_var = nn.Linear(ngf * 8 * 4 * 4, z_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear")
        x = self.layer1(x)
        for index in range(2, 7):
            x = getattr(self, f"layer{index}")(F.leaky_relu(x, 0.2))
        x = F.leaky_relu(x, 0.2).flatten(1)
        return self.fc_mu(x), self.fc_var(x)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``z = mu + eps * exp(logvar / 2)``, eps ~ N(0, I)."""
    std = torch.exp(0.5 * logvar)
    eps = torch.randn(std.shape, dtype=std.dtype, device=std.device, generator=generator)
    return eps * std + mu
