"""OASIS as a registered method: its config section, networks, objective, checks and checkpoint format.

The shared sections carry what OASIS shares with SPADE: ``model.label_nc`` is N (OASIS's class 0 is
"unknown" on the paper's datasets), ``model.ngf`` is ``channels_G``, ``model.spade_kernel`` /
``spade_hidden`` / ``norm_G`` the SPADE layers, ``loss.lambda_vgg`` the optional perceptual term
(off by default). The ``oasis:`` section holds the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from torch import nn

from spadekit.config import Config, config_from_dict, load_config
from spadekit.conversion import CheckpointFormat, register_format
from spadekit.errors import CheckpointError, ConfigError
from spadekit.methods import register_method
from spadekit.methods.base import Batch, Method
from spadekit.methods.oasis.convert import find_official_files, load_official_oasis, write_official_oasis
from spadekit.methods.oasis.discriminator import DEFAULT_LAST_WIDTH, DEFAULT_WIDTHS, OasisDiscriminator
from spadekit.methods.oasis.generator import OasisGenerator
from spadekit.methods.oasis.objective import OasisObjective
from spadekit.models.init import init_weights
from spadekit.models.registry import register

MULTIPLE = 64  # the discriminator halves the size six times and concatenates skips


@dataclass
class OasisOptions:
    """The ``oasis:`` config section (OASIS's options that SPADE does not have)."""

    noise_3d: bool = True
    """Concatenate 3D noise to the labels (official default; ``--no_3dnoise`` turns it off)."""
    z_dim: int = 64
    """Size of the noise vector."""
    lambda_labelmix: float = 10.0
    """Weight of the LabelMix consistency term (official 10; 5 for Cityscapes)."""
    labelmix: bool = True
    """Use LabelMix regularisation of the discriminator."""
    labelmix_mask: Literal["official", "independent"] = "official"
    """``official``: the official in-place construction, where class 0 inherits class 1's bit when
    its own bit is 1 (a quirk, kept for parity); ``independent``: one fair bit per class."""
    class_balancing: bool = True
    """Weight the real-class cross-entropy per class by inverse frequency in the batch."""
    class0_is_unknown: bool = True
    """Class 0 is the "unknown"/don't-care class (all paper datasets): weight 0 in the balancing.
    The toy preset turns it off (its class 0 is sky)."""
    d_widths: list[int] = field(default_factory=lambda: list(DEFAULT_WIDTHS[1:]))
    """Discriminator encoder widths, six levels (official 128, 128, 256, 256, 512, 512)."""
    d_last_width: int = DEFAULT_LAST_WIDTH
    """Width of the discriminator's last decoder block (official 64)."""

    def __post_init__(self) -> None:
        if self.z_dim < 1:
            raise ConfigError("oasis.z_dim must be >= 1")
        if len(self.d_widths) != 6 or min(self.d_widths) < 1 or self.d_last_width < 1:
            raise ConfigError("oasis.d_widths must be six positive widths and oasis.d_last_width positive")
        if self.lambda_labelmix < 0:
            raise ConfigError("oasis.lambda_labelmix must be >= 0")


@register("generator", "oasis", "OASIS generator: SPADE blocks conditioned on labels + 3D noise (Sushko et al. 2021)")
def _generator(config: Config) -> nn.Module:
    m, o = config.model, config.section("oasis")
    return OasisGenerator(
        semantic_nc=m.label_nc,
        channels=m.ngf,
        z_dim=o.z_dim,
        noise=o.noise_3d,
        norm=m.norm_G,
        spade_kernel=m.spade_kernel,
        spade_hidden=m.spade_hidden,
    )


@register("discriminator", "oasis-unet", "OASIS U-Net segmentation discriminator with N+1 outputs (N classes + fake)")
def _discriminator(config: Config) -> nn.Module:
    o = config.section("oasis")
    return OasisDiscriminator(config.model.label_nc, (3, *o.d_widths), o.d_last_width)


def networks(config: Config, init: bool) -> dict[str, nn.Module]:
    generator, discriminator = _generator(config), _discriminator(config)
    if init:  # the official init: xavier-normal gain 0.02 on every conv weight (weight_orig under SN), zero biases
        init_weights(generator)
        init_weights(discriminator)
    return {"generator": generator, "discriminator": discriminator}


class Objective(OasisObjective):
    """:class:`OasisObjective` with the trainer's sampling hook."""

    def sample(self, batch: Batch, generator: nn.Module):
        return generator(batch.semantics)


def objective(parts: dict[str, nn.Module], config: Config, vgg: nn.Module | None) -> Objective:
    o = config.section("oasis")
    return Objective(
        parts["generator"],
        parts["discriminator"],
        lambda_labelmix=o.lambda_labelmix,
        labelmix=o.labelmix and o.lambda_labelmix > 0,
        class_balancing=o.class_balancing,
        labelmix_mask=o.labelmix_mask,
        vgg=vgg,
        lambda_vgg=config.loss.lambda_vgg,
        dontcare=o.class0_is_unknown,
        # The trainer passes no fakes when train.regenerate_fakes asks for the official order.
        d_fake="reuse",
    )


def validate(config: Config) -> None:
    m = config.model
    if m.generator != "oasis" or m.discriminator != "oasis-unet":
        raise ConfigError("method oasis uses model.generator=oasis and model.discriminator=oasis-unet")
    if m.use_instance or m.contain_dontcare or m.use_vae:
        raise ConfigError(
            "OASIS takes one-hot labels only: set model.use_instance=false, model.contain_dontcare=false (its class 0 "
            "is the unknown class; data.label_offset=1 maps COCO's 255 to it) and model.use_vae=false"
        )
    if m.upsampling != "normal":
        raise ConfigError("OASIS upsamples five times: model.upsampling must be normal")
    width, height = m.output_size
    if width % MULTIPLE or height % MULTIPLE:
        raise ConfigError(
            f"OASIS needs an output size whose sides are multiples of {MULTIPLE} (its discriminator halves it six "
            f"times); model.width={m.width} and model.aspect_ratio={m.aspect_ratio} give {width}x{height}"
        )


# ----------------------------------------------------------------------------- official checkpoints

PRESET_BY_CLASSES = {151: "oasis-ade20k", 35: "oasis-cityscapes", 183: "oasis-coco"}


def read_official(directory: Path, preset: str | None, overrides: list[str]):
    """An official OASIS checkpoint folder → a release model (the EMA generator when present)."""
    from spadekit.release import SpadeModel, load_state_into

    official = load_official_oasis(directory)
    g = official.generator
    preset = preset or PRESET_BY_CLASSES.get(g.semantic_nc, "oasis-custom")
    base = load_config(preset, overrides)
    if base.method != "oasis":
        raise CheckpointError(f"{directory}: preset {preset!r} is not an OASIS preset (`spadekit list`)")
    values = base.to_dict()
    values["model"].update(
        label_nc=g.semantic_nc, ngf=g.channels, spade_kernel=g.spade_kernel, spade_hidden=g.spade_hidden, norm_G=g.norm
    )
    values["oasis"].update(noise_3d=g.noise, z_dim=g.latent_dim or base.section("oasis").z_dim)
    if official.discriminator is not None:
        d = official.discriminator
        values["oasis"].update(d_widths=list(d.widths[1:]), d_last_width=d.last_width)
    try:
        config = config_from_dict(values)
    except ConfigError as exc:
        raise CheckpointError(f"{directory}: {exc}") from None
    # Rebuild through the method's own builders, so the release loads back exactly like this.
    parts = networks(config, init=False)
    load_state_into(parts["generator"], g.state_dict(), official.files.get("EMA", official.files.get("G", directory)))
    kept = {"generator": parts["generator"]}
    if official.discriminator is not None:
        load_state_into(parts["discriminator"], official.discriminator.state_dict(), official.files["D"])
        kept["discriminator"] = parts["discriminator"]
    provenance = {"converted_from": "official OASIS checkpoint", "generator": "ema" if "EMA" in official.files else "raw"}
    return SpadeModel.from_parts(config, kept, provenance).eval()


def write_official(model, directory: Path) -> list[Path]:
    """A release model → ``latest_EMA.pth`` (the release generator; what official test.py loads),
    ``latest_G.pth`` (the same weights, for ``--no_EMA``) and ``latest_D.pth`` when present."""
    if model.config.method != "oasis":
        raise ConfigError(f"to-oasis needs an OASIS model (this one is {model.config.method})")
    return write_official_oasis(directory, generator=model.generator, discriminator=model.discriminator, ema=model.generator)


def detect_official(directory: Path) -> bool:
    try:
        find_official_files(directory)
    except CheckpointError:
        return False
    return True


register_format(
    CheckpointFormat(
        name="oasis",
        method="oasis",
        description="boschresearch/OASIS checkpoints (EMA or not)",
        files="<iter>_G.pth / <iter>_EMA.pth / <iter>_D.pth (latest, best or a number; in DIR or DIR/models)",
        read=read_official,
        detect=detect_official,
        write=write_official,
        default_preset="by class count: oasis-ade20k (151), oasis-cityscapes (35), oasis-coco (183), else oasis-custom",
    )
)

OASIS = register_method(
    Method(
        name="oasis",
        title="OASIS",
        paper="Sushko, Schönfeld, Zhang, Gall, Schiele, Khoreva: You Only Need Adversarial Supervision for "
        "Semantic Image Synthesis (ICLR 2021)",
        summary="SPADE blocks on labels + 3D noise; a U-Net segmentation D with N+1 classes, class-balanced "
        "cross-entropy and LabelMix; no VGG needed; per-region resampling",
        needs="label maps only (no instance maps, no pretrained weights)",
        parity="exact: official G (eval/train, both noise draws), D logits, G/D losses with LabelMix, buffers",
        build_networks=networks,
        build_objective=objective,
        options=OasisOptions,
        validate=validate,
        release_parts=("generator", "discriminator"),
        toy_preset="oasis-toy",
        tiny_overrides=(
            "model.ngf=2", "model.spade_hidden=8", "model.width=64", "oasis.z_dim=4",
            "oasis.d_widths=[4,4,8,8,8,8]", "oasis.d_last_width=4",
            "data.crop_size=64", "data.load_size=72", "data.toy_scenes=8", "train.batch_size=2",
        ),
    )
)

__all__ = ["OASIS", "OasisOptions", "read_official", "write_official"]
