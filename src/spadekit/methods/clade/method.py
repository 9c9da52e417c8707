"""CLADE as a registered method: its config section, networks, objective, checks and checkpoint format.

CLADE shares SPADE's whole setup except the normalisation layers: the shared ``model`` section
(``ngf``, ``width``, ``upsampling``, ``norm_G``, ``spectral_G``, ``use_vae`` ...) means the same, the
discriminator and encoder are SPADE's (``model.discriminator=multiscale``), and so are the losses.
The ``clade:`` section turns on ICPE (``clade.icpe``), whose intra-class offset maps come from the
data pipeline (``data.offsets``; see :mod:`spadekit.data.offsets` for the one deliberate difference
from the paper's loader, the flip axis).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spadekit.config import Config, config_from_dict, load_config
from spadekit.conversion import CheckpointFormat, register_format, resolve_official_options
from spadekit.errors import CheckpointError, ConfigError
from spadekit.io import atomic_write_text, checkpoint_keys
from spadekit.methods import register_method
from spadekit.methods.base import Batch, Method, layout_batch
from spadekit.methods.clade.convert import OFFICIAL_FILES, load_official, save_official
from spadekit.methods.clade.fast import FastCLADEGenerator
from spadekit.methods.clade.generator import CLADEGenerator
from spadekit.methods.spade import networks
from spadekit.models.registry import register
from spadekit.objective import SpadeObjective


@dataclass
class CladeOptions:
    """The ``clade:`` config section."""

    icpe: bool = False
    """CLADE-ICPE (the official ``--add_dist``): the class scales and shifts are modulated by each
    pixel's offset from the centre of its class region. Training reads the maps from the data
    pipeline, so it needs ``data.offsets`` (``normalized``, the paper's); inference computes them from
    the label map when they are not given."""


def offsets_ignore_index(config: Config) -> int | None:
    """The class index (as the generator sees it) of the raw label value without offsets."""
    raw, m = config.data.offsets_ignore, config.model
    if raw is None:
        return None
    if raw == 255:  # the don't-care value on disk
        return 0 if config.data.label_offset else (m.label_nc if m.contain_dontcare else None)
    return raw + config.data.label_offset


@register("generator", "clade", "CLADE generator (Tan et al. 2021): per-class scale/shift lookups in place of SPADE's modulation (+ ICPE)")
def _generator(config: Config) -> nn.Module:
    m = config.model
    return CLADEGenerator(
        num_classes=m.label_nc + int(m.contain_dontcare),
        ngf=m.ngf,
        width=m.width,
        aspect_ratio=m.aspect_ratio,
        upsampling=m.upsampling,
        norm=m.norm_G,
        spectral=m.spectral_G,
        use_instance=m.use_instance,
        use_dist=config.section("clade").icpe,
        use_vae=m.use_vae,
        z_dim=m.z_dim,
        offsets_normalize=config.data.offsets != "pixels",
        offsets_ignore=offsets_ignore_index(config),
    )


class CladeObjective(SpadeObjective):
    """SPADE's objective; the ICPE offset maps of the batch go to the generator."""

    def generator_inputs(self, batch: Batch) -> dict[str, torch.Tensor]:
        dist = batch.extras.get("dist")
        return {"dist": dist} if dist is not None else {}


def objective(parts: dict[str, nn.Module], config: Config, vgg: nn.Module | None) -> CladeObjective:
    return CladeObjective(
        parts["generator"], parts["discriminator"], parts.get("encoder"), config.loss, vgg, global_batch=config.train.batch_size
    )


def prepare_batch(raw: dict, config: Config, device: torch.device | str, non_blocking: bool = False) -> Batch:
    """:func:`layout_batch`, plus the items' offset maps as ``extras["dist"]`` for CLADE-ICPE."""
    batch = layout_batch(raw, config, device, non_blocking)
    if config.section("clade").icpe and "offsets" in raw:
        batch.extras["dist"] = raw["offsets"].to(device, non_blocking=non_blocking)
    return batch


def fast_generator(generator: nn.Module, config: Config, channels_last: bool) -> nn.Module | None:
    if not isinstance(generator, CLADEGenerator):
        return None
    return FastCLADEGenerator.from_generator(generator, channels_last=channels_last)


def validate(config: Config) -> None:
    m = config.model
    if m.generator != "clade":
        raise ConfigError("method clade uses model.generator=clade (its discriminator and encoder are SPADE's)")
    if config.section("clade").icpe and config.data.offsets == "none":
        raise ConfigError(
            "clade.icpe=true trains on intra-class offset maps: set data.offsets=normalized (the paper's maps) or pixels"
        )


# ----------------------------------------------------------------------------- official checkpoints

PRESET_BY_CLASSES = {151: "clade-ade20k", 35: "clade-cityscapes", 183: "clade-coco"}
CLASS_KEY = "head_0.norm_0.class_specified_affine.weight"


def official_options(config: Config) -> dict[str, Any]:
    """The official option values a config implies (those the weights cannot tell)."""
    m = config.model
    return {
        "crop_size": m.width,
        "aspect_ratio": m.aspect_ratio,
        "num_upsampling_layers": m.upsampling,
        "label_nc": m.label_nc,
        "contain_dontcare_label": m.contain_dontcare,
        "no_instance": not m.use_instance,
        "norm_G": f"{'spectral' if m.spectral_G else ''}spade{m.norm_G}3x3",
    }


def default_preset(directory: Path) -> str:
    """The preset of an official folder's class count (the generator's class tables, read memory-mapped)."""
    path = Path(directory) / OFFICIAL_FILES["generator"]
    try:
        rows = int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)[CLASS_KEY].shape[0])
    except Exception:  # noqa: BLE001  (load_official reports a bad file with its own message)
        return "clade-custom"
    return PRESET_BY_CLASSES.get(rows, "clade-custom")


def read_official(directory: Path, preset: str | None, overrides: list[str]):
    """An official CLADE checkpoint folder → a release model (G, and D / E when present)."""
    from spadekit.release import SpadeModel, load_state_into

    directory = Path(directory)
    explicit_preset = preset is not None
    preset = preset or default_preset(directory)
    official = load_official(directory, resolve_official_options(directory, preset, overrides, explicit_preset, official_options))
    if not isinstance(official.generator, CLADEGenerator):
        raise CheckpointError(
            f"{directory / OFFICIAL_FILES['generator']}: has SPADE layers (--norm_mode spade), not CLADE's: "
            "read it with `spadekit convert official`"
        )
    g, o = official.kwargs["generator"], official.options
    base = load_config(preset, overrides)
    if base.method != "clade":
        raise CheckpointError(f"{directory}: preset {preset!r} is not a CLADE preset (`spadekit list`)")
    values = base.to_dict()
    values["model"].update(
        generator="clade", label_nc=o["label_nc"], contain_dontcare=o["contain_dontcare_label"],
        use_instance=g["use_instance"], ngf=g["ngf"], width=g["width"], aspect_ratio=g["aspect_ratio"],
        upsampling=g["upsampling"], norm_G=g["norm"], spectral_G=g["spectral"], use_vae=g["use_vae"], z_dim=g["z_dim"],
    )
    values["clade"] = {**values.get("clade", {}), "icpe": g["use_dist"]}
    if g["use_dist"] and values["data"]["offsets"] == "none":
        values["data"]["offsets"] = "normalized"
    semantic_nc = g["num_classes"] + int(g["use_instance"])
    if official.discriminator is not None:
        d = official.kwargs["discriminator"]
        if d["in_channels"] != semantic_nc + 3:
            raise CheckpointError(
                f"{directory / OFFICIAL_FILES['discriminator']}: takes {d['in_channels']} channels, the generator's "
                f"semantics + image are {semantic_nc + 3}"
            )
        values["model"].update(ndf=d["ndf"], num_D=d["num_D"], n_layers_D=d["n_layers"], norm_D=d["norm"], spectral_D=d["spectral"])
    if official.encoder is not None:
        e = official.kwargs["encoder"]
        if e["ngf"] != g["ngf"] or e["z_dim"] != g["z_dim"]:
            raise CheckpointError(
                f"{directory / OFFICIAL_FILES['encoder']}: width {e['ngf']} / z {e['z_dim']} differ from the generator's "
                f"{g['ngf']} / {g['z_dim']} (spadekit's encoder shares model.ngf and model.z_dim)"
            )
        values["model"].update(norm_E=e["norm"], spectral_E=e["spectral"])
    try:
        config = config_from_dict(values)
    except ConfigError as exc:
        raise CheckpointError(f"{directory}: {exc}") from None
    parts = networks(config, init=False)
    kept = {}
    for name in ("generator", "discriminator", "encoder"):
        source = getattr(official, name)
        if source is not None:
            load_state_into(parts[name], source.state_dict(), directory / OFFICIAL_FILES[name])
            kept[name] = parts[name]
    return SpadeModel.from_parts(config, kept, {"converted_from": "official CLADE checkpoint"}).eval()


def write_official(model, directory: Path) -> list[Path]:
    """A release model → ``latest_net_G.pth`` (+ ``_D``, ``_E``) that the official code loads with
    ``--norm_mode clade`` (+ ``--add_dist``), and ``opt.json`` with the options the weights cannot tell."""
    import json

    if model.config.method != "clade":
        raise ConfigError(f"to-clade needs a CLADE model (this one is {model.config.method})")
    directory = Path(directory)
    written = save_official(directory, model.generator, model.discriminator, model.encoder)
    m = model.config.model
    options = {
        **official_options(model.config),
        "norm_mode": "clade",
        "add_dist": model.config.section("clade").icpe,
        "use_vae": m.use_vae,
        "z_dim": m.z_dim,
        "ngf": m.ngf,
    }
    atomic_write_text(directory / "opt.json", json.dumps(options, indent=1) + "\n")
    return [*written, directory / "opt.json"]


def detect_official(directory: Path) -> bool:
    return CLASS_KEY in checkpoint_keys(Path(directory) / OFFICIAL_FILES["generator"])


register_format(
    CheckpointFormat(
        name="clade",
        method="clade",
        description="tzt101/CLADE checkpoints (CLADE and CLADE-ICPE)",
        files="latest_net_G.pth (+ latest_net_D.pth, latest_net_E.pth; opt.json / opt.txt with the run's options)",
        read=read_official,
        detect=detect_official,
        write=write_official,
        default_preset="by class count: clade-ade20k (151), clade-cityscapes (35), clade-coco (183), else clade-custom",
    )
)

CLADE_METHOD = register_method(
    Method(
        name="clade",
        title="CLADE",
        paper="Tan, Chen, Chu, Chai, Liao, He, Yuan, Hua, Yu: Efficient Semantic Image Synthesis via Class-Adaptive "
        "Normalization (TPAMI 2021)",
        summary="SPADE with each modulation network replaced by a per-class lookup of scale and shift (about a quarter "
        "of SPADE's generator FLOPs); ICPE adds intra-class positional maps; SPADE's D, E and losses",
        needs="label maps (+ instance maps); VGG19 ImageNet weights only for the perceptual term (optional)",
        parity="exact: official G (eval/train, buffers, per-block outputs), D and E of tzt101/CLADE",
        build_networks=networks,
        build_objective=objective,
        options=CladeOptions,
        prepare_batch=prepare_batch,
        fast_generator=fast_generator,
        validate=validate,
        toy_preset="clade-toy",
        tiny_overrides=(
            "model.ngf=4", "model.ndf=8", "model.width=64", "model.use_vae=false",
            "clade.icpe=true", "data.offsets=normalized", "data.offsets_ignore=null",
            "data.crop_size=64", "data.load_size=72", "data.toy_scenes=8", "train.batch_size=2",
        ),
    )
)

__all__ = ["CLADE_METHOD", "CladeOptions", "CladeObjective", "read_official", "write_official"]
