"""The layout GAN's objective: generator and critic losses for one batch at the schedule's stage.
No optimisers, no I/O.

The trainer calls :meth:`PaletteObjective.generator_losses`, steps G, then
:meth:`PaletteObjective.discriminator_losses` with the ``carry`` of the first call (the detached,
discretised final layout: the official trainer also reuses the G step's fake for the critic), steps D,
then :meth:`PaletteObjective.step_schedule`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.methods.palette.layout_discriminator import LayoutDiscriminator
from spadekit.methods.palette.activation import LayoutStep
from spadekit.methods.palette.layout_generator import LayoutGenerator
from spadekit.methods.palette.layouts import DISCRETIZATIONS, discretize, soften_layout, to_onehot
from spadekit.methods.palette.losses import (
    entropy_loss,
    gradient_penalty,
    hard_recover_loss,
    one_versus_all_loss,
    recover_loss,
    spread_loss,
    wgan_critic_loss,
    wgan_generator_loss,
)
from spadekit.methods.palette.schedule import ProgressiveSchedule


@dataclass
class PaletteBatch:
    """One training batch.

    ``palette``: requested class proportions (N, C) (a mixture sample in the official training), or
    None for an unconditional generator. ``real``: softened real layouts (N, C, H, W) at the stage's
    resolution (see :func:`real_layouts`). ``z``: the generator's noise (N, latent_dim), drawn when None.
    """

    palette: torch.Tensor | None
    real: torch.Tensor
    z: torch.Tensor | None = None


def real_layouts(
    label: torch.Tensor,
    num_semantics: int,
    res: int,
    aspect_ratio: int,
    max_dim: int,
    soft: bool = True,
    soft_prop: float = 0.5,
) -> torch.Tensor:
    """Class-id maps (N, H, W) → the real layouts the critic sees at resolution ``res``: nearest
    resize to (res, res·aspect), one-hot, then (``soft``) :func:`soften_layout`. (N, C, res, res·aspect)."""
    size = (res, res * aspect_ratio)
    if tuple(label.shape[-2:]) != size:
        label = F.interpolate(label[:, None].float(), size=size, mode="nearest")[:, 0]
    onehot = to_onehot(label.long(), num_semantics)
    return soften_layout(onehot, max_dim, soft_prop) if soft else onehot


class PaletteObjective(nn.Module):
    """WGAN-GP on layouts plus the generator's per-layout terms, as the official layout trainer.

    Generator: ``-mean D(final)`` + Σ over the layouts (every joint's and the final one with
    ``intermediate``, else the final one only) of ``entropy`` + ``spread`` (+ ``recover`` KL)
    (+ ``lambda_ova`` · one-versus-all). As in the official code the entropy term only counts for a
    conditional generator, and spread needs the assisted activation. Critic:
    ``mean D(fake) - mean D(real) + lambda_gp · GP``.

    Args:
        generator, discriminator: the layout networks.
        schedule: the progressive schedule (its ``res`` and ``fade_alpha`` pick the stage).
        discretization, temperature: how the final layout is discretised before the critic (the
            released training uses ``none``).
        intermediate, entropy, spread, recover: the ``inter``, ``entropy``, ``spread`` and
            ``sem_recover`` flags of the official ``cond_mode``.
        ova_classes, lambda_ova: classes of the one-versus-all term and its weight.
        lambda_gp: weight of the gradient penalty (10).
    """

    def __init__(
        self,
        generator: LayoutGenerator,
        discriminator: LayoutDiscriminator,
        schedule: ProgressiveSchedule,
        discretization: str = "none",
        temperature: float = 1.0,
        intermediate: bool = True,
        entropy: bool = True,
        spread: bool = True,
        recover: bool = False,
        ova_classes: Sequence[int] = (),
        lambda_ova: float = 1.0,
        lambda_gp: float = 10.0,
    ):
        super().__init__()
        if discretization not in DISCRETIZATIONS:
            raise ValueError(f"unknown discretization {discretization!r}; choose one of {', '.join(DISCRETIZATIONS)}")
        self.generator = generator
        self.discriminator = discriminator
        self.schedule = schedule
        self.discretization = discretization
        self.temperature = temperature
        self.intermediate = intermediate
        self.entropy = entropy
        self.spread = spread
        self.recover = recover
        self.ova_classes = list(ova_classes)
        self.lambda_ova = lambda_ova
        self.lambda_gp = lambda_gp

    @property
    def _assisted(self) -> bool:
        return self._g.activation != "softmax"

    @property
    def _g(self) -> LayoutGenerator:
        return getattr(self.generator, "module", self.generator)

    def _critic(self, layout: torch.Tensor, palette: torch.Tensor | None) -> torch.Tensor:
        return self.discriminator(layout, palette, self.schedule.fade_alpha)

    @property
    def _critic_module(self) -> LayoutDiscriminator:
        return getattr(self.discriminator, "module", self.discriminator)

    def generate(self, palette: torch.Tensor | None, z: torch.Tensor | None, batch_size: int) -> list[LayoutStep]:
        """Every layout of the generator at the schedule's stage."""
        if z is None:
            device = next(self._g.parameters()).device
            z = torch.randn(batch_size, self._g.latent_dim, device=device)
        return self.generator(z, palette, self.schedule.res, self.schedule.fade_alpha)

    def generator_losses(self, batch: PaletteBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        """(total, terms, carry): terms ``gen`` and per layout n ``entropy_n``, ``spread_n``,
        ``recover_n``, ``true_recover_n``, ``ova_n`` (those that apply; logged even when not in the
        total, as the official logger). ``carry`` is the detached discretised final layout."""
        total, terms, hard, _ = self.layout_losses(batch)
        return total, terms, hard.detach()

    def layout_losses(self, batch: PaletteBatch) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor, LayoutStep]:
        """:meth:`generator_losses` with the discretised final layout and the final
        :class:`LayoutStep` still attached to the graph (for terms on the layout's image)."""
        palette = batch.palette
        steps = self.generate(palette, batch.z, batch.real.shape[0])
        if not self.intermediate:
            steps = steps[-1:]
        # Every layout is discretised (as the official code does) so that gumbel noise is drawn in the
        # same order; only the final one reaches the critic.
        hard = [discretize(step.sem_seg, self.discretization, self.temperature) for step in steps]
        critic_palette = palette if self._critic_module.palette_input else None
        gen = wgan_generator_loss(self._critic(hard[-1], critic_palette))
        terms: dict[str, torch.Tensor] = {"gen": gen}
        total = gen
        conditional = self._g.conditional
        for n, step in enumerate(steps):
            entropy = entropy_loss(step.sem_seg)
            terms[f"entropy_{n}"] = entropy
            if not conditional:
                continue
            extra = gen.new_zeros(())
            terms[f"recover_{n}"] = recover_loss(step.sem_seg, palette)
            terms[f"true_recover_{n}"] = hard_recover_loss(step.sem_seg, palette)
            if self.recover:
                extra = extra + terms[f"recover_{n}"]
            if self._assisted:
                terms[f"spread_{n}"] = spread_loss(step.sem_mask)
                if self.ova_classes:
                    terms[f"ova_{n}"] = one_versus_all_loss(step.sem_mask, self.ova_classes)
                    extra = extra + self.lambda_ova * terms[f"ova_{n}"]
                if self.spread:
                    extra = extra + terms[f"spread_{n}"]
            if self.entropy:
                extra = extra + entropy
            total = total + extra
        return total, terms, hard[-1], steps[-1]

    def discriminator_losses(self, batch: PaletteBatch, carry: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total, terms ``wgan``, ``gp``, ``real``, ``fake`` (the last two: mean scores))."""
        real, fake = batch.real, carry.detach()
        real_palette = fake_palette = None
        if self._critic_module.palette_input:
            # The official conditional critic sees the real layout's own proportions with it.
            real_palette, fake_palette = real.mean(dim=(2, 3)), batch.palette
        real_scores = self._critic(real, real_palette)
        fake_scores = self._critic(fake, fake_palette)
        gp, _ = gradient_penalty(lambda x: self._critic(x, real_palette), real, fake)
        wgan = wgan_critic_loss(real_scores, fake_scores)
        total = wgan + self.lambda_gp * gp
        terms = {"wgan": wgan.detach(), "gp": gp.detach(), "real": real_scores.mean().detach(), "fake": fake_scores.mean().detach()}
        return total, terms

    def step_schedule(self) -> str | None:
        """Advance the schedule after an iteration (see :meth:`ProgressiveSchedule.step`)."""
        return self.schedule.step()
