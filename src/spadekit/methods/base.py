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
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from spadekit.batch import Batch, Objective, layout_batch
from spadekit.config import Config

__all__ = ["Batch", "Method", "Objective", "layout_batch"]


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
    training_size: Callable[[Config], tuple[int, int]] | None = None
    """(width, height) the training images must have; default :attr:`output_size` (a method whose
    generated output is not what the data feeds, e.g. Semantic Palette's small layouts, says so)."""
    at_size: Callable[[Config, tuple[int, int]], Config] | None = None
    """``(config, (width, height)) -> config`` of the same weights at another output size (raise
    ConfigError when it cannot run there); default: ``model.width`` and ``model.aspect_ratio`` replaced.
    For methods whose weights depend on options derived from the size (ASAPNet's tile size)."""
    release_parts: tuple[str, ...] = ("generator", "discriminator", "encoder")
    """Networks a release model holds (those the model has)."""
    capabilities: frozenset[str] = frozenset()
    """Extra entry points: ``"boxes"``, ``"palette"`` (per-region resampling follows from the
    generator's ``spatial_latent``)."""
    open_data: Callable[[Config, str, bool, dict[str, Path]], Dataset] | None = None
    """``(config, split, train, assets) -> dataset`` of the items :attr:`prepare_batch` reads, for
    methods whose items carry more than label/instance/photo (training, previews, ``evaluate``);
    ``assets`` are a release model's files (:attr:`release_assets`), empty when training. Default:
    :func:`spadekit.data.open_dataset` on ``config.data``."""
    release_assets: Callable[[Config, Dataset], dict[str, Any]] | None = None
    """``(config, training dataset) -> {file name: path or writer}``: data files a release model
    carries beside its networks (a file to copy, or a writer called with the target path), e.g.
    BachGAN's memory bank. :attr:`SpadeModel.assets <spadekit.release.SpadeModel.assets>` holds them."""
    label_input: Callable[[Any], nn.Module] | None = None
    """For generators that do not take one-hot label maps: ``(model) -> module`` whose
    ``forward(index, edges, z)`` turns (N, H, W) label maps into images; Pipeline uses it in place of
    the one-hot input (BachGAN boxes the objects of the map and retrieves a background)."""
    box_input: Callable[[Any], Any] | None = None
    """With the ``"boxes"`` capability: ``(model) -> conditioner`` whose ``plan(boxes, num_samples=,
    **options)`` returns an object with ``semantics`` (K, S, H, W), the generator input of each
    sample, and ``result(images)``, the method's answer (images plus what it retrieved).
    :meth:`spadekit.inference.Pipeline.from_boxes` runs it."""
    toy_preset: str | None = None
    """The preset that trains this method on toy scenes offline (``spadekit train --preset ...``)."""
    tiny_overrides: tuple[str, ...] = ()
    """Dotted overrides that shrink ``toy_preset`` to a seconds-long CPU test (widths, sizes, batch)."""
    prepare_training: Callable[[dict[str, nn.Module], Any, Config, Callable[[str], None]], None] | None = None
    """``(networks, training dataset, config, log)``: fits parts that come from the training data (a
    palette mixture ...) before the first step of a fresh run; checkpoints carry them afterwards."""
    image_stage: Callable[[Any], Any] | None = None
    """For models whose generator does not turn label maps into photos (proportions → layout):
    ``(model) -> SpadeModel``, the layout→image model that turns their layouts into photos.
    :class:`~spadekit.inference.Pipeline` (hence ``synthesize`` and the studio) runs that model."""
    evaluation: Callable[[Any, Config], Any] | None = None
    """``(model, dataset config) -> hook`` for models with their own measures (see
    :class:`spadekit.evaluation.evaluate.EvaluationHook`): it turns each validation batch into the
    layouts its image stage synthesizes and adds its metrics to ``spadekit evaluate``."""

    def size_of(self, config: Config) -> tuple[int, int]:
        if self.output_size is not None:
            return self.output_size(config)
        return tuple(config.model.output_size)  # type: ignore[return-value]

    def training_size_of(self, config: Config) -> tuple[int, int]:
        if self.training_size is not None:
            return self.training_size(config)
        return self.size_of(config)

    def config_at_size(self, config: Config, size: tuple[int, int]) -> Config:
        """The config of the same weights at output size ``size`` (width, height); see :attr:`at_size`."""
        import dataclasses

        if self.at_size is not None:
            return self.at_size(config, size)
        model = dataclasses.replace(config.model, width=int(size[0]), aspect_ratio=size[0] / size[1])
        return dataclasses.replace(config, model=model)
