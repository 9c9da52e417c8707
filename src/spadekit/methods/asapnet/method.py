"""ASAPNet as a registered method: its config section, networks, objective, checks and checkpoint format.

The shared sections carry what ASAPNet shares with SPADE: ``model.label_nc`` / ``contain_dontcare`` /
``use_instance`` (the input channels), ``model.width`` / ``aspect_ratio`` (the training size, which
fixes the tile size S = width // (16 · aspect_ratio) as in the paper's code), the discriminator's
``ndf`` / ``num_D`` / ``n_layers_D`` / ``norm_D`` / ``spectral_D`` and the ``loss`` section
(hinge GAN, feature matching, VGG). The ``asapnet:`` section holds the two streams and ASAPNet's
own loss terms. ``model.upsampling``, ``ngf`` and the SPADE-layer options are not used.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.config import Config, config_from_dict, load_config
from spadekit.conversion import CheckpointFormat, register_format, resolve_official_options
from spadekit.errors import CheckpointError, ConfigError
from spadekit.io import atomic_write_text, checkpoint_keys
from spadekit.methods import register_method
from spadekit.methods.asapnet.convert import OFFICIAL_FILES, load_official, save_official
from spadekit.methods.asapnet.discriminator import ASAPNetDiscriminator
from spadekit.methods.asapnet.fast import FastASAPNetGenerator
from spadekit.methods.asapnet.generator import ASAPNetGenerator, check_downsampling, check_tile, check_tile_size
from spadekit.methods.base import Batch, Method
from spadekit.methods.spade import networks
from spadekit.models.registry import register
from spadekit.objective import SpadeObjective

NormName = Literal["none", "instance", "instanceaffine", "batch", "syncbatch"]


@dataclass
class AsapnetOptions:
    """The ``asapnet:`` config section (official names in brackets)."""

    learned_downsampling: int = 16
    """S2, the low-res stream's stride-2 steps (``learned_ds_factor``); a power of two ≤ the tile size S.
    When S > S2 the input is first reduced by S / S2 with a fixed tent filter."""
    lr_width: int = 64
    """Low-res stream width (``lr_width``)."""
    lr_max_width: int = 1024
    """Width after the last stride-2 conv and in the blocks (``lr_max_width``)."""
    lr_depth: int = 7
    """Conv blocks at the lowest resolution (``lr_depth``)."""
    hr_width: int = 64
    """Hidden width of the per-pixel MLP (``hr_width``)."""
    hr_depth: int = 5
    """Layers of the per-pixel MLP (``hr_depth``)."""
    positional: bool = True
    """Append the sinusoidal position-in-tile code to the pixel MLP's input (``hr_coor cosine``; false: ``None``)."""
    lr_instance: bool | None = None
    """The last input channel (the instance edges) feeds only the low-res stream (``lr_instance``).
    Default: true exactly when there is an instance channel (the paper's code defaults to true and
    then hides the last *class* channel from the pixel MLP when there is none; set true for that)."""
    norm: NormName = "instanceaffine"
    """Norm after each 3×3 conv of the low-res stream (``norm_G``; the paper's ``instanceaffine``)."""
    spectral: bool = False
    """Spectral norm on the low-res stream's 3×3 convs."""
    reflection_pad: bool = False
    """Reflection padding in the low-res stream (``--reflection_pad``, the facades scripts)."""
    tile: int | None = None
    """The tile size S itself; default (none) the paper's rule width // (16 · aspect_ratio). A model
    run at another size keeps its S (spadekit sets it then)."""
    d_max_channels: int = 512
    """Width cap of the discriminator's layers (``ndf_max``)."""
    d_instance_affine: bool = False
    """With ``model.norm_D=instance``: the discriminator's instance norms learn a scale and shift
    (``norm_D spectralinstanceaffine``)."""
    adversarial: bool = True
    """The generator's GAN term (false: ``--no_adv_loss``; feature matching still uses D)."""
    lambda_wd: float = 0.0
    """Weight of the squared L2 norm of all predicted per-cell parameters (``--use_weight_decay``:
    ``lambda_WD`` 1e-8); 0: off."""
    lambda_mse: float = 0.0
    """Weight of an MSE term against the real photo (``--MSE_loss``: ``lambda_MSE`` 10); 0: off."""
    lambda_l1: float = 0.0
    """Weight of an L1 term against the real photo (``--L1_loss``: ``lambda_L1`` 100); 0: off."""

    def __post_init__(self) -> None:
        if min(self.lr_width, self.lr_max_width, self.hr_width, self.hr_depth, self.d_max_channels) < 1 or self.lr_depth < 0:
            raise ConfigError("asapnet widths and depths must be positive (lr_depth may be 0)")
        if min(self.lambda_wd, self.lambda_mse, self.lambda_l1) < 0:
            raise ConfigError("asapnet loss weights must be >= 0")
        if self.norm not in ("none", "instance", "instanceaffine", "batch", "syncbatch"):
            raise ConfigError(f"asapnet.norm={self.norm!r} is not one of none, instance, instanceaffine, batch, syncbatch")


def lr_instance(config: Config) -> bool:
    o = config.section("asapnet")
    return config.model.use_instance if o.lr_instance is None else o.lr_instance


def tile_size(config: Config) -> int:
    """The tile size S of a config (ConfigError naming the allowed widths when there is none)."""
    m, o = config.model, config.section("asapnet")
    if o.tile is not None:
        return check_tile(o.tile, o.learned_downsampling)
    return check_downsampling(m.width, m.aspect_ratio, o.learned_downsampling)


def output_size(config: Config) -> tuple[int, int]:
    m = config.model
    return m.width, round(m.width / m.aspect_ratio)


@register("generator", "asapnet", "ASAPNet generator (Rott Shaham et al. 2021): a low-res CNN predicts per-tile pixel-MLP weights")
def _generator(config: Config) -> nn.Module:
    m, o = config.model, config.section("asapnet")
    return ASAPNetGenerator(
        semantic_nc=m.semantic_nc,
        width=m.width,
        aspect_ratio=m.aspect_ratio,
        learned_downsampling=o.learned_downsampling,
        lr_width=o.lr_width,
        lr_max_width=o.lr_max_width,
        lr_depth=o.lr_depth,
        hr_width=o.hr_width,
        hr_depth=o.hr_depth,
        positional=o.positional,
        lr_instance=lr_instance(config),
        norm=o.norm,
        spectral=o.spectral,
        reflection_pad=o.reflection_pad,
        tile=o.tile,
    )


@register("discriminator", "asapnet", "SPADE's multi-scale PatchGAN with ASAPNet's width cap (asapnet.d_max_channels)")
def _discriminator(config: Config) -> nn.Module:
    m, o = config.model, config.section("asapnet")
    norm = "instanceaffine" if m.norm_D == "instance" and o.d_instance_affine else m.norm_D
    return ASAPNetDiscriminator(m.semantic_nc + 3, m.ndf, m.num_D, m.n_layers_D, o.d_max_channels, norm, m.spectral_D)


class AsapnetObjective(SpadeObjective):
    """SPADE's objective (hinge GAN, feature matching, VGG) plus ASAPNet's optional terms: MSE and L1
    against the photo and the weight decay of the predicted parameters; the GAN term can be dropped."""

    def __init__(self, generator: nn.Module, discriminator: nn.Module, config: Config, vgg: nn.Module | None):
        super().__init__(generator, discriminator, None, config.loss, vgg)
        self.options = config.section("asapnet")

    def generator_losses(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor], torch.Tensor]:
        o = self.options
        fake, params = self.generator(batch.semantics, return_parameters=True)
        terms = self.generator_terms(batch, fake, None, None)
        if not o.adversarial:
            terms.pop("G_GAN", None)
        if o.lambda_mse > 0:
            terms["G_MSE"] = F.mse_loss(fake, batch.image) * o.lambda_mse
        if o.lambda_l1 > 0:
            terms["G_L1"] = F.l1_loss(fake, batch.image) * o.lambda_l1
        if o.lambda_wd > 0:
            # The paper's code: MSE between the L2 norm of the whole batch's parameters and 0.
            terms["G_WD"] = params.float().norm(p=2).square() * o.lambda_wd
        total = torch.stack([t.float() for t in terms.values()]).sum()
        return total, terms, fake


def objective(parts: dict[str, nn.Module], config: Config, vgg: nn.Module | None) -> AsapnetObjective:
    return AsapnetObjective(parts["generator"], parts["discriminator"], config, vgg)


def fast_generator(generator: nn.Module, config: Config, channels_last: bool) -> nn.Module | None:
    if not isinstance(generator, ASAPNetGenerator):
        return None
    m = config.model
    return FastASAPNetGenerator.from_generator(
        generator, m.label_nc + int(m.contain_dontcare), m.use_instance, channels_last=channels_last
    )


def validate(config: Config) -> None:
    m = config.model
    if m.generator != "asapnet" or m.discriminator != "asapnet":
        raise ConfigError("method asapnet uses model.generator=asapnet and model.discriminator=asapnet")
    if m.use_vae:
        raise ConfigError("ASAPNet's generator has no latent input: set model.use_vae=false")
    s = tile_size(config)
    width, height = output_size(config)
    check_tile_size(s, height, width)


def at_size(config: Config, size: tuple[int, int]) -> Config:
    """The same weights at another (width, height): the tile size stays the trained one."""
    s = tile_size(config)
    model = dataclasses.replace(config.model, width=int(size[0]), aspect_ratio=size[0] / size[1])
    options = dataclasses.replace(config.section("asapnet"), tile=s)
    resized = dataclasses.replace(config, model=model, sections={**config.sections, "asapnet": options})
    validate(resized)
    return resized


# ----------------------------------------------------------------------------- official checkpoints

PRESET_BY_INPUTS = {36: "asapnet-cityscapes", 13: "asapnet-facades"}


def official_options(config: Config) -> dict[str, Any]:
    """The official option values a config implies (those the weights cannot tell)."""
    m, o = config.model, config.section("asapnet")
    return {
        "crop_size": m.width,
        "aspect_ratio": m.aspect_ratio,
        "label_nc": m.label_nc,
        "contain_dontcare_label": m.contain_dontcare,
        "no_instance_edge": not m.use_instance,
        "no_instance_dist": True,
        "lr_instance": lr_instance(config),
        "hr_coor": "cosine" if o.positional else None,
        "hr_width": o.hr_width,
        "hr_depth": o.hr_depth,
        "lr_max_width": o.lr_max_width,
        "output_nc": 3,
        "norm_G": f"{'spectral' if o.spectral else ''}{o.norm}",
        "norm_D": f"{'spectral' if m.spectral_D else ''}{m.norm_D}{'affine' if o.d_instance_affine else ''}",
        "ndf_max": o.d_max_channels,
    }


def default_preset(directory: Path) -> str:
    """The preset of an official folder's input channel count (read memory-mapped)."""
    try:
        state = torch.load(Path(directory) / OFFICIAL_FILES["generator"], map_location="cpu", weights_only=True, mmap=True)
        first = next(v for k, v in state.items() if k.startswith("lowres_stream.model.") and v.dim() == 4)
        return PRESET_BY_INPUTS.get(int(first.shape[1]), "asapnet-custom")
    except Exception:  # noqa: BLE001  (load_official reports a bad file with its own message)
        return "asapnet-custom"


def read_official(directory: Path, preset: str | None, overrides: list[str]):
    """An official ASAPNet checkpoint folder → a release model (G, and D when present)."""
    from spadekit.release import SpadeModel, load_state_into

    directory = Path(directory)
    explicit_preset = preset is not None
    preset = preset or default_preset(directory)
    g_path = directory / OFFICIAL_FILES["generator"]
    try:
        official = load_official(directory, resolve_official_options(directory, preset, overrides, explicit_preset, official_options))
    except ConfigError as exc:
        raise CheckpointError(f"{g_path}: {exc}") from None
    g, o = official.kwargs["generator"], official.options
    if not o["no_instance_dist"]:
        raise CheckpointError(
            f"{g_path}: trained with the distance-transform channel (--no_instance_dist False), which the asapnet "
            "method does not feed; spadekit.methods.asapnet.convert.load_official still loads the networks"
        )
    if g["output_nc"] != 3:
        raise CheckpointError(f"{g_path}: makes {g['output_nc']} output channels; spadekit's methods make RGB images")
    base = load_config(preset, overrides)
    if base.method != "asapnet":
        raise CheckpointError(f"{directory}: preset {preset!r} is not an ASAPNet preset (`spadekit list`)")
    values = base.to_dict()
    values["model"].update(
        generator="asapnet", discriminator="asapnet", label_nc=o["label_nc"], contain_dontcare=o["contain_dontcare_label"],
        use_instance=not o["no_instance_edge"], width=g["width"], aspect_ratio=g["aspect_ratio"], use_vae=False,
    )
    values["asapnet"] = {
        **values.get("asapnet", {}),
        **{k: g[k] for k in ("lr_width", "lr_max_width", "lr_depth", "hr_width", "hr_depth", "positional", "lr_instance",
                             "norm", "spectral", "reflection_pad")},
        "learned_downsampling": g["learned_downsampling"],
        "tile": None,
    }
    if official.discriminator is not None:
        d = official.kwargs["discriminator"]
        if d["in_channels"] != g["semantic_nc"] + 3:
            raise CheckpointError(
                f"{directory / OFFICIAL_FILES['discriminator']}: takes {d['in_channels']} channels, the generator's "
                f"semantics + image are {g['semantic_nc'] + 3}"
            )
        affine = d["norm"] == "instanceaffine"
        values["model"].update(ndf=d["ndf"], num_D=d["num_D"], n_layers_D=d["n_layers"], spectral_D=d["spectral"],
                               norm_D="instance" if affine else d["norm"])
        values["asapnet"].update(d_max_channels=d["max_channels"], d_instance_affine=affine)
    try:
        config = config_from_dict(values)
    except ConfigError as exc:
        raise CheckpointError(f"{directory}: {exc}") from None
    parts = networks(config, init=False)
    load_state_into(parts["generator"], official.generator.state_dict(), g_path)
    kept = {"generator": parts["generator"]}
    if official.discriminator is not None:
        load_state_into(parts["discriminator"], official.discriminator.state_dict(), directory / OFFICIAL_FILES["discriminator"])
        kept["discriminator"] = parts["discriminator"]
    return SpadeModel.from_parts(config, kept, {"converted_from": "official ASAPNet checkpoint"}).eval()


def write_official(model, directory: Path) -> list[Path]:
    """A release model → ``latest_net_G.pth`` (+ ``latest_net_D.pth``) that the official code loads, and
    ``opt.json`` with the options the weights cannot tell."""
    if model.config.method != "asapnet":
        raise ConfigError(f"to-asapnet needs an ASAPNet model (this one is {model.config.method})")
    if model.config.section("asapnet").tile is not None:
        raise ConfigError(
            "to-asapnet: this model's tile size is pinned (asapnet.tile), which the official code cannot express; "
            "export the model at its training size"
        )
    directory = Path(directory)
    written = save_official(directory, model.generator, model.discriminator)
    atomic_write_text(directory / "opt.json", json.dumps(official_options(model.config), indent=1) + "\n")
    return [*written, directory / "opt.json"]


def detect_official(directory: Path) -> bool:
    return any(k.startswith("lowres_stream.model.") for k in checkpoint_keys(Path(directory) / OFFICIAL_FILES["generator"]))


register_format(
    CheckpointFormat(
        name="asapnet",
        method="asapnet",
        description="tamarott/ASAPNet checkpoints",
        files="latest_net_G.pth (+ latest_net_D.pth; opt.json / opt.txt with the run's options)",
        read=read_official,
        detect=detect_official,
        write=write_official,
        default_preset="by input channels: asapnet-cityscapes (36), asapnet-facades (13), else asapnet-custom",
    )
)

ASAPNET = register_method(
    Method(
        name="asapnet",
        title="ASAPNet",
        paper="Rott Shaham, Gharbi, Zhang, Shechtman, Michaeli: Spatially-Adaptive Pixelwise Networks for Fast Image "
        "Translation (CVPR 2021)",
        summary="a low-resolution CNN predicts the weights of a tiny MLP per image tile, run at full resolution on "
        "each pixel's labels and position; SPADE's D (with a width cap) and losses (+ optional weight decay, MSE, L1)",
        needs="label maps (+ instance maps); VGG19 ImageNet weights only for the perceptual term (optional)",
        parity="exact: official G (eval/train, predicted per-cell parameters, buffers) and D of tamarott/ASAPNet",
        build_networks=networks,
        build_objective=objective,
        options=AsapnetOptions,
        fast_generator=fast_generator,
        validate=validate,
        output_size=output_size,
        at_size=at_size,
        release_parts=("generator", "discriminator"),
        toy_preset="asapnet-toy",
        tiny_overrides=(
            "model.ndf=8", "model.width=64", "asapnet.learned_downsampling=4", "asapnet.lr_width=4",
            "asapnet.lr_max_width=8", "asapnet.lr_depth=1", "asapnet.hr_width=4", "asapnet.hr_depth=2",
            "asapnet.lambda_wd=1e-8", "asapnet.lambda_l1=1",
            "data.crop_size=64", "data.load_size=72", "data.toy_scenes=8", "train.batch_size=2",
        ),
    )
)

__all__ = ["ASAPNET", "AsapnetOptions", "AsapnetObjective", "read_official", "write_official"]
