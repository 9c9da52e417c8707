"""BachGAN's generator and discriminator losses (the released ``--retrival_memory`` mode). No
optimisers, no I/O.

Generator: GAN loss (hinge by default) of D on (box layout, fake) + feature matching × lambda_feat /
num_D + VGG19 perceptual × lambda_vgg + KL × lambda_kld (with the VAE encoder) + NLL of the
segmentation head against the fine label map × lambda_seg (the official ``--seg``, off in the
released runs). Discriminator: the GAN loss on fake and real, both paired with the box layout, in one
batch. D never sees the retrieved layouts.

The official D step regenerates the fake image (a second generator forward, which also moves the
batch-norm statistics once more); here it reuses the generator step's fake image passed as ``carry``,
as spadekit's SPADE objective does.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.losses import VGGLoss, feature_matching_loss, gan_loss, kl_loss
from spadekit.models.encoder import reparameterize


@dataclass
class BachGANBatch:
    """Model-ready tensors.

    box_layout (N, C, H, W) float; retrieved (N, k·C, H, W) float (candidate-major); image (N, 3, H, W)
    in [-1, 1]; fine_label (N, H, W) int64 class ids of the full label map (only for the seg loss).
    """

    box_layout: torch.Tensor
    retrieved: torch.Tensor
    image: torch.Tensor
    fine_label: torch.Tensor | None = None

    @property
    def semantics(self) -> torch.Tensor:
        """The generator's input (N, (1+k)·C, H, W)."""
        return torch.cat([self.box_layout, self.retrieved], dim=1)


def segmentation_loss(log_probs: torch.Tensor, target: torch.Tensor, ignore_index: int = 255) -> torch.Tensor:
    """Mean NLL of (N, C, H, W) log-probabilities at the (N, H, W) target ids, ``ignore_index`` skipped."""
    return F.nll_loss(log_probs, target.long(), ignore_index=ignore_index)


def _scales(outputs) -> list[list[torch.Tensor]]:
    # A single patch discriminator (the official --netD nlayer) returns one list of features.
    return [outputs] if isinstance(outputs[0], torch.Tensor) else outputs


class BachGANObjective(nn.Module):
    """The losses of one G step and one D step.

    Args:
        generator: a :class:`~spadekit.methods.bachgan.generator.BachGANGenerator`, maybe DDP-wrapped
            (called as ``generator(semantics, z, segmentation=True)`` when ``lambda_seg`` > 0).
        discriminator: multi-scale or single patch discriminator on cat(box layout, image).
        encoder: the VAE image encoder, or None.
        gan_mode: ``hinge`` | ``ls`` | ``original`` | ``w``.
        feature_matching: the official ``not no_ganFeat_loss``.
        vgg: the perceptual loss module, or None (no VGG term).
        lambda_seg: weight of the segmentation NLL (official ``--seg``: 1); 0 = no term.
        seg_ignore_index: target id the NLL skips (255).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        encoder: nn.Module | None = None,
        gan_mode: str = "hinge",
        feature_matching: bool = True,
        lambda_feat: float = 10.0,
        vgg: VGGLoss | None = None,
        lambda_vgg: float = 10.0,
        lambda_kld: float = 0.05,
        lambda_seg: float = 0.0,
        seg_ignore_index: int = 255,
    ):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.encoder = encoder
        self.gan_mode = gan_mode
        self.feature_matching = feature_matching
        self.lambda_feat = lambda_feat
        self.vgg = vgg
        self.lambda_vgg = lambda_vgg
        self.lambda_kld = lambda_kld
        self.lambda_seg = lambda_seg
        self.seg_ignore_index = seg_ignore_index

    def discriminate(self, batch: BachGANBatch, fake: torch.Tensor) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
        """D on (box layout, fake) and (box layout, real) in one batch → (fake, real) features per scale."""
        pairs = torch.cat(
            [torch.cat([batch.box_layout, fake], dim=1), torch.cat([batch.box_layout, batch.image], dim=1)], dim=0
        )
        outputs = _scales(self.discriminator(pairs))
        n = fake.shape[0]
        return [[f[:n] for f in scale] for scale in outputs], [[f[n:] for f in scale] for scale in outputs]

    def generator_losses(self, batch: BachGANBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(total, named terms, carry = the fake images (N, 3, H, W)) for the generator update."""
        terms: dict[str, torch.Tensor] = {}
        z = None
        if self.encoder is not None:
            mu, logvar = self.encoder(batch.image)
            z = reparameterize(mu, logvar)
            terms["KLD"] = kl_loss(mu, logvar) * self.lambda_kld
        if self.lambda_seg > 0:
            fake, seg = self.generator(batch.semantics, z, segmentation=True)
        else:
            fake, seg = self.generator(batch.semantics, z), None
        fake_out, real_out = self.discriminate(batch, fake)
        terms["G_GAN"] = gan_loss(fake_out, self.gan_mode, True, for_discriminator=False)
        if seg is not None:
            if batch.fine_label is None:
                raise ValueError("the segmentation loss needs batch.fine_label")
            terms["G_seg"] = segmentation_loss(seg, batch.fine_label, self.seg_ignore_index) * self.lambda_seg
        if self.feature_matching:
            terms["G_feat"] = feature_matching_loss(fake_out, real_out, self.lambda_feat)
        if self.vgg is not None and self.lambda_vgg > 0:
            terms["G_VGG"] = self.vgg(fake, batch.image) * self.lambda_vgg
        total = torch.stack([t.float() for t in terms.values()]).sum()
        return total, terms, fake

    def discriminator_losses(self, batch: BachGANBatch, carry: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total, named terms) for the discriminator update; ``carry`` (the fake images) is detached."""
        fake_out, real_out = self.discriminate(batch, carry.detach())
        terms = {
            "D_fake": gan_loss(fake_out, self.gan_mode, False, for_discriminator=True),
            "D_real": gan_loss(real_out, self.gan_mode, True, for_discriminator=True),
        }
        return terms["D_fake"] + terms["D_real"], terms
