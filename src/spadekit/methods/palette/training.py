"""Semantic Palette through the generic trainer: the batch it prepares, the objective it runs (the
layout WGAN-GP of :class:`~spadekit.methods.palette.objective.PaletteObjective` at the schedule's
stage), the schedule's advance after each iteration and the palette mixture fitted before the first
step.

Per iteration, as the official layout trainer: a condition per sample (a draw from the fitted
mixture with ``palette.estimated_cond``, the official default, else the real layout's own
proportions), one G step, one critic step on the G step's fake and the real layouts of the batch
(nearest-resized to the stage, softened), then the schedule advances.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spadekit.config import Config
from spadekit.data.labels import to_semantics
from spadekit.methods.base import Batch
from spadekit.methods.palette import end_to_end
from spadekit.methods.palette.layouts import discretize, proportions, soften_layout, to_onehot
from spadekit.methods.palette.objective import PaletteBatch, PaletteObjective
from spadekit.methods.palette.parts import MixtureState, ScheduleState, fit_mixture


def prepare_batch(raw: dict, config: Config, device: torch.device | str, non_blocking: bool = False) -> Batch:
    """Collated items → :class:`Batch` with the one-hot semantics and ``extras["label"]`` (N, H, W) ids."""
    label = raw["label"].to(device, non_blocking=non_blocking)
    semantics = to_semantics(label, config.model.label_nc, False, None)
    return Batch(semantics=semantics, image=raw["image"].to(device, non_blocking=non_blocking), extras={"label": label[:, 0]})


def layouts_at(label: torch.Tensor, num_classes: int, res: int, aspect_ratio: int) -> torch.Tensor:
    """Class-id maps (N, H, W) → one-hot layouts (N, C, res, res·aspect), nearest-resized."""
    size = (res, res * aspect_ratio)
    if tuple(label.shape[-2:]) != size:
        label = F.interpolate(label[:, None].float(), size=size, mode="nearest")[:, 0].long()
    return to_onehot(label, num_classes)


class TrainingObjective(PaletteObjective):
    """:class:`PaletteObjective` fed by the generic trainer's :class:`Batch`.

    Args:
        schedule: the shared :class:`ScheduleState` part (advanced by :meth:`after_step`).
        mixture: the fitted palette mixture (used with ``estimated_cond``).
        estimated_cond: condition on mixture draws (else on each real layout's proportions).
        soft_real, soft_prop, max_sigma, min_sigma: the softening of real layouts.
        excluded: classes the mixture draws always leave out.
        colors: class colours of the preview pictures (None: the default colour map).
        **kwargs: the loss options of :class:`PaletteObjective`.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        schedule: ScheduleState,
        mixture: MixtureState | None,
        estimated_cond: bool = True,
        soft_real: bool = True,
        soft_prop: float = 0.5,
        max_sigma: float = 8.0,
        min_sigma: float = 2.0,
        excluded: tuple[int, ...] = (),
        colors: list[list[int]] | None = None,
        image_stage: nn.Module | None = None,
        photo_critic: nn.Module | None = None,
        lambda_d2: float = 0.01,
        **kwargs: Any,
    ):
        super().__init__(generator, discriminator, schedule, **kwargs)
        self.image_stage = image_stage
        self.photo_critic = photo_critic
        self.lambda_d2 = lambda_d2
        self.mixture = mixture
        self.estimated_cond = estimated_cond
        self.soft_real = soft_real
        self.soft = (soft_prop, max_sigma, min_sigma)
        self.excluded = tuple(excluded)
        self.colors = colors

    # ------------------------------------------------------------------ batches
    def palette_batch(self, batch: Batch) -> PaletteBatch:
        g = self._g
        label = batch.extras["label"]
        onehot = layouts_at(label, g.num_semantics, self.schedule.res, g.aspect_ratio).to(batch.image.dtype)
        real = soften_layout(onehot, g.max_dim, *self.soft) if self.soft_real else onehot
        palette = None
        if g.conditional:
            if self.estimated_cond:
                # The mixture draws from a seed taken from torch's generator, so that a resumed run
                # (whose RNG state the checkpoint restores) draws the same palettes.
                seed = int(torch.randint(2**31 - 1, (1,)))
                palette = self._mixture().sample(label.shape[0], seed=seed).to(real)
            else:
                palette = proportions(onehot)
        return PaletteBatch(palette, real)

    def _mixture(self):
        if self.mixture is None or not self.mixture.fitted:
            raise RuntimeError("palette.estimated_cond needs the fitted mixture (it is fitted before the first step)")
        return self.mixture.sampler(self.excluded)

    # ------------------------------------------------------------------ the trainer's interface
    @property
    def _end_to_end(self) -> bool:
        """Whether the photo terms apply now: end-to-end tuning at the final resolution."""
        return self.image_stage is not None and self.schedule.res == self.schedule.final_res and self.schedule.fade_alpha is None

    def generator_losses(self, batch: Batch):  # type: ignore[override]
        pbatch = self.palette_batch(batch)
        total, terms, fake, final = self.layout_losses(pbatch)
        photos = None
        if self._end_to_end:
            photos = self.image_stage(final.sem_seg)
            terms["d2_gen"] = end_to_end.generator_term(self.photo_critic, photos)
            total = total + self.lambda_d2 * terms["d2_gen"]
        return total, terms, (fake.detach(), pbatch, None if photos is None else photos.detach())

    def discriminator_losses(self, batch: Batch, carry):  # type: ignore[override]
        photos = None
        if carry is None:  # train.regenerate_fakes: new palettes and fakes from the updated generator
            pbatch = self.palette_batch(batch)
            with torch.no_grad():
                final = self.generate(pbatch.palette, None, pbatch.real.shape[0])[-1].sem_seg
                photos = self.image_stage(final) if self._end_to_end else None
            fake = discretize(final, self.discretization, self.temperature)
        else:
            fake, pbatch, photos = carry
        total, terms = super().discriminator_losses(pbatch, fake)
        if photos is not None:
            terms["d2"] = end_to_end.discriminator_term(self.photo_critic, batch.image, photos)
            total = total + terms["d2"]
            terms["d2"] = terms["d2"].detach()
        return total, terms

    def after_step(self) -> None:
        self.schedule.step()

    def sample(self, batch: Batch, generator: nn.Module) -> torch.Tensor:
        """Layouts requested with each batch item's own proportions, as colour pictures at the size of
        the batch's semantics (N, 3, H, W) in [-1, 1] (the training previews)."""
        from spadekit.training.gallery import colorize_labels

        g = getattr(generator, "module", generator)
        label = batch.extras["label"]
        res = self.schedule.res
        palette = proportions(layouts_at(label, g.num_semantics, res, g.aspect_ratio)) if g.conditional else None
        z = torch.randn(label.shape[0], g.latent_dim, device=label.device)
        layout = generator(z, palette, res, self.schedule.fade_alpha)[-1].sem_seg
        ids = F.interpolate(layout.argmax(1, keepdim=True).float(), size=label.shape[-2:], mode="nearest").long()
        return colorize_labels(ids, self.colors, g.num_semantics).to(batch.image.device)


def objective(parts: dict[str, nn.Module], config: Config, vgg: nn.Module | None) -> TrainingObjective:
    o = config.section("palette")
    return TrainingObjective(
        parts["generator"],
        parts["discriminator"],
        parts["schedule"],
        parts.get("mixture"),
        estimated_cond=o.estimated_cond,
        soft_real=o.soft_real,
        soft_prop=o.soft_prop,
        max_sigma=o.max_sigma,
        min_sigma=o.min_sigma,
        excluded=tuple(o.excluded_classes),
        colors=config.data.colors,
        image_stage=image_stage_for_training(parts, config) if o.end_to_end else None,
        photo_critic=parts.get("image_discriminator"),
        lambda_d2=o.lambda_d2,
        discretization=o.discretization,
        temperature=o.temperature,
        intermediate=o.intermediate,
        entropy=o.entropy,
        spread=o.spread,
        recover=o.recover,
        ova_classes=o.ova_classes,
        lambda_ova=o.lambda_ova,
        lambda_gp=o.lambda_gp,
    )


def image_stage_for_training(parts: dict[str, nn.Module], config: Config) -> end_to_end.ImageStage:
    """The trained image generator behind the layout → semantics conversion of its model."""
    from spadekit.methods.palette.method import image_model_config

    m = image_model_config(config).model
    width, height = m.output_size
    return end_to_end.ImageStage(parts["image_generator"], (height, width), m.contain_dontcare, m.use_instance)


def dataset_proportions(dataset, num_classes: int, limit: int | None = None) -> np.ndarray:
    """(N, C) class proportions of the label maps of the first ``limit`` items (all when None)."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    rows = []
    for i in range(count):
        label = dataset[i]["label"].reshape(-1).long()
        rows.append(torch.bincount(label, minlength=num_classes)[:num_classes].double().numpy())
    counts = np.stack(rows)
    return counts / counts.sum(axis=1, keepdims=True)


def fit_palettes(networks: dict[str, nn.Module], dataset, config: Config, log: Callable[[str], None]) -> None:
    """The ``prepare_training`` hook: fit the palette mixture to the training layouts (AIC picks
    the component count), as the official estimator script does before layout training."""
    o = config.section("palette")
    if not o.conditional:
        return
    table = dataset_proportions(dataset, config.model.label_nc, o.fit_images)
    sampler = fit_mixture(table, o.max_components, o.min_components, seed=config.train.seed, projection=o.projection)
    networks["mixture"].store(sampler)
    log(f"palette mixture: {sampler.n_components} Gaussian component(s) chosen by AIC over {len(table)} training layouts")
