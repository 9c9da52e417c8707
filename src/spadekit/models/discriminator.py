"""Multi-scale PatchGAN discriminator that returns every intermediate feature."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.models.blocks import maybe_spectral


NORMS = ("none", "instance", "instanceaffine", "batch", "syncbatch")


def normed_conv(conv: nn.Conv2d, norm: str, spectral: bool) -> nn.Module:
    """Spectral norm on the conv, then a norm layer: ``Sequential(conv, norm)`` without the conv's bias
    (the norm subtracts the mean), or the conv alone (bias kept) for ``none``.

    ``instance``: instance norm without affine; ``instanceaffine``: with a learned per-channel scale
    and shift (ASAPNet's); ``batch`` / ``syncbatch``: batch norm with affine.
    """
    conv = maybe_spectral(conv, spectral)
    if norm == "none":
        return conv
    if norm == "instance":
        layer = nn.InstanceNorm2d(conv.out_channels, affine=False)
    elif norm == "instanceaffine":
        layer = nn.InstanceNorm2d(conv.out_channels, affine=True)
    elif norm in ("batch", "syncbatch"):
        layer = nn.BatchNorm2d(conv.out_channels, affine=True)
    else:
        raise ValueError(f"unknown norm {norm!r}; choose one of {', '.join(NORMS)}")
    # A bias would be a wasted parameter: remove it, as the paper's code does.
    del conv.bias
    conv.register_parameter("bias", None)
    return nn.Sequential(conv, layer)


_normed_conv = normed_conv  # the earlier private name


class PatchDiscriminator(nn.Module):
    """One scale: ``n_layers`` stride-2/1 4×4 convs and a final 1-channel patch map.

    Blocks ``model0 .. model{n_layers}``; ``forward`` returns the output of every block, the last
    being the patch prediction. Widths run ndf, min(2·ndf, max_channels), … (the paper caps them at
    512; ASAPNet makes the cap an option). Shapes: (N, C, H, W) → list of (N, C_j, H_j, W_j).
    """

    def __init__(
        self,
        in_channels: int,
        ndf: int = 64,
        n_layers: int = 4,
        norm: str = "instance",
        spectral: bool = True,
        max_channels: int = 512,
    ):
        super().__init__()
        kernel, pad = 4, 2
        nf = ndf
        blocks: list[list[nn.Module]] = [[nn.Conv2d(in_channels, nf, kernel, stride=2, padding=pad), nn.LeakyReLU(0.2)]]
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, max_channels)
            stride = 1 if n == n_layers - 1 else 2
            conv = nn.Conv2d(nf_prev, nf, kernel, stride=stride, padding=pad)
            blocks.append([normed_conv(conv, norm, spectral), nn.LeakyReLU(0.2)])
        blocks.append([nn.Conv2d(nf, 1, kernel, stride=1, padding=pad)])
        for index, layers in enumerate(blocks):
            self.add_module(f"model{index}", nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for block in self.children():
            x = block(x)
            features.append(x)
        return features


class MultiscaleDiscriminator(nn.Module):
    """``num_D`` patch discriminators, each on the input average-pooled once more than the last.

    Input: concat(semantics, image) (N, S+3, H, W). Output: one list of features per scale
    (full resolution first); the last feature of each list is that scale's prediction.
    """

    def __init__(
        self,
        in_channels: int,
        ndf: int = 64,
        num_D: int = 2,
        n_layers: int = 4,
        norm: str = "instance",
        spectral: bool = True,
        max_channels: int = 512,
    ):
        super().__init__()
        for index in range(num_D):
            self.add_module(
                f"discriminator_{index}", PatchDiscriminator(in_channels, ndf, n_layers, norm, spectral, max_channels)
            )

    @staticmethod
    def downsample(x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        results = []
        for index, discriminator in enumerate(self.children()):
            if index:
                x = self.downsample(x)
            results.append(discriminator(x))
        return results
