"""The conditional-GAN objective: G and D losses from a batch. No optimisers, no I/O.

The trainer calls :meth:`SpadeObjective.generator_losses` then
:meth:`SpadeObjective.discriminator_losses` with the fake images of the first call (detached), so
the generator runs once per iteration; the paper's code runs it a second time for the D step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from spadekit.config import LossConfig, ModelConfig
from spadekit.data.labels import to_semantics
from spadekit.losses import VGGLoss, feature_matching_loss, gan_loss, kl_loss
from spadekit.models.encoder import reparameterize


@dataclass
class Batch:
    """Model-ready tensors: one-hot semantics (N, S, H, W) and real images (N, 3, H, W) in [-1, 1]."""

    semantics: torch.Tensor
    image: torch.Tensor


def prepare_batch(batch: dict, model: ModelConfig, device: torch.device | str, non_blocking: bool = False) -> Batch:
    """Dataset items (collated) → one-hot semantics built on ``device``, images moved there."""
    label = batch["label"].to(device, non_blocking=non_blocking)
    instance = batch["instance"].to(device, non_blocking=non_blocking) if model.use_instance else None
    semantics = to_semantics(label, model.label_nc, model.contain_dontcare, instance)
    return Batch(semantics=semantics, image=batch["image"].to(device, non_blocking=non_blocking))


class SpadeObjective(nn.Module):
    """Hinge (or other) GAN + feature matching + VGG perceptual + KL, as in the paper.

    Args:
        generator, discriminator: the networks (possibly DDP-wrapped).
        encoder: the VAE style encoder or None.
        losses: weights and GAN mode.
        vgg: a :class:`VGGLoss`, or None to train without the perceptual term.
        kl_scale: multiplies the KL term. The KL is a sum over the batch (as the paper's code) while
            every other term is a mean, and the trainer averages gradients over micro-batches and
            processes; pass (global batch) / (this micro-batch) = grad_accum × world_size so the KL
            keeps its weight relative to the rest whatever the batch layout.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        encoder: nn.Module | None,
        losses: LossConfig,
        vgg: VGGLoss | None = None,
        kl_scale: float = 1.0,
    ):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.encoder = encoder
        self.losses = losses
        self.vgg = vgg
        self.kl_scale = kl_scale

    def generate(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(fake, mu, logvar); mu/logvar are None without the encoder."""
        mu = logvar = z = None
        if self.encoder is not None:
            mu, logvar = self.encoder(batch.image)
            z = reparameterize(mu, logvar)
        return self.generator(batch.semantics, z), mu, logvar

    def discriminate(self, batch: Batch, fake: torch.Tensor) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
        """D on fake and real pairs in one batch; returns (fake outputs, real outputs) per scale."""
        fake_pairs = torch.cat([batch.semantics, fake], dim=1)
        real_pairs = torch.cat([batch.semantics, batch.image], dim=1)
        outputs = self.discriminator(torch.cat([fake_pairs, real_pairs], dim=0))
        n = fake.shape[0]
        fake_out = [[f[:n] for f in scale] for scale in outputs]
        real_out = [[f[n:] for f in scale] for scale in outputs]
        return fake_out, real_out

    def generator_losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(total, named terms, fake images) for the generator (and encoder) update."""
        fake, mu, logvar = self.generate(batch)
        fake_out, real_out = self.discriminate(batch, fake)
        terms = {"G_GAN": gan_loss(fake_out, self.losses.gan_mode, True, for_discriminator=False)}
        if self.losses.feature_matching and self.losses.lambda_feat > 0:
            terms["G_feat"] = feature_matching_loss(fake_out, real_out, self.losses.lambda_feat)
        if self.vgg is not None and self.losses.lambda_vgg > 0:
            terms["G_VGG"] = self.vgg(fake, batch.image) * self.losses.lambda_vgg
        if mu is not None:
            terms["KLD"] = kl_loss(mu, logvar) * (self.losses.lambda_kld * self.kl_scale)
        total = torch.stack([t.float() for t in terms.values()]).sum()
        return total, terms, fake

    def discriminator_losses(self, batch: Batch, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total, named terms) for the discriminator update; ``fake`` is detached here."""
        fake_out, real_out = self.discriminate(batch, fake.detach())
        terms = {
            "D_fake": gan_loss(fake_out, self.losses.gan_mode, False, for_discriminator=True),
            "D_real": gan_loss(real_out, self.losses.gan_mode, True, for_discriminator=True),
        }
        return terms["D_fake"] + terms["D_real"], terms


def optimizer_settings(lr: float, ttur: bool, beta1: float | None = None, beta2: float | None = None) -> dict[str, tuple]:
    """Adam settings of the paper: TTUR gives G lr/2 and D lr*2 with betas (0, 0.9); without it
    both use lr with betas (0.5, 0.999). Explicit betas override."""
    if ttur:
        g_lr, d_lr, betas = lr / 2, lr * 2, (0.0, 0.9)
    else:
        g_lr, d_lr, betas = lr, lr, (0.5, 0.999)
    betas = (betas[0] if beta1 is None else beta1, betas[1] if beta2 is None else beta2)
    return {"generator": (g_lr, betas), "discriminator": (d_lr, betas)}


def decayed_lr(base_lr: float, epoch: int, epochs: int, epochs_decay: int) -> float:
    """Constant for ``epochs`` epochs, then linear decay to 0 over ``epochs_decay`` epochs."""
    if epochs_decay <= 0 or epoch < epochs:
        return base_lr
    done = min(epoch - epochs + 1, epochs_decay)
    return base_lr * (1 - done / epochs_decay)
