"""Semantic Palette as a registered method: the ``palette:`` config section, its parts, checks, image
stage and registration.

A palette model's parts: ``generator`` (the progressive layout generator: z ⊕ proportions → soft
layout), ``discriminator`` (the layout critic), ``schedule`` (the progressive schedule's position)
and ``mixture`` (the palette mixture fitted to the training layouts); ``image_generator`` too when an
image stage was converted with the model. Photos come from a layout→image model of any method:
``palette.image_model`` names it (a release model folder or a bundled name such as ``toy``), unless
the model carries its own (``palette.image_config`` + ``image_generator``, from official checkpoints).

Shared sections: ``model.label_nc`` is the layout's class count C, ``model.aspect_ratio`` the
(integer) layout aspect, ``model.width`` the width the training label maps are loaded at (at least
the layout width at ``palette.final_res``; each stage nearest-resizes them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from spadekit.config import Config, config_from_dict
from spadekit.errors import CheckpointError, ConfigError
from spadekit.methods import register_method
from spadekit.methods.base import Method
from spadekit.methods.palette.activation import ACTIVATIONS
from spadekit.methods.palette.layout_discriminator import LayoutDiscriminator, official_critic_widths
from spadekit.methods.palette.layout_generator import JOINT_TYPES, LayoutGenerator, num_blocks, official_widths
from spadekit.methods.palette.layouts import DISCRETIZATIONS
from spadekit.methods.palette.parts import MixtureState, ScheduleState
from spadekit.methods.palette.sampler import PROJECTIONS
from spadekit.methods.palette.training import fit_palettes, objective, prepare_batch
from spadekit.models.registry import register


@dataclass
class PaletteOptions:
    """The ``palette:`` config section (official option names in brackets)."""

    max_dim: int = 128
    """Height of the layouts of the last block built [max_dim]; every block up to it is built and saved."""
    final_res: int | None = None
    """The last resolution trained; the release generates layouts at this height (None: max_dim)."""
    latent_dim: int = 512
    """Size of z [latent_dim]."""
    max_hidden_dim: int = 512
    """Widest block [max_hidden_dim]: block i is min(max_hidden_dim, 2^(12-i)) wide (critic alike)."""
    widths: list[int] | None = None
    """Explicit generator block widths (low → high resolution); None: the official rule."""
    critic_widths: list[int] | None = None
    """Explicit critic input widths, from the 4×4 end; None: the official rule."""
    critic_final_width: int | None = None
    """Explicit width of the critic's last convolution; None: the official rule."""
    joints_per_block: int = 1
    """Joints after each non-final block [joints_mul]."""
    joint_type: Literal["bias", "linear", "affine"] = "bias"
    """How a joint's layout modulates the features [joint_type]."""
    activation: Literal["assisted", "weakly_assisted", "softmax"] = "assisted"
    """Layout activation: the proportion-aware one [sem_assisted], its sigmoid variant [weakly], or
    a plain softmax (proportions unused)."""
    conditional: bool = True
    """Condition on the palette [cond_seg semantic]; false: an unconditional layout GAN."""
    filter_small: bool = False
    """Ignore proportions under one pixel in the activation [filter_cond]."""
    palette_critic: bool = False
    """The critic also sees the palette [original_cgan]."""
    discretization: Literal["none", "max", "gumbel"] = "none"
    """How the final layout is discretised before the critic (training uses none)."""
    temperature: float = 1.0
    """Gumbel-softmax temperature [t]."""
    intermediate: bool = True
    """Per-layout terms on every joint's layout too [inter]."""
    entropy: bool = True
    """Entropy term [entropy]."""
    spread: bool = True
    """Spread term [spread]."""
    recover: bool = False
    """KL(requested ‖ achieved proportions) term [sem_recover]."""
    ova_classes: list[int] = field(default_factory=list)
    """Classes of the one-versus-all term [ova_idx]."""
    lambda_ova: float = 1.0
    lambda_gp: float = 10.0
    """Gradient-penalty weight."""
    soft_real: bool = True
    """Soften the real layouts the critic sees [soft_sem_seg]."""
    soft_prop: float = 0.5
    max_sigma: float = 8.0
    min_sigma: float = 2.0
    phase_steps: list[int] = field(default_factory=lambda: [1000])
    """Steps of each phase (fade, stabilize) per resolution 4 … final_res; one value applies to all.
    After the last phase training goes on at final_res until the run ends."""
    estimated_cond: bool = True
    """Condition training on draws from the fitted mixture [estimated_cond]; false: on each real
    layout's own proportions."""
    max_components: int = 30
    """Largest component count tried by the AIC selection of the palette mixture."""
    min_components: int = 1
    projection: Literal["approx", "simplex"] = "approx"
    """How mixture draws become proportions: clip and renormalise (official), or simplex projection."""
    excluded_classes: list[int] = field(default_factory=list)
    """Classes mixture draws always leave at zero [estimator_filter_idx]."""
    fit_images: int | None = None
    """Fit the mixture on the first N training layouts only (None: all)."""
    image_model: str | None = None
    """The layout→image model of the photos: a release model folder or a bundled name (``toy``)."""
    end_to_end: bool = False
    """End-to-end tuning (the paper's last stage, reduced: see :mod:`.end_to_end`): at the final
    resolution an unconditional photo discriminator judges the image stage's photos of the generated
    layouts, and the layout and image generators learn from it. Needs ``image_model`` and training
    data at the image model's size (``model.width``)."""
    lambda_d2: float = 0.01
    """Weight of the photo discriminator's term in the generator's total [lambda_d2]."""
    image_width: int | None = None
    """Official conversion only: output width of an ``img_g_net`` image generator (the official
    ``width_size``; None: the layout width)."""
    image_upsampling: Literal["normal", "more", "most"] = "normal"
    """Official conversion only: the image generator's upsampling (``more`` for Cityscapes)."""
    image_config: dict[str, Any] | None = None
    """The config of an image generator carried inside the model (``image_generator`` part); set by
    conversion of official checkpoints. It wins over ``image_model``."""

    def __post_init__(self) -> None:
        if self.max_dim < 4 or self.max_dim & (self.max_dim - 1):
            raise ConfigError(f"palette.max_dim={self.max_dim} must be a power of two >= 4")
        if self.final_res is not None and (self.final_res < 4 or self.final_res & (self.final_res - 1) or self.final_res > self.max_dim):
            raise ConfigError(f"palette.final_res={self.final_res} must be a power of two in 4..palette.max_dim={self.max_dim}")
        if min(self.latent_dim, self.max_hidden_dim, self.max_components, self.min_components) < 1 or self.joints_per_block < 0:
            raise ConfigError("palette.latent_dim, max_hidden_dim, min/max_components must be >= 1, joints_per_block >= 0")
        if self.min_components > self.max_components:
            raise ConfigError("palette.min_components must not exceed palette.max_components")
        if not self.phase_steps or min(self.phase_steps) < 1:
            raise ConfigError("palette.phase_steps must list positive step counts")
        for name, choices, value in (("joint_type", JOINT_TYPES, self.joint_type), ("activation", ACTIVATIONS, self.activation),
                                     ("discretization", DISCRETIZATIONS, self.discretization), ("projection", PROJECTIONS, self.projection)):
            if value not in choices:
                raise ConfigError(f"palette.{name}={value!r} is not one of {', '.join(choices)}")
        if self.widths is not None and len(self.widths) != num_blocks(self.max_dim):
            raise ConfigError(f"palette.widths needs {num_blocks(self.max_dim)} entries (blocks 4..{self.max_dim})")
        if self.critic_widths is not None and len(self.critic_widths) != num_blocks(self.max_dim):
            raise ConfigError(f"palette.critic_widths needs {num_blocks(self.max_dim)} entries (blocks 4..{self.max_dim})")

    @property
    def last_res(self) -> int:
        return self.final_res or self.max_dim

    def steps_per_res(self) -> list[int]:
        count = num_blocks(self.last_res)
        if len(self.phase_steps) not in (1, count):
            raise ConfigError(f"palette.phase_steps needs 1 or {count} entries (resolutions 4..{self.last_res})")
        return list(self.phase_steps) * count if len(self.phase_steps) == 1 else list(self.phase_steps)


def aspect_of(config: Config) -> int:
    return int(round(config.model.aspect_ratio))


@register("generator", "palette-layout", "Semantic Palette progressive layout generator: z + class proportions -> layout")
def layout_generator(config: Config) -> nn.Module:
    m, o = config.model, config.section("palette")
    return LayoutGenerator(
        num_semantics=m.label_nc,
        latent_dim=o.latent_dim,
        widths=o.widths or official_widths(o.max_dim, o.max_hidden_dim),
        aspect_ratio=aspect_of(config),
        joints_per_block=o.joints_per_block,
        joint_type=o.joint_type,
        activation=o.activation,
        conditional=o.conditional,
        filter_small=o.filter_small,
        res=o.last_res,
    )


@register("discriminator", "palette-critic", "Semantic Palette progressive WGAN-GP critic on soft layouts")
def layout_critic(config: Config) -> nn.Module:
    m, o = config.model, config.section("palette")
    widths, final = official_critic_widths(o.max_dim, o.max_hidden_dim)
    return LayoutDiscriminator(
        m.label_nc,
        o.critic_widths or widths,
        o.critic_final_width or final,
        aspect_ratio=aspect_of(config),
        palette_input=o.palette_critic,
    )


def image_config(config: Config) -> Config | None:
    """The config of the image generator carried inside the model, or None."""
    values = config.section("palette").image_config
    if values is None:
        return None
    try:
        return config_from_dict(values)
    except ConfigError as exc:
        raise ConfigError(f"palette.image_config: {exc}") from None


def image_model_config(config: Config) -> Config:
    """The config of the image stage: the carried one, else the one of ``palette.image_model``."""
    from spadekit.release import read_config, resolve_model_path

    inner = image_config(config)
    if inner is not None:
        return inner
    name = config.section("palette").image_model
    if name is None:
        raise ConfigError("palette.image_model is not set")
    try:
        return read_config(resolve_model_path(name))
    except (CheckpointError, OSError) as exc:
        raise ConfigError(f"palette.image_model={name!r}: {exc}") from None


def networks(config: Config, init: bool) -> dict[str, nn.Module]:
    from spadekit.methods import method_of
    from spadekit.methods.palette.end_to_end import photo_discriminator

    o = config.section("palette")
    parts = {
        "generator": layout_generator(config),
        "discriminator": layout_critic(config),
        "schedule": ScheduleState(o.last_res, o.steps_per_res()),
        "mixture": MixtureState(config.model.label_nc, o.max_components),
    }
    inner = image_config(config)
    if inner is not None or o.end_to_end:
        inner = image_model_config(config)
        parts["image_generator"] = method_of(inner).build_networks(inner, False)["generator"]
        parts["image_generator"].requires_grad_(o.end_to_end)  # trained only end to end
    if o.end_to_end:
        photo_size = tuple(method_of(inner).size_of(inner))
        if photo_size != tuple(config.model.output_size):  # D2 compares the photos with the training photos
            raise ConfigError(
                f"palette.end_to_end: the image model makes {photo_size} photos; load the training data at that size "
                f"(model.width, now {config.model.width})"
            )
        parts["image_discriminator"] = photo_discriminator(config)
        if init:  # start from the image model's weights (a release load brings the tuned ones)
            from spadekit.release import load_model, load_state_into

            source = load_model(o.image_model).generator
            load_state_into(parts["image_generator"], source.state_dict(), f"palette.image_model={o.image_model}")
    return parts


def validate(config: Config) -> None:
    m, o = config.model, config.section("palette")
    if m.generator != "palette-layout" or m.discriminator != "palette-critic":
        raise ConfigError("method palette uses model.generator=palette-layout and model.discriminator=palette-critic")
    if m.contain_dontcare or m.use_instance or m.use_vae:
        raise ConfigError(
            "palette layouts are class maps only: set model.contain_dontcare=false (map the ignored value to a class "
            "with data.label_offset), model.use_instance=false and model.use_vae=false"
        )
    aspect = aspect_of(config)
    if aspect < 1 or abs(m.aspect_ratio - aspect) > 1e-9:
        raise ConfigError(f"model.aspect_ratio={m.aspect_ratio:g}: the layout networks need an integer aspect ratio (1, 2 ...)")
    if m.width < o.last_res * aspect:
        raise ConfigError(
            f"model.width={m.width} is below the layout width at palette.final_res={o.last_res} ({o.last_res * aspect}): "
            "the training label maps are loaded at model.width and resized to each stage"
        )
    o.steps_per_res()
    if o.end_to_end and (o.image_model is None or o.image_config is not None):
        raise ConfigError("palette.end_to_end tunes the image model named by palette.image_model: set it")
    for name in ("ova_classes", "excluded_classes"):
        bad = [c for c in getattr(o, name) if not 0 <= c < m.label_nc]
        if bad:
            raise ConfigError(f"palette.{name}: classes {bad} are outside 0..{m.label_nc - 1}")


def layout_size(config: Config) -> tuple[int, int]:
    """(width, height) of the layouts at ``palette.final_res``."""
    res = config.section("palette").last_res
    return res * aspect_of(config), res


def image_stage(model) -> Any:
    """The layout→image model of a palette model: its own converted image generator, else
    ``palette.image_model`` loaded (a release folder or a bundled name)."""
    from spadekit.release import SpadeModel, load_model

    config = model.config
    if "image_generator" in model.extras:  # converted, or tuned end to end
        image = SpadeModel.from_parts(image_model_config(config), {"generator": model.extras["image_generator"]})
    else:
        name = config.section("palette").image_model
        if name is None:
            raise ConfigError(
                "this palette model makes layouts only: it names no image model (set palette.image_model, or pass "
                "--image-model MODEL / image_model=... to use any spadekit layout->image model)"
            )
        try:
            image = load_model(name)
        except CheckpointError as exc:
            raise ConfigError(f"palette.image_model={name!r}: {exc}") from None
    return check_image_model(image, config)


def check_image_model(image, config: Config) -> Any:
    """``image`` when it can draw this palette model's layouts (same class count), else ConfigError."""
    if "palette" in image.method.capabilities:
        raise ConfigError("the image model must turn label maps into photos, not be another palette model")
    if image.config.model.label_nc != config.model.label_nc:
        raise ConfigError(
            f"the image model has {image.config.model.label_nc} classes but the layouts have {config.model.label_nc}"
        )
    return image


def _evaluation(model, data_config: Config):
    from spadekit.methods.palette.evaluation import PaletteEvaluation

    return PaletteEvaluation(model)


PALETTE = register_method(
    Method(
        name="palette",
        title="Semantic Palette",
        paper="Le Moing, Vu, Jain, Pérez, Cord: Semantic Palette: Guiding Scene Generation with Class Proportions (CVPR 2021)",
        summary="class proportions (+ z) -> a layout by a progressive GAN with proportion-aware activations and joints; "
        "the layout -> a photo by any layout->image model; palettes sampled from a Gaussian mixture fitted by AIC",
        needs="label maps only to train the layouts (photos for the image model); the image stage is a spadekit model",
        parity="official layout generator (every joint, fade-in), critic, losses, gradient penalty, argmax layout "
        "and the GauGAN image stage, to 1e-5 where float32 can resolve it; the public case, recorded on another CPU, "
        "within each tensor's measured float32 noise (< 1e-4) on its deepest tensors",
        build_networks=networks,
        build_objective=objective,
        options=PaletteOptions,
        prepare_batch=prepare_batch,
        optimized={"G": ("generator", "image_generator"), "D": ("discriminator", "image_discriminator")},
        validate=validate,
        output_size=layout_size,
        training_size=lambda config: tuple(config.model.output_size),  # the photos (layouts are pooled from their maps)
        release_parts=("generator", "discriminator", "schedule", "mixture", "image_generator"),
        capabilities=frozenset({"palette"}),
        toy_preset="palette-toy",
        tiny_overrides=(
            "model.width=32", "data.crop_size=32", "data.load_size=32", "palette.max_dim=32", "palette.final_res=32",
            "palette.latent_dim=4", "palette.max_hidden_dim=8", "palette.phase_steps=[1]", "palette.max_components=2",
            "data.toy_scenes=8", "train.batch_size=2",
        ),
        prepare_training=fit_palettes,
        image_stage=image_stage,
        evaluation=_evaluation,
    )
)

__all__ = ["PALETTE", "PaletteOptions", "image_stage", "image_model_config", "check_image_model"]
