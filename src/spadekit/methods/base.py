"""What a method is: networks + an objective + presets, described by one :class:`Method` record.

The method-agnostic layers (trainer, :class:`~spadekit.inference.Pipeline`, the CLI, the studio,
``evaluate``, ``export``, ``bench``, ``convert``) only talk to these records and to the conventions
below, so adding a method means adding files and a registration, never an ``if method == ...``.

Conventions every layout→image generator follows:

* ``generator(semantics, z=None)``: ``semantics`` is the (N, S, H, W) one-hot tensor the official
  generator takes (classes, then don't-care, then the instance-edge map, as the model config says);
  the result is (N, 3, H, W) in [-1, 1].
* ``generator.latent_dim``: the size of the latent vector it samples when ``z`` is None (a VAE's
  ``z``, OASIS's noise), or None for deterministic generators. ``generator.spatial_latent``: True
  when ``z`` may also be a per-pixel map (N, latent_dim, H, W) (per-region noise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import torch
from torch import nn

from spadekit.config import Config
from spadekit.data.labels import to_semantics


@dataclass
class Batch:
    """Model-ready tensors of one (micro-)batch.

    ``semantics``: (N, S, H, W) one-hot; ``image``: (N, 3, H, W) real photos in [-1, 1]; ``extras``:
    whatever else a method's networks take (boxes, retrieved layouts, palettes ...), by name.
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
    return Batch(semantics=semantics, image=raw["image"].to(device, non_blocking=non_blocking))


class Objective(Protocol):
    """G and D losses from a batch; no optimisers, no I/O (built by :attr:`Method.build_objective`).

    ``generator_losses`` returns (total, named terms, carry); the trainer hands ``carry`` (e.g. the
    fake images) to ``discriminator_losses``, or None when the D step must generate its own fakes
    (``train.regenerate_fakes``, the official order). ``sample`` runs ``generator`` on a batch the way
    the objective does (used for previews and batch-norm refreshes; the caller sets modes and grads).
    """

    def generator_losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]: ...

    def discriminator_losses(self, batch: Batch, carry: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]: ...

    def sample(self, batch: Batch, generator: nn.Module) -> torch.Tensor: ...


NetworkBuilder = Callable[[Config, bool], dict[str, nn.Module]]
"""``(config, init) -> {"generator": ..., "discriminator": ..., ["encoder": ...], ...}``."""
ObjectiveBuilder = Callable[[dict[str, nn.Module], Config, "nn.Module | None"], Objective]
"""``(networks as the step runs them, config, VGG loss or None) -> objective``."""


@dataclass(frozen=True)
class Method:
    """A registered method. Only ``name``, the descriptions and the two builders are required."""

    name: str
    title: str
    """Short display name, e.g. ``"SPADE"``."""
    paper: str
    """Citation: authors, venue, year and title."""
    summary: str
    """One line on what it does differently."""
    needs: str
    """What a user needs to train and use it (data, weights)."""
    parity: str
    """What is verified against the official code."""
    build_networks: NetworkBuilder
    build_objective: ObjectiveBuilder
    options: type | None = None
    """Dataclass of the method's own config section (named like the method), or None."""
    prepare_batch: Callable[[dict, Config, torch.device, bool], Batch] = layout_batch
    """Collated dataset items → :class:`Batch`."""
    optimized: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"G": ("generator", "encoder"), "D": ("discriminator",)}
    )
    """Which networks each of the two optimisers updates (absent networks are skipped)."""
    fast_generator: Callable[[nn.Module, Config, bool], "nn.Module | None"] | None = None
    """``(generator, config, channels_last) -> module`` whose ``forward(index, edges, z)`` gives the same
    images as ``generator(one_hot(index, edges), z)`` with less work; None when there is no fast path."""
    validate: Callable[[Config], None] | None = None
    """Extra checks of a config that uses this method (raise ConfigError)."""
    output_size: Callable[[Config], tuple[int, int]] | None = None
    """(width, height) of generated images; default ``config.model.output_size``."""
    at_size: Callable[[Config, tuple[int, int]], Config] | None = None
    """``(config, (width, height)) -> config`` of the same weights at another output size (raise
    ConfigError when it cannot run there); default: ``model.width`` and ``model.aspect_ratio`` replaced.
    For methods whose weights depend on options derived from the size (ASAPNet's tile size)."""
    release_parts: tuple[str, ...] = ("generator", "discriminator", "encoder")
    """Networks a release model holds (those the model has)."""
    capabilities: frozenset[str] = frozenset()
    """Extra entry points: ``"boxes"``, ``"palette"`` (per-region resampling follows from the
    generator's ``spatial_latent``)."""
    toy_preset: str | None = None
    """The preset that trains this method on toy scenes offline (``spadekit train --preset ...``)."""
    tiny_overrides: tuple[str, ...] = ()
    """Dotted overrides that shrink ``toy_preset`` to a seconds-long CPU test (widths, sizes, batch)."""

    def size_of(self, config: Config) -> tuple[int, int]:
        if self.output_size is not None:
            return self.output_size(config)
        return tuple(config.model.output_size)  # type: ignore[return-value]

    def config_at_size(self, config: Config, size: tuple[int, int]) -> Config:
        """The config of the same weights at output size ``size`` (width, height); see :attr:`at_size`."""
        import dataclasses

        if self.at_size is not None:
            return self.at_size(config, size)
        model = dataclasses.replace(config.model, width=int(size[0]), aspect_ratio=size[0] / size[1])
        return dataclasses.replace(config, model=model)
