"""The OASIS objective: G and D losses from a batch. No optimisers, no I/O.

G step: ``fake = G(semantics)`` (fresh z), loss = balanced (N+1)-CE of D(fake) with real targets
(+ optional VGG). D step: fake (see ``d_fake``) → D(fake), D(real) → L_fake + L_real
(+ lambda_labelmix · LabelMix consistency on a mixed image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from spadekit.losses import VGGLoss
from spadekit.methods.oasis.losses import (
    LABELMIX_MASKS,
    class_balancing_weights,
    labelmix_consistency_loss,
    labelmix_images,
    labelmix_mask,
    n1_loss,
)

D_FAKE_MODES = ("regenerate", "reuse")


class BatchLike(Protocol):
    semantics: torch.Tensor  # (B, N, H, W) one-hot
    image: torch.Tensor  # (B, 3, H, W) in [-1, 1]


@dataclass
class GeneratorStep:
    """Everything the G step computed; ``carry`` is what the D step may reuse (the detached fake)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    fake: torch.Tensor
    logits_fake: torch.Tensor
    weights: torch.Tensor


@dataclass
class DiscriminatorStep:
    """Everything the D step computed (LabelMix fields are None without LabelMix)."""

    total: torch.Tensor
    terms: dict[str, torch.Tensor]
    fake: torch.Tensor
    logits_fake: torch.Tensor
    logits_real: torch.Tensor
    mask: torch.Tensor | None = None
    mixed: torch.Tensor | None = None
    logits_mixed: torch.Tensor | None = None
    labelmix_unweighted: torch.Tensor | None = None


class OasisObjective(nn.Module):
    """OASIS losses around a generator and a segmentation discriminator.

    Args:
        generator: :class:`OasisGenerator` (or a wrapper with ``forward(semantics, z=None)``).
        discriminator: :class:`OasisDiscriminator` (or a wrapper).
        lambda_labelmix: weight of the LabelMix term (official 10; 5 for Cityscapes).
        labelmix: use LabelMix (official default; ``--no_labelmix`` turns it off).
        class_balancing: weight the real-class CE per class (official default;
            ``--no_balancing_inloss`` turns it off).
        labelmix_mask: ``official`` (in-place construction, class 0 may inherit class 1's bit) or
            ``independent`` (one bit per class); see :func:`labelmix_mask`.
        vgg: optional perceptual loss (official ``--add_vgg_loss``, off by default).
        lambda_vgg: its weight (official 10).
        dontcare: class 0 is "dontcare" (true for all official datasets): weight 0 in balancing.
        d_fake: ``regenerate`` (official: the D step runs G again under no_grad with a fresh z, in
            G's current mode) or ``reuse`` (the G step's fake, detached; one G forward per iteration).
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        lambda_labelmix: float = 10.0,
        labelmix: bool = True,
        class_balancing: bool = True,
        labelmix_mask: str = "official",
        vgg: VGGLoss | None = None,
        lambda_vgg: float = 10.0,
        dontcare: bool = True,
        d_fake: str = "regenerate",
    ):
        super().__init__()
        if labelmix_mask not in LABELMIX_MASKS:
            raise ValueError(f"unknown LabelMix mask {labelmix_mask!r}; choose one of {', '.join(LABELMIX_MASKS)}")
        if d_fake not in D_FAKE_MODES:
            raise ValueError(f"unknown d_fake {d_fake!r}; choose one of {', '.join(D_FAKE_MODES)}")
        self.generator = generator
        self.discriminator = discriminator
        self.lambda_labelmix = lambda_labelmix
        self.labelmix = labelmix
        self.class_balancing = class_balancing
        self.labelmix_mask = labelmix_mask
        self.vgg = vgg
        self.lambda_vgg = lambda_vgg
        self.dontcare = dontcare
        self.d_fake = d_fake

    def weights(self, semantics: torch.Tensor) -> torch.Tensor:
        """Class-balancing weight map (B, 1, H, W)."""
        return class_balancing_weights(semantics, self.class_balancing, self.dontcare)

    def generator_step(self, batch: BatchLike) -> GeneratorStep:
        fake = self.generator(batch.semantics)
        logits_fake = self.discriminator(fake)
        weights = self.weights(batch.semantics)
        terms = {"G_adv": n1_loss(logits_fake, batch.semantics, True, weights)}
        if self.vgg is not None and self.lambda_vgg > 0:
            terms["G_VGG"] = self.lambda_vgg * self.vgg(fake, batch.image)
        total = sum(terms.values())
        return GeneratorStep(total, terms, fake, logits_fake, weights)

    def generator_losses(self, batch: BatchLike) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(total, named terms, carry = detached fake images) for the generator update."""
        step = self.generator_step(batch)
        return step.total, step.terms, step.fake.detach()

    def discriminator_step(self, batch: BatchLike, carry: torch.Tensor | None = None) -> DiscriminatorStep:
        if self.d_fake == "regenerate" or carry is None:
            with torch.no_grad():
                fake = self.generator(batch.semantics)
        else:
            fake = carry.detach()
        logits_fake = self.discriminator(fake)
        logits_real = self.discriminator(batch.image)
        weights = self.weights(batch.semantics)
        terms = {
            "D_fake": n1_loss(logits_fake, batch.semantics, False),
            "D_real": n1_loss(logits_real, batch.semantics, True, weights),
        }
        step = DiscriminatorStep(terms["D_fake"], terms, fake, logits_fake, logits_real)
        if self.labelmix:
            # Drawn after the fake's z, as in the official D step (the RNG order matters for parity).
            step.mask = labelmix_mask(batch.semantics, self.labelmix_mask)
            step.mixed = labelmix_images(step.mask, batch.image, fake)
            step.logits_mixed = self.discriminator(step.mixed)
            step.labelmix_unweighted = labelmix_consistency_loss(step.mask, step.logits_mixed, logits_fake, logits_real)
            terms["D_labelmix"] = self.lambda_labelmix * step.labelmix_unweighted
        step.total = sum(terms.values())
        return step

    def discriminator_losses(self, batch: BatchLike, carry: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total, named terms) for the discriminator update; ``carry`` from :meth:`generator_losses`."""
        step = self.discriminator_step(batch, carry)
        return step.total, step.terms
