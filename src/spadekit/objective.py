"""SPADE's objective: G and D losses from a batch. No optimisers, no I/O.

The trainer calls :meth:`SpadeObjective.generator_losses` then
:meth:`SpadeObjective.discriminator_losses` with the fake images of the first call (detached), so
the generator runs once per iteration; the paper's code runs it a second time for the D step
(``train.regenerate_fakes`` does that: the D step then gets no fakes and makes its own).
"""

from __future__ import annotations

import torch
from torch import nn

from spadekit.config import LossConfig
from spadekit.batch import Batch
from spadekit.errors import ConfigError
from spadekit.losses import VGGLoss, feature_matching_loss, gan_loss, kl_loss, mode_seeking_loss, pooled_l1, region_colour_l1
from spadekit.models.encoder import reparameterize


class SpadeObjective(nn.Module):
    """Hinge (or other) GAN + feature matching + VGG perceptual + KL, as in the paper, and
    optional L1 terms towards the real photo (``loss.lambda_l1``, ``loss.lambda_region_colour``) and
    terms on images from prior latents (``loss.lambda_prior_gan``, ``loss.lambda_mode_seeking``), all
    off by default.

    Args:
        generator, discriminator: the networks (possibly DDP-wrapped).
        encoder: the VAE style encoder or None.
        losses: weights and GAN mode.
        vgg: a :class:`VGGLoss`, or None to train without the perceptual term.
        kl_scale: multiplies the KL term.
        global_batch: the run's global batch (``train.batch_size``). The KL is a sum over the batch
            (as the paper's code) while every other term is a mean, and the trainer averages
            gradients over micro-batches and processes; with ``global_batch`` each micro-batch's KL
            is scaled by (global batch) / (micro-batch) = grad_accum × world_size, so the KL keeps its
            weight relative to the rest whatever the batch layout.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        encoder: nn.Module | None,
        losses: LossConfig,
        vgg: VGGLoss | None = None,
        kl_scale: float = 1.0,
        global_batch: int | None = None,
    ):
        super().__init__()
        self.generator = generator
        self.discriminator = discriminator
        self.encoder = encoder
        self.losses = losses
        self.vgg = vgg
        self.kl_scale = kl_scale
        self.global_batch = global_batch
        if losses.lambda_prior_gan > 0 or losses.lambda_mode_seeking > 0:
            raw = getattr(generator, "module", generator)
            if not getattr(raw, "latent_dim", None) or getattr(raw, "spatial_latent", False):
                raise ConfigError("loss.lambda_prior_gan and loss.lambda_mode_seeking need a generator with a "
                                  "vector latent z (model.use_vae=true); this one has none")

    def generator_inputs(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Keyword inputs of the generator besides semantics and z, from ``batch.extras`` (none for
        SPADE; a method whose generator takes more, e.g. CLADE-ICPE's offset map, overrides this)."""
        return {}

    def generate(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(fake, mu, logvar); mu/logvar are None without the encoder."""
        mu = logvar = z = None
        if self.encoder is not None:
            mu, logvar = self.encoder(batch.extras.get("style_image", batch.image))
            z = reparameterize(mu, logvar)
        return self.generator(batch.semantics, z, **self.generator_inputs(batch)), mu, logvar

    def discriminate(self, batch: Batch, fake: torch.Tensor, repeat: int = 1) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
        """D on fake and real pairs in one batch; returns (fake outputs, real outputs) per scale.
        ``fake`` may hold ``repeat`` images per layout (the batch's layouts repeated)."""
        fake_pairs = torch.cat([batch.semantics.repeat(repeat, 1, 1, 1), fake], dim=1)
        real_pairs = torch.cat([batch.semantics, batch.image], dim=1)
        outputs = self.discriminator(torch.cat([fake_pairs, real_pairs], dim=0))
        n = fake.shape[0]
        fake_out = [[f[:n] for f in scale] for scale in outputs]
        real_out = [[f[n:] for f in scale] for scale in outputs]
        return fake_out, real_out

    def generator_losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(total, named terms, fake images) for the generator (and encoder) update."""
        fake, mu, logvar = self.generate(batch)
        terms = self.generator_terms(batch, fake, mu, logvar)
        total = torch.stack([t.float() for t in terms.values()]).sum()
        return total, terms, fake

    def generator_terms(
        self, batch: Batch, fake: torch.Tensor, mu: torch.Tensor | None, logvar: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        """The named generator terms for ``fake`` (GAN, feature matching, VGG, L1 terms, KL when ``mu``
        is given); D is not run when neither of its terms has weight."""
        terms = {}
        matching = self.losses.feature_matching and self.losses.lambda_feat > 0
        if self.losses.lambda_gan > 0 or matching:
            fake_out, real_out = self.discriminate(batch, fake)
            if self.losses.lambda_gan > 0:
                terms["G_GAN"] = gan_loss(fake_out, self.losses.gan_mode, True, for_discriminator=False) * self.losses.lambda_gan
            if matching:
                terms["G_feat"] = feature_matching_loss(fake_out, real_out, self.losses.lambda_feat)
        if self.vgg is not None and self.losses.lambda_vgg > 0:
            terms["G_VGG"] = self.vgg(fake, batch.image) * self.losses.lambda_vgg
        if self.losses.lambda_l1 > 0:
            terms["G_L1"] = pooled_l1(fake, batch.image, self.losses.l1_pool) * self.losses.lambda_l1
        if self.losses.lambda_region_colour > 0:
            terms["G_region_colour"] = (region_colour_l1(fake, batch.image, batch.semantics)
                                        * self.losses.lambda_region_colour)
        if mu is not None:
            share = self.global_batch / mu.shape[0] if self.global_batch else 1.0
            terms["KLD"] = kl_loss(mu, logvar) * (self.losses.lambda_kld * self.kl_scale * share)
        terms.update(self.prior_terms(batch))
        return terms

    def prior_terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Terms on two images per layout from prior latents ``z ~ N(0, I)`` (the first N images from
        the first N latents): a GAN term (``G_prior_GAN``) and the mode-seeking term
        (``G_mode_seeking``); empty when both weights are 0."""
        if self.losses.lambda_prior_gan <= 0 and self.losses.lambda_mode_seeking <= 0:
            return {}
        n = batch.semantics.shape[0]
        z, images = self.prior_images(batch, copies=2)
        semantics = torch.cat([batch.semantics, batch.semantics])
        terms = {}
        if self.losses.lambda_prior_gan > 0:
            predictions = self.discriminator(torch.cat([semantics, images], dim=1))
            terms["G_prior_GAN"] = (gan_loss(predictions, self.losses.gan_mode, True, for_discriminator=False)
                                    * self.losses.lambda_prior_gan)
        if self.losses.lambda_mode_seeking > 0:
            terms["G_mode_seeking"] = mode_seeking_loss(images[:n], images[n:], z[:n], z[n:]) * self.losses.lambda_mode_seeking
        return terms

    def discriminator_losses(self, batch: Batch, fake: torch.Tensor | None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total, named terms) for the discriminator update; ``fake`` is detached here (None: generate
        new fakes without gradients, as the official D step does after the G update)."""
        if fake is None:
            with torch.no_grad():
                fake = self.generate(batch)[0]
        fake = fake.detach()
        if self.losses.lambda_prior_gan <= 0:
            fake_out, real_out = self.discriminate(batch, fake)
            prior_out = None
        else:
            # One D pass over [posterior fakes, prior fakes, reals]: under DDP a second forward of
            # the discriminator in one step would confuse its gradient bookkeeping.
            n = fake.shape[0]
            with torch.no_grad():
                prior = self.prior_images(batch)[1]
            outputs = self.discriminate(batch, torch.cat([fake, prior]), repeat=2)
            fake_out = [[f[:n] for f in scale] for scale in outputs[0]]
            prior_out = [[f[n:] for f in scale] for scale in outputs[0]]
            real_out = outputs[1]
        terms = {
            "D_fake": gan_loss(fake_out, self.losses.gan_mode, False, for_discriminator=True),
            "D_real": gan_loss(real_out, self.losses.gan_mode, True, for_discriminator=True),
        }
        if prior_out is not None:
            # Without this term D never sees prior-latent images, and the generator is free to push
            # them wherever D happens to score high, however unlike photos they become.
            terms["D_prior_fake"] = (gan_loss(prior_out, self.losses.gan_mode, False, for_discriminator=True)
                                     * self.losses.lambda_prior_gan)
        return sum(terms.values()), terms

    def prior_images(self, batch: Batch, copies: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """(z, images): ``copies`` images per layout (the batch's layouts repeated, copy-major) from
        prior latents ``z ~ N(0, I)``."""
        # The unwrapped generator: a second forward through DDP in one step would confuse its
        # bookkeeping, while the shared parameters still get both paths' gradients before they are reduced.
        generator = getattr(self.generator, "module", self.generator)
        z = torch.randn(copies * batch.semantics.shape[0], generator.latent_dim, device=batch.semantics.device)
        inputs = {key: value.repeat(copies, *[1] * (value.dim() - 1)) for key, value in self.generator_inputs(batch).items()}
        return z, generator(batch.semantics.repeat(copies, 1, 1, 1), z, **inputs)

    def sample(self, batch: Batch, generator: nn.Module) -> torch.Tensor:
        """``generator``'s images for ``batch``: the style encoder's mean as ``z`` when there is an
        encoder (no random numbers), else the generator's own default."""
        z = None
        if self.encoder is not None:
            # The raw encoder: previews run on rank 0 alone, and a DDP-wrapped module would wait for the others.
            encoder = getattr(self.encoder, "module", self.encoder)
            was_training = encoder.training
            encoder.eval()
            z, _ = encoder(batch.image)
            encoder.train(was_training)
        return generator(batch.semantics, z, **self.generator_inputs(batch))
