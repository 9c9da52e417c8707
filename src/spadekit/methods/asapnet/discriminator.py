"""ASAPNet's discriminator: SPADE's multi-scale PatchGAN with a configurable channel cap (``ndf_max``)."""

from __future__ import annotations

from spadekit.models.discriminator import MultiscaleDiscriminator


class ASAPNetDiscriminator(MultiscaleDiscriminator):
    """``num_D`` patch discriminators on successively average-pooled inputs (:class:`MultiscaleDiscriminator`,
    same keys and forward) whose widths run ndf, min(2·ndf, max_channels), … (the official ``--ndf_max``,
    512 by default, which SPADE hard-codes) and whose norm may also be ``instanceaffine``.

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
        super().__init__(in_channels, ndf, num_D, n_layers, norm, spectral, max_channels)
