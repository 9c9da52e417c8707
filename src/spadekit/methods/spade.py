"""SPADE (and the pix2pixHD-style baseline generator that its paper compares with) as a method."""

from __future__ import annotations

from torch import nn

import spadekit.convert  # noqa: F401  (registers the official SPADE checkpoint format)
from spadekit.config import Config
from spadekit.methods import register_method
from spadekit.methods.base import Method
from spadekit.models.build import build_networks as build_spade_networks
from spadekit.objective import SpadeObjective


def networks(config: Config, init: bool) -> dict[str, nn.Module]:
    generator, discriminator, encoder = build_spade_networks(config, init)
    parts = {"generator": generator, "discriminator": discriminator}
    if encoder is not None:
        parts["encoder"] = encoder
    return parts


def objective(parts: dict[str, nn.Module], config: Config, vgg: nn.Module | None) -> SpadeObjective:
    return SpadeObjective(
        parts["generator"], parts["discriminator"], parts.get("encoder"), config.loss, vgg, global_batch=config.train.batch_size
    )


def fast_generator(generator: nn.Module, config: Config, channels_last: bool) -> nn.Module | None:
    from spadekit.fast import FastSPADEGenerator
    from spadekit.models.generator import SPADEGenerator

    if not isinstance(generator, SPADEGenerator):
        return None
    m = config.model
    return FastSPADEGenerator.from_generator(
        generator, num_classes=m.label_nc + int(m.contain_dontcare), has_edge=m.use_instance, channels_last=channels_last
    )


SPADE = register_method(
    Method(
        name="spade",
        title="SPADE",
        paper="Park, Liu, Wang, Zhu: Semantic Image Synthesis with Spatially-Adaptive Normalization (CVPR 2019)",
        summary="the label map modulates every normalisation layer; multi-scale patch D, hinge + feature matching "
        "(+ VGG, + VAE style encoder); model.generator=pix2pixhd gives the paper's baseline",
        needs="label maps (+ instance maps); VGG19 ImageNet weights only for the perceptual term (optional)",
        parity="exact: NVIDIA's checkpoints and every recorded tensor of the official code (G, D, E, losses, buffers)",
        build_networks=networks,
        build_objective=objective,
        fast_generator=fast_generator,
        toy_preset="toy",
        tiny_overrides=(
            "model.ngf=4", "model.ndf=8", "model.width=64", "model.spade_hidden=8", "model.use_vae=false",
            "data.crop_size=64", "data.load_size=72", "data.toy_scenes=8", "train.batch_size=2",
        ),
    )
)
