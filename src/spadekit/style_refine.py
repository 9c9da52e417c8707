"""Style refinement: fit a style photo's latent to that photo through the frozen generator.

The style encoder reads a photo in one pass, and its latent carries only part of the photo's look
(the bundled toy model's encoder gives back grass colours at Pearson r 0.70). Refinement starts
from the encoder's mean and takes a few Adam steps on the latent alone, so that the generator,
drawing the style photo's *own* label map, reproduces that photo: an L1 term on
``pool``×``pool``-pooled images (colour and light, not texture) plus ``region_weight`` times the L1
distance of every class region's mean colour. This is encoder-initialised GAN inversion
(Zhu et al., "In-Domain GAN Inversion", ECCV 2020) on the latent of a VAE generator. The weights
never change and no other layout is looked at: the refined latent is then drawn on any label map,
with the encoder's posterior spread around it so seeds still vary the result.

It needs the style photo's label map, costs ``steps`` forward and backward passes of the generator
(the bundled toy model: about 5 s for 100 steps at 128² on a 2-core CPU) and is deterministic for fixed inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from spadekit.errors import ConfigError
from spadekit.losses import pooled_l1, region_colour_l1

MAX_REFINE_STEPS = 10_000
"""Most refinement steps one request may ask for (a bound on the work, not a useful setting)."""

DEFAULT_REFINE_STEPS = 100
"""Steps the benchmark and the documentation use: on the bundled toy model, 50 give most of the gain."""


@dataclass(frozen=True)
class StyleRefinement:
    """How a style latent is refined (see the module docstring)."""

    steps: int = DEFAULT_REFINE_STEPS
    lr: float = 0.05
    region_weight: float = 5.0
    pool: int = 8


def check_refine_steps(value: int | str, source: str = "refine_steps") -> int:
    """Refinement steps as an int in ``0 .. MAX_REFINE_STEPS`` (0 = the encoder's latent as it is),
    else ConfigError. Shared by the CLI and the studio's HTTP API."""
    try:
        steps = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{source}: {str(value)[:40]!r} is not an integer") from None
    if not 0 <= steps <= MAX_REFINE_STEPS:
        raise ConfigError(f"{source}: {steps} is out of range: refinement steps lie in 0..{MAX_REFINE_STEPS}")
    return steps


@dataclass(frozen=True)
class StyleCode:
    """A style photo's latent distribution, (1, z_dim) each: what the encoder (or a refinement)
    made of it. A :class:`~spadekit.inference.Pipeline` takes one in place of the photo, so a style
    is encoded or refined once and drawn on many label maps."""

    mu: torch.Tensor
    logvar: torch.Tensor


def check_refine_request(
    steps: int,
    has_style: bool,
    has_style_labels: bool,
    steps_name: str = "refine_steps",
    style_name: str = "style",
    labels_name: str = "style_labels",
) -> None:
    """The rules that tie refinement to its inputs, named as the caller calls them (function
    arguments, CLI flags or form fields): refining needs a style photo and its label map, and a
    style label map means nothing without refinement. ConfigError otherwise."""
    if steps > 0 and not has_style:
        raise ConfigError(f"{steps_name}: refining a style needs a style photo ({style_name})")
    if steps > 0 and not has_style_labels:
        raise ConfigError(f"{steps_name}: refining a style needs the style photo's label map ({labels_name})")
    if steps == 0 and has_style_labels:
        raise ConfigError(f"{labels_name}: the style photo's label map is only used to refine its latent; "
                          f"give {steps_name} > 0 too (e.g. {DEFAULT_REFINE_STEPS})")


def refine_latent(
    generator: torch.nn.Module,
    index: torch.Tensor,
    edges: torch.Tensor | None,
    photo: torch.Tensor,
    start: torch.Tensor,
    num_classes: int,
    settings: StyleRefinement = StyleRefinement(),
) -> tuple[torch.Tensor, list[float]]:
    """Refine ``start`` so that ``generator(index, edges, z)`` reproduces ``photo``.

    Args:
        generator: ``(index, edges, z) → (N, 3, H, W)`` images in [-1, 1]; only ``z`` is optimised
            and the generator's parameters get no gradient.
        index: (1, H, W) class indices of the style photo's label map at the model size.
        edges: (1, 1, H, W) instance edges, or None.
        photo: (1, 3, H, W) the style photo in [-1, 1] at the model size.
        start: (1, latent_dim) the encoder's mean.
        num_classes: channels of the one-hot label input (don't-care included); its regions are
            the ones whose mean colours are matched.
    Returns:
        The refined latent (detached, like ``start``) and the loss before each step and after the
        last (``steps + 1`` values).
    """
    with torch.inference_mode(False), torch.enable_grad():
        # Clones: tensors made under torch.inference_mode cannot take part in autograd.
        index, photo = index.clone(), photo.clone()
        edges = edges.clone() if edges is not None else None
        regions = F.one_hot(index, num_classes).permute(0, 3, 1, 2).to(photo.dtype)
        z = start.detach().clone().requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=settings.lr)

        def loss_of(latent: torch.Tensor) -> torch.Tensor:
            image = generator(index, edges, latent)
            return pooled_l1(image, photo, settings.pool) + settings.region_weight * region_colour_l1(image, photo, regions)

        trace: list[float] = []
        for _ in range(settings.steps):
            loss = loss_of(z)
            trace.append(float(loss.detach()))
            # Gradients for z alone: the generator's parameters are left untouched (no .grad).
            (z.grad,) = torch.autograd.grad(loss, [z])
            optimizer.step()
        with torch.no_grad():
            trace.append(float(loss_of(z)))
    return z.detach(), trace
