"""End-to-end tuning (``palette.end_to_end``), the paper's last training stage, in reduced form.

The image stage draws photos from the generator's soft layouts; an unconditional multi-scale photo
discriminator ("D2", the model section's discriminator options on 3 channels) judges them with the
hinge loss, weighted by ``palette.lambda_d2`` (official 0.01) in the generator's total. Its gradient
reaches the layout generator through the image generator, which is tuned with it (both are in the G
optimiser). The official trainer also keeps training the image GAN on real layouts (its conditional
discriminator, feature matching and VGG) with separate optimisers and learning rates; that part is
not done here (a released image model usually comes without its discriminator), so keep
``lambda_d2`` small. The terms apply at the final resolution only (the paper tunes a finished
layout GAN); the training data must then come at the image model's size (``model.width``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.data.labels import instance_edges
from spadekit.losses import gan_loss


class ImageStage(nn.Module):
    """Soft layouts (N, C, h, w) → the image generator's photos (N, 3, H, W), through the image
    model's semantics (classes, a zero don't-care channel when it has one, the edges of the argmax
    layout when it takes instance edges). Gradients flow into the layout through the class channels."""

    def __init__(self, generator: nn.Module, size: tuple[int, int], dontcare: bool, edges: bool):
        super().__init__()
        self.generator = generator
        self.size = size  # (height, width)
        self.dontcare = dontcare
        self.edges = edges

    def semantics(self, layout: torch.Tensor) -> torch.Tensor:
        if tuple(layout.shape[-2:]) != self.size:
            layout = F.interpolate(layout, size=self.size, mode="bilinear", align_corners=False)
        channels = [layout]
        if self.dontcare:
            channels.append(layout.new_zeros(layout.shape[0], 1, *self.size))
        if self.edges:
            channels.append(instance_edges(layout.detach().argmax(1, keepdim=True)).to(layout.dtype))
        return torch.cat(channels, dim=1)

    def forward(self, layout: torch.Tensor) -> torch.Tensor:
        return self.generator(self.semantics(layout))


def photo_discriminator(config) -> nn.Module:
    """D2: the model section's multi-scale discriminator on photos alone (3 input channels)."""
    from spadekit.models.discriminator import MultiscaleDiscriminator

    m = config.model
    return MultiscaleDiscriminator(3, m.ndf, m.num_D, m.n_layers_D, m.norm_D, m.spectral_D)


def generator_term(d2: nn.Module, photos: torch.Tensor) -> torch.Tensor:
    """Hinge generator loss of the photos under D2."""
    return gan_loss(d2(photos), "hinge", True, for_discriminator=False)


def discriminator_term(d2: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Hinge discriminator loss of D2: real photos vs the (detached) photos of generated layouts."""
    return gan_loss(d2(real), "hinge", True, for_discriminator=True) + gan_loss(d2(fake.detach()), "hinge", False, for_discriminator=True)
