"""What every method's training step works on: a :class:`Batch` of model-ready tensors and the
:class:`Objective` protocol. A module of its own (outside ``spadekit.methods``) so that objectives
can import it without importing every registered method."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from spadekit.config import Config
from spadekit.data.labels import to_semantics


@dataclass
class Batch:
    """Model-ready tensors of one (micro-)batch.

    ``semantics``: (N, S, H, W) one-hot; ``image``: (N, 3, H, W) real photos in [-1, 1]; ``extras``:
    whatever else a method's networks take (boxes, retrieved layouts, palettes ...), by name, and
    ``style_image`` (N, 3, H, W), the photo a style encoder reads when it is not ``image``.
    """

    semantics: torch.Tensor
    image: torch.Tensor
    extras: dict[str, Any] = field(default_factory=dict)

    def to_memory_format(self, memory_format: torch.memory_format) -> "Batch":
        return Batch(
            self.semantics.contiguous(memory_format=memory_format),
            self.image.contiguous(memory_format=memory_format),
            self.extras,
        )


def layout_batch(raw: dict, config: Config, device: torch.device | str, non_blocking: bool = False) -> Batch:
    """Collated dataset items → one-hot semantics (classes, don't-care, instance edges) built on
    ``device`` and images moved there: the input of every layout→image method."""
    model = config.model
    label = raw["label"].to(device, non_blocking=non_blocking)
    instance = raw["instance"].to(device, non_blocking=non_blocking) if model.use_instance else None
    semantics = to_semantics(label, model.label_nc, model.contain_dontcare, instance)
    extras = {}
    if "style_image" in raw:  # data.toy_style_pairs: the photo the style encoder reads
        extras["style_image"] = raw["style_image"].to(device, non_blocking=non_blocking)
    return Batch(semantics=semantics, image=raw["image"].to(device, non_blocking=non_blocking), extras=extras)


class Objective(Protocol):
    """G and D losses from a batch; no optimisers, no I/O (built by :attr:`Method.build_objective`).

    ``generator_losses`` returns (total, named terms, carry); the trainer hands ``carry`` (e.g. the
    fake images) to ``discriminator_losses``, or None when the D step must generate its own fakes
    (``train.regenerate_fakes``, the official order). ``sample`` runs ``generator`` on a batch the way
    the objective does (used for previews and batch-norm refreshes; the caller sets modes and grads).
    Its result is what the preview grids show: images, or (for a generator of layouts) the layouts as
    pictures, (N, 3, H, W) in [-1, 1] at the size of the batch's semantics.

    Optional: ``after_step()``, called once per iteration on the G-step objective after the optimiser
    steps (a progressive schedule advances there). State it changes must live in a network part, so
    that both objectives the trainer builds see it and checkpoints hold it.
    """

    def generator_losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]: ...

    def discriminator_losses(self, batch: Batch, carry: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def sample(self, batch: Batch, generator: nn.Module) -> torch.Tensor: ...
