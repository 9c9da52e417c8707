"""ASAPNet's discriminator: SPADE's multi-scale PatchGAN with a configurable channel cap (``ndf_max``)."""

from __future__ import annotations

from torch import nn

from spadekit.methods.asapnet.layers import normed_conv
from spadekit.models.discriminator import MultiscaleDiscriminator, PatchDiscriminator


class CappedPatchDiscriminator(PatchDiscriminator):
    """:class:`PatchDiscriminator` (same blocks ``model0 .. model{n_layers}``, same forward) whose
    widths run ndf, min(2·ndf, max_channels), … instead of capping at 512, and whose norm may also be
    ``instanceaffine``.

    Shapes: (N, in_channels, H, W) → list of every block's output (the last is the patch prediction).
    """

    def __init__(
        self, in_channels: int, ndf: int = 64, n_layers: int = 4, max_channels: int = 512, norm: str = "instance", spectral: bool = True
    ):
        nn.Module.__init__(self)  # the parent's constructor would build the 512-capped layers
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


class ASAPNetDiscriminator(MultiscaleDiscriminator):
    """``num_D`` :class:`CappedPatchDiscriminator` s on successively average-pooled inputs
    (:class:`MultiscaleDiscriminator`'s forward: one list of features per scale, full resolution first).

    Input: concat(semantics with instance edges, image) (N, S + 3, H, W).
    """

    def __init__(
        self,
        in_channels: int,
        ndf: int = 64,
        num_D: int = 2,
        n_layers: int = 4,
        max_channels: int = 512,
        norm: str = "instance",
        spectral: bool = True,
    ):
        nn.Module.__init__(self)  # the parent's constructor would build 512-capped scales
        for index in range(num_D):
            self.add_module(
                f"discriminator_{index}", CappedPatchDiscriminator(in_channels, ndf, n_layers, max_channels, norm, spectral)
            )
