"""BachGAN as a registered method: its config section, networks, objective, batches, checks, the
official checkpoint format and the hooks that give it boxes (data, release, Pipeline).

The shared sections carry what BachGAN shares with SPADE: ``model.label_nc`` (+ ``contain_dontcare``)
gives C, the channels of the box layout and of every retrieved layout; ``model.ngf``, ``spade_*``,
``norm_G``, ``spectral_G``, ``use_vae`` the generator trunk; ``model.discriminator`` (``multiscale``, or
``patch`` for the official ``--netD nlayer``), ``ndf``, ``num_D``, ``n_layers_D``, ``norm_D`` the
discriminator on (box layout, image); ``loss.*`` the GAN, feature-matching, VGG and KL terms.
The ``bachgan:`` section holds the rest (:class:`BachGANOptions`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from spadekit.config import Config, config_from_dict, load_config
from spadekit.conversion import CheckpointFormat, register_format
from spadekit.errors import CheckpointError, ConfigError
from spadekit.methods import register_method
from spadekit.methods.base import Batch, Method
from spadekit.methods.bachgan import data as bachgan_data
from spadekit.methods.bachgan import synthesis
from spadekit.methods.bachgan.boxes import CONSTRUCTIONS
from spadekit.methods.bachgan.convert import infer_generator_options, load_official, official_file, read_official, save_official
from spadekit.methods.bachgan.generator import BachGANGenerator
from spadekit.methods.bachgan.objective import BachGANBatch, BachGANObjective
from spadekit.methods.bachgan.retrieval import compose_retrieved_batch
from spadekit.models.discriminator import PatchDiscriminator
from spadekit.models.encoder import reparameterize
from spadekit.models.init import init_weights
from spadekit.models.registry import create, register


@dataclass
class BachGANOptions:
    """The ``bachgan:`` config section."""

    num_retrieved: int = 3
    """k, the retrieved layouts fused with the box layout (the official code fixes 3)."""
    bank: str | None = None
    """Memory bank file (``spadekit bachgan index``). None: the training split is indexed when a run
    starts (seconds on toy scenes). A release model carries its bank either way."""
    foreground: list[int] = field(default_factory=list)
    """Object classes (channel ids) drawn from boxes: they come only from the boxes, never from the
    retrieved layouts, and are the classes a user's box may have."""
    background: int = 0
    """Class painted outside the boxes when the box layout is built (the official code: 0 for every dataset)."""
    construction: Literal["official", "onehot"] = "official"
    """Box layout: ``official`` (cumulative scatter, the released checkpoints' input, quirks included)
    or ``onehot`` (the final painted map); see :mod:`spadekit.methods.bachgan.boxes`."""
    boxes_from: Literal["instances", "cityscapes", "ade20k"] = "instances"
    """How training boxes are extracted: ``instances`` (one box per thing instance of the instance
    map: COCO-Stuff, toy scenes), ``cityscapes`` (instanceIds by class prefix), ``ade20k`` (contours
    of the object classes of the label map)."""
    label_channels: Literal["ids", "ade20k"] = "ids"
    """Dataset label ids → channel ids: ``ids`` as they are (255 → the don't-care channel),
    ``ade20k`` the official shift (raw k → k-1, unlabeled 0 → the don't-care channel 150)."""
    lambda_seg: float = 0.0
    """Weight of the segmentation head's NLL against the full label map (official ``--seg``: 1;
    off in the released runs). Don't-care pixels are ignored."""
    legacy_layers: bool = False
    """Build the official generator's unused layers (only to round-trip official checkpoints)."""
    bank_keep: float = 1.0
    """Fraction of the training maps an in-memory bank indexes (the official scripts kept 0.25)."""
    bank_seed: int = 1121
    """Seed choosing that fraction (the official scripts' seed)."""

    def __post_init__(self) -> None:
        if self.num_retrieved < 1:
            raise ConfigError("bachgan.num_retrieved must be >= 1")
        if self.construction not in CONSTRUCTIONS:
            raise ConfigError(f"bachgan.construction must be one of {', '.join(CONSTRUCTIONS)}")
        if self.lambda_seg < 0:
            raise ConfigError("bachgan.lambda_seg must be >= 0")
        if not 0 < self.bank_keep <= 1:
            raise ConfigError("bachgan.bank_keep must be in (0, 1]")
        if len(set(self.foreground)) != len(self.foreground):
            raise ConfigError("bachgan.foreground lists a class twice")


# ----------------------------------------------------------------------------------- networks


@register("generator", "bachgan", "BachGAN generator: box layout + k retrieved layouts fused, then SPADE (Li et al. 2020)")
def _generator(config: Config) -> nn.Module:
    m, o = config.model, config.section("bachgan")
    return BachGANGenerator(
        semantic_nc=m.semantic_nc, ngf=m.ngf, width=m.width, aspect_ratio=m.aspect_ratio, upsampling=m.upsampling,
        norm=m.norm_G, spectral=m.spectral_G, spade_kernel=m.spade_kernel, spade_hidden=m.spade_hidden,
        use_vae=m.use_vae, z_dim=m.z_dim, num_retrieved=o.num_retrieved, legacy_layers=o.legacy_layers,
    )


@register("discriminator", "patch", "one PatchGAN (the official --netD nlayer) returning every intermediate feature")
def _patch(config: Config) -> nn.Module:
    m = config.model
    return PatchDiscriminator(m.semantic_nc + 3, ndf=m.ndf, n_layers=m.n_layers_D, norm=m.norm_D, spectral=m.spectral_D)


def networks(config: Config, init: bool) -> dict[str, nn.Module]:
    parts = {"generator": _generator(config), "discriminator": create("discriminator", config.model.discriminator, config)}
    if config.model.use_vae:
        parts["encoder"] = create("encoder", config.model.encoder, config)
    if init:  # the official init (SPADE's): xavier-normal gain 0.02, zero biases
        for network in parts.values():
            init_weights(network)
    return parts


# ----------------------------------------------------------------------------------- batches


def fine_labels(label: torch.Tensor, config: Config, ignore_index: int = 255) -> torch.Tensor:
    """Dataset labels (N, 1, H, W) (don't-care already at ``label_nc``) → segmentation targets (N, H, W)
    in channel ids, don't-care pixels at ``ignore_index``."""
    m, o = config.model, config.section("bachgan")
    ids = label[:, 0].long()
    if o.label_channels == "ade20k":
        ids = torch.where(ids == 0, torch.full_like(ids, m.label_nc), ids - 1)
    if m.contain_dontcare:
        ids = ids.masked_fill(ids == m.label_nc, ignore_index)
    return ids


def prepare_batch(raw: dict, config: Config, device: torch.device | str, non_blocking: bool = False) -> Batch:
    """Collated items of :class:`~spadekit.methods.bachgan.data.BoxRetrievalDataset` → a Batch whose
    ``semantics`` is the generator input (N, (1+k)·C, H, W): the box layout, then the k retrieved
    layouts composed with the boxes. ``extras``: ``fine_label`` (segmentation targets) and
    ``retrieved_index`` (bank positions)."""
    if "box_layout" not in raw:
        raise ConfigError("BachGAN batches need boxes and retrieved layouts: open the data with the method's open_data")
    box = raw["box_layout"].to(device, non_blocking=non_blocking).float()
    maps = raw["retrieved"].to(device, non_blocking=non_blocking)
    inside = raw["box_inside"].to(device, non_blocking=non_blocking)
    retrieved = compose_retrieved_batch(maps, box, inside, config.section("bachgan").foreground)
    label = raw["label"].to(device, non_blocking=non_blocking)
    return Batch(
        semantics=torch.cat([box, retrieved], dim=1),
        image=raw["image"].to(device, non_blocking=non_blocking),
        extras={"fine_label": fine_labels(label, config), "retrieved_index": raw["retrieved_index"]},
    )


# ----------------------------------------------------------------------------------- objective


class Objective:
    """:class:`BachGANObjective` behind the framework's Batch interface (the box layout is the first C
    channels of ``batch.semantics``), with the official D step on regenerated fakes when asked."""

    def __init__(self, inner: BachGANObjective, channels: int):
        self.inner = inner
        self.channels = channels

    def _batch(self, batch: Batch) -> BachGANBatch:
        c = self.channels
        return BachGANBatch(batch.semantics[:, :c], batch.semantics[:, c:], batch.image, batch.extras.get("fine_label"))

    def generator_losses(self, batch: Batch):
        return self.inner.generator_losses(self._batch(batch))

    def discriminator_losses(self, batch: Batch, carry: Any):
        if carry is None:  # train.regenerate_fakes: fakes of the updated generator, as the official D step
            with torch.no_grad():
                z = None
                if self.inner.encoder is not None:
                    z = reparameterize(*self.inner.encoder(batch.image))
                carry = self.inner.generator(batch.semantics, z)
        return self.inner.discriminator_losses(self._batch(batch), carry)

    def sample(self, batch: Batch, generator: nn.Module) -> torch.Tensor:
        z = None
        if self.inner.encoder is not None:  # the encoder's mean: no random numbers, as SPADE's previews
            was_training = self.inner.encoder.training
            self.inner.encoder.eval()
            z, _ = self.inner.encoder(batch.image)
            self.inner.encoder.train(was_training)
        return generator(batch.semantics, z)


def objective(parts: dict[str, nn.Module], config: Config, vgg: nn.Module | None) -> Objective:
    loss, o = config.loss, config.section("bachgan")
    inner = BachGANObjective(
        parts["generator"], parts["discriminator"], parts.get("encoder"), gan_mode=loss.gan_mode,
        feature_matching=loss.feature_matching, lambda_feat=loss.lambda_feat, vgg=vgg, lambda_vgg=loss.lambda_vgg,
        lambda_kld=loss.lambda_kld, lambda_seg=o.lambda_seg,
    )
    return Objective(inner, bachgan_data.channels_of(config))


# ----------------------------------------------------------------------------------- checks


def validate(config: Config) -> None:
    m, o = config.model, config.section("bachgan")
    if m.generator != "bachgan" or m.discriminator not in ("multiscale", "patch"):
        raise ConfigError("method bachgan uses model.generator=bachgan and model.discriminator=multiscale or patch")
    if m.use_instance:
        raise ConfigError(
            "BachGAN's input is boxes and retrieved layouts, with no instance-edge channel: set model.use_instance=false "
            "(instance maps are still read for the boxes when bachgan.boxes_from needs them)"
        )
    channels = m.label_nc + int(m.contain_dontcare)
    if not o.foreground:
        raise ConfigError("bachgan.foreground must list the object classes drawn from boxes (channel ids)")
    bad = [c for c in o.foreground if not 0 <= c < channels]
    if bad:
        raise ConfigError(f"bachgan.foreground: classes {bad} are not among the model's {channels} channels (0..{channels - 1})")
    if not 0 <= o.background < channels:
        raise ConfigError(f"bachgan.background={o.background} is not among the model's {channels} channels")
    if o.label_channels == "ade20k" and not m.contain_dontcare:
        raise ConfigError("bachgan.label_channels=ade20k moves unlabeled pixels to the don't-care channel: set model.contain_dontcare=true")
    if o.boxes_from == "ade20k" and o.label_channels != "ade20k":
        raise ConfigError("bachgan.boxes_from=ade20k reads raw ADE20K ids: set bachgan.label_channels=ade20k")


# ----------------------------------------------------------------------------- official checkpoints

PRESET_BY_CHANNELS = {35: "bachgan-cityscapes", 151: "bachgan-ade20k"}


def official_epoch(directory: Path) -> str:
    """``latest`` when ``latest_net_G.pth`` is there, else the highest epoch number with a generator file."""
    if official_file(directory, "generator").is_file():
        return "latest"
    epochs = [int(m.group(1)) for p in Path(directory).glob("*_net_G.pth") if (m := re.fullmatch(r"(\d+)_net_G\.pth", p.name))]
    if not epochs:
        raise CheckpointError(f"{directory}: no official BachGAN generator (latest_net_G.pth or <epoch>_net_G.pth)")
    return str(max(epochs))


def read_official_model(directory: Path, preset: str | None, overrides: list[str]):
    """An official BachGAN checkpoint folder → a release model. The weights give the widths, norms
    and C; the preset (default by C: 35 Cityscapes, 151 ADE20K) gives the size, k and the box classes."""
    from spadekit.release import SpadeModel, load_state_into

    directory = Path(directory)
    epoch = official_epoch(directory)
    g_path = official_file(directory, "generator", epoch)
    channels = infer_generator_options(read_official(g_path), g_path)["semantic_nc"]
    if preset is None:
        if channels not in PRESET_BY_CHANNELS:
            raise CheckpointError(f"{g_path}: a generator for {channels} channels; give --preset (a BachGAN preset with them)")
        preset = PRESET_BY_CHANNELS[channels]
    base = load_config(preset, overrides)
    if base.method != "bachgan":
        raise CheckpointError(f"{directory}: preset {preset!r} is not a BachGAN preset (`spadekit list`)")
    m = base.model
    if m.label_nc + int(m.contain_dontcare) != channels:
        raise CheckpointError(
            f"{g_path}: a generator for {channels} channels, but preset {preset!r} has {m.label_nc + int(m.contain_dontcare)} "
            "(model.label_nc + contain_dontcare)"
        )
    official = load_official(directory, m.width, m.aspect_ratio, m.upsampling, base.section("bachgan").num_retrieved, epoch)
    g = official.options["generator"]
    values = base.to_dict()
    values["model"].update(
        ngf=g["ngf"], spade_hidden=g["spade_hidden"], spade_kernel=g["spade_kernel"], spectral_G=g["spectral"],
        norm_G=g["norm"], use_vae=g["use_vae"], upsampling=g["upsampling"],
    )
    if g["use_vae"]:
        values["model"]["z_dim"] = g["z_dim"]
    values["bachgan"]["legacy_layers"] = g["legacy_layers"]
    if "discriminator" in official.options:
        d = official.options["discriminator"]
        values["model"].update(
            discriminator="multiscale" if d["multiscale"] else "patch", ndf=d["ndf"], num_D=d["num_D"],
            n_layers_D=d["n_layers"], norm_D=d["norm"], spectral_D=d["spectral"],
        )
    if "encoder" in official.options:
        e = official.options["encoder"]
        if e["ngf"] != g["ngf"] or e["z_dim"] != g.get("z_dim"):
            raise CheckpointError(f"{directory}: the encoder's width/z size do not match the generator's")
        values["model"].update(norm_E=e["norm"], spectral_E=e["spectral"])
    try:
        config = config_from_dict(values)
    except ConfigError as exc:
        raise CheckpointError(f"{directory}: {exc}") from None
    parts = networks(config, init=False)
    kept = {}
    for name, network in (("generator", official.generator), ("discriminator", official.discriminator), ("encoder", official.encoder)):
        if network is not None:
            load_state_into(parts[name], network.state_dict(), official_file(directory, name, epoch))
            kept[name] = parts[name]
    provenance = {"converted_from": "official BachGAN checkpoint", "epoch": epoch}
    return SpadeModel.from_parts(config, kept, provenance).eval()


def write_official_model(model, directory: Path) -> list[Path]:
    """A release model → ``latest_net_G.pth`` (+ ``_D``, ``_E``) as the official code saves them (its
    unused layers filled with zeros when the model has none, so strict loaders accept the file)."""
    if model.config.method != "bachgan":
        raise ConfigError(f"to-bachgan needs a BachGAN model (this one is {model.config.method})")
    Path(directory).mkdir(parents=True, exist_ok=True)
    return save_official(directory, model.generator, model.discriminator, model.encoder)


def detect_official(directory: Path) -> bool:
    try:
        g_path = official_file(directory, "generator", official_epoch(Path(directory)))
        return "encode_shared.0.weight" in read_official(g_path)
    except CheckpointError:
        return False


register_format(
    CheckpointFormat(
        name="bachgan",
        method="bachgan",
        description="Cold-Winter/BachGAN checkpoints (--retrival_memory mode)",
        files="<epoch>_net_G.pth (+ _net_D.pth, _net_E.pth); latest, else the highest epoch",
        read=read_official_model,
        detect=detect_official,
        write=write_official_model,
        default_preset="by channel count: bachgan-cityscapes (35), bachgan-ade20k (151)",
        priority=1,  # its files carry the names of SPADE's official ones
    )
)

BACHGAN = register_method(
    Method(
        name="bachgan",
        title="BachGAN",
        paper="Li, Cheng, Gan, Liu: BachGAN: High-Resolution Image Synthesis from Salient Object Layout (CVPR 2020)",
        summary="object boxes only: layouts retrieved from a memory bank of training maps (class-pooled IoU) are "
        "fused with the box layout and condition a SPADE generator; D sees box layout + image",
        needs="training label maps + instance maps (for the boxes; ADE20K: label maps); the memory bank is "
        "built from them (`spadekit bachgan index`); VGG19 weights only for the perceptual term",
        parity="exact: official fused map, G (eval/train), segmentation head, D, losses and buffers; box layouts and "
        "boxes extracted as the official datasets do",
        build_networks=networks,
        build_objective=objective,
        options=BachGANOptions,
        prepare_batch=prepare_batch,
        validate=validate,
        capabilities=frozenset({"boxes"}),
        open_data=bachgan_data.open_data,
        release_assets=bachgan_data.release_assets,
        label_input=synthesis.label_input,
        box_input=synthesis.box_input,
        toy_preset="bachgan-toy",
        tiny_overrides=(
            "model.ngf=4", "model.ndf=8", "model.width=64", "model.spade_hidden=8",
            "data.crop_size=64", "data.load_size=72", "data.toy_scenes=8", "train.batch_size=2",
        ),
    )
)

__all__ = ["BACHGAN", "BachGANOptions", "read_official_model", "write_official_model"]
