"""Official BachGAN checkpoints (Cold-Winter/BachGAN) ↔ our networks.

The official files are plain state dicts, ``<epoch>_net_G.pth`` / ``_D`` / ``_E`` (``latest_`` by
default), whose keys equal our modules' keys (the generator's unused legacy layers included), so
loading is a strict key-for-key load. The weights determine: C (semantic channels), ngf, SPADE's
kernel and hidden width, spectral norm, batch vs instance norm, VAE input and z size, the ``most``
upsampling mode, the legacy layers, and the whole discriminator and encoder. They cannot tell the
output width, the aspect ratio, ``normal`` vs ``more`` upsampling or k (the fusion shares its convs
over the k retrieved layouts; the official code fixes k = 3): the caller passes those.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spadekit.errors import CheckpointError
from spadekit.io import atomic_torch_save, safe_torch_load
from spadekit.methods.bachgan.generator import LEGACY_LAYERS, BachGANGenerator
from spadekit.models.discriminator import MultiscaleDiscriminator, PatchDiscriminator
from spadekit.models.encoder import ConvEncoder
from spadekit.models.trunk import latent_size
from spadekit.release import load_state_into

NETWORK_LETTERS = {"generator": "G", "discriminator": "D", "encoder": "E"}


def official_file(directory: Path, network: str, epoch: str = "latest") -> Path:
    """``<directory>/<epoch>_net_<G|D|E>.pth``."""
    return Path(directory) / f"{epoch}_net_{NETWORK_LETTERS[network]}.pth"


def read_official(path: Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors (``module.`` prefixes of DataParallel checkpoints removed)."""
    state = safe_torch_load(path)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}


def _need(state: dict[str, torch.Tensor], key: str, path: Path, what: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{path}: not {what} (no {key!r})")
    return state[key]


def infer_generator_options(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """:class:`BachGANGenerator` arguments that the weights determine."""
    what = "a BachGAN generator checkpoint"
    conv_img = _need(state, "conv_img.weight", path, what)
    shared = _need(state, "head_0.norm_0.mlp_shared.0.weight", path, what)
    fc = _need(state, "fc.weight", path, what)
    if "encode_shared.0.weight" not in state:
        raise CheckpointError(
            f"{path}: a SPADE generator without BachGAN's fusion layers (no 'encode_shared.0.weight'); "
            "convert it as a SPADE model instead"
        )
    most = any(k.startswith("up_4.") for k in state)
    options: dict[str, Any] = {
        "semantic_nc": int(shared.shape[1]),
        "ngf": int(conv_img.shape[1]) * (2 if most else 1),
        "spade_hidden": int(shared.shape[0]),
        "spade_kernel": int(shared.shape[-1]),
        "spectral": "head_0.conv_0.weight_orig" in state,
        "norm": "syncbatch" if "head_0.norm_0.param_free_norm.running_mean" in state else "instance",
        "use_vae": fc.dim() == 2,
        "legacy_layers": any(k.split(".")[0] in LEGACY_LAYERS for k in state),
    }
    if options["use_vae"]:
        options["z_dim"] = int(fc.shape[1])
    if most:
        options["upsampling"] = "most"
    return options


def infer_discriminator_options(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """Arguments of :class:`MultiscaleDiscriminator` (``multiscale`` True) or of one
    :class:`PatchDiscriminator` (the official ``--netD nlayer``)."""
    scales = sorted({k.split(".")[0] for k in state if k.startswith("discriminator_")})
    prefix = "discriminator_0." if scales else ""
    first = state.get(f"{prefix}model0.0.weight")
    if first is None:
        raise CheckpointError(f"{path}: not a SPADE/BachGAN discriminator checkpoint (no '{prefix}model0.0.weight')")
    blocks = {k[len(prefix) :].split(".")[0] for k in state if k.startswith(prefix + "model")}
    if any(k.endswith("running_mean") for k in state):
        norm = "batch"
    elif any(k.startswith(f"{prefix}model1.0.0.") for k in state):
        norm = "instance"
    else:
        norm = "none"
    return {
        "multiscale": bool(scales),
        "in_channels": int(first.shape[1]),
        "ndf": int(first.shape[0]),
        "num_D": max(len(scales), 1),
        "n_layers": len(blocks) - 1,
        "norm": norm,
        "spectral": any(k.endswith("weight_orig") for k in state),
    }


def infer_encoder_options(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """:class:`ConvEncoder` arguments that the weights determine."""
    what = "a SPADE image-encoder checkpoint"
    mu = _need(state, "fc_mu.weight", path, what)
    if not any(k.startswith("layer6.") for k in state):
        raise CheckpointError(f"{path}: an encoder without its sixth layer (the official code builds it only for crop sizes >= 256)")
    first = [v for k, v in state.items() if re.fullmatch(r"layer1(\.0)?\.weight(_orig)?", k)]
    if not first:
        raise CheckpointError(f"{path}: not {what} (no layer1 weight)")
    first = first[0]
    return {
        "ngf": int(first.shape[0]),
        "z_dim": int(mu.shape[0]),
        "norm": "batch" if any(k.endswith("running_mean") for k in state) else "instance",
        "spectral": any(k.endswith("weight_orig") for k in state),
    }


def build_discriminator(options: dict[str, Any]) -> nn.Module:
    """The discriminator described by :func:`infer_discriminator_options`-style options."""
    args = dict(ndf=options["ndf"], n_layers=options["n_layers"], norm=options["norm"], spectral=options["spectral"])
    if options.get("multiscale", True):
        return MultiscaleDiscriminator(options["in_channels"], num_D=options["num_D"], **args)
    return PatchDiscriminator(options["in_channels"], **args)


@dataclass
class OfficialBachGAN:
    """Networks converted from an official checkpoint directory, in eval mode, and the options used."""

    generator: BachGANGenerator
    discriminator: nn.Module | None = None
    encoder: ConvEncoder | None = None
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


def _fill_counters(network: nn.Module, state: dict[str, torch.Tensor]) -> None:
    # Some official sync batch norms have no step counter; ours always do (it is never read).
    for key, value in network.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)


def load_official(
    directory: str | Path,
    width: int,
    aspect_ratio: float = 1.0,
    upsampling: str = "normal",
    num_retrieved: int = 3,
    epoch: str = "latest",
) -> OfficialBachGAN:
    """Build our networks from the official files of ``directory`` and load them strictly.

    Args:
        width: the official ``crop_size`` (output width); aspect_ratio: width / height;
        upsampling: ``normal`` or ``more`` (``most`` is read from the weights).
        num_retrieved: k; epoch: the file prefix (``latest`` or an epoch number).
    The discriminator and encoder are loaded when their files are there.
    """
    directory = Path(directory)
    g_path = official_file(directory, "generator", epoch)
    if not g_path.is_file():
        raise CheckpointError(f"{g_path}: file not found (expected the official BachGAN generator checkpoint)")
    g_state = read_official(g_path)
    g_options = infer_generator_options(g_state, g_path)
    if upsampling == "most" and g_options.get("upsampling") != "most":
        raise CheckpointError(f"{g_path}: upsampling 'most' asked, but the weights have no up_4 block")
    g_options = {"width": width, "aspect_ratio": aspect_ratio, "upsampling": upsampling, "num_retrieved": num_retrieved} | g_options
    if g_options["use_vae"]:
        sw, sh = latent_size(width, aspect_ratio, g_options["upsampling"])
        expected = 16 * g_options["ngf"] * sw * sh
        if g_state["fc.weight"].shape[0] != expected:
            raise CheckpointError(
                f"{g_path}: the VAE input layer gives {g_state['fc.weight'].shape[0]} values, but width {width}, aspect "
                f"ratio {aspect_ratio} and '{g_options['upsampling']}' upsampling need a {sh}x{sw} start map ({expected})"
            )
    generator = BachGANGenerator(**g_options)
    _fill_counters(generator, g_state)
    load_state_into(generator, g_state, g_path)
    result = OfficialBachGAN(generator.eval(), options={"generator": g_options})

    d_path = official_file(directory, "discriminator", epoch)
    if d_path.is_file():
        d_state = read_official(d_path)
        d_options = infer_discriminator_options(d_state, d_path)
        if d_options["in_channels"] != g_options["semantic_nc"] + 3:
            raise CheckpointError(
                f"{d_path}: the discriminator takes {d_options['in_channels']} channels, the generator's box layout "
                f"has {g_options['semantic_nc']} (+3 for the image)"
            )
        result.discriminator = build_discriminator(d_options).eval()
        _fill_counters(result.discriminator, d_state)
        load_state_into(result.discriminator, d_state, d_path)
        result.options["discriminator"] = d_options

    e_path = official_file(directory, "encoder", epoch)
    if e_path.is_file():
        if not g_options["use_vae"]:
            raise CheckpointError(f"{e_path}: an encoder checkpoint next to a generator without VAE input")
        e_state = read_official(e_path)
        e_options = infer_encoder_options(e_state, e_path)
        result.encoder = ConvEncoder(**e_options).eval()
        load_state_into(result.encoder, e_state, e_path)
        result.options["encoder"] = e_options
    return result


def official_state(network: nn.Module, fill_legacy: bool = True) -> "OrderedDict[str, torch.Tensor]":
    """The state dict the official code saves for ``network`` (CPU tensors, spectral-norm metadata).

    A generator built without its legacy layers gets zero tensors in their place (after
    ``memory_shared``, where the official code has them) when ``fill_legacy``, so that loaders that
    expect every official key, such as a strict ``load_state_dict``, accept the file.
    """
    source = network.state_dict()
    state = OrderedDict((k, v.detach().cpu().clone()) for k, v in source.items())
    metadata = OrderedDict(getattr(source, "_metadata", {}) or {})
    if fill_legacy and isinstance(network, BachGANGenerator) and not network.legacy_layers:
        for name, (_, shape, bias) in LEGACY_LAYERS.items():
            state[f"{name}.weight"] = torch.zeros(shape)
            if bias:
                state[f"{name}.bias"] = torch.zeros(shape[0] if name != "upscore" else shape[1])
            metadata[name] = {"version": 1}
    state._metadata = metadata  # type: ignore[attr-defined]
    return state


def save_official(
    directory: str | Path,
    generator: BachGANGenerator,
    discriminator: nn.Module | None = None,
    encoder: ConvEncoder | None = None,
    epoch: str = "latest",
    fill_legacy: bool = True,
) -> list[Path]:
    """Write ``<epoch>_net_G.pth`` (and ``_D``, ``_E``) as the official code saves them; atomic."""
    written = []
    for name, network in (("generator", generator), ("discriminator", discriminator), ("encoder", encoder)):
        if network is None:
            continue
        target = official_file(Path(directory), name, epoch)
        atomic_torch_save(official_state(network, fill_legacy), target)
        written.append(target)
    return written


# ------------------------------------------------------------------------- official options


def _norm_g(text: str) -> dict[str, Any]:
    match = re.search(r"spade(\D+)(\d)x\d", text)
    if match is None:
        raise CheckpointError(f"norm_G {text!r} is not an official SPADE norm (e.g. spectralspadesyncbatch3x3)")
    norm = {"syncbatch": "syncbatch", "batch": "batch", "instance": "instance"}.get(match.group(1))
    if norm is None:
        raise CheckpointError(f"norm_G {text!r}: unknown parameter-free norm {match.group(1)!r}")
    return {"norm": norm, "spade_kernel": int(match.group(2)), "spectral": "spectral" in text}


def _norm_d(text: str) -> dict[str, Any]:
    spectral = text.startswith("spectral")
    sub = text[len("spectral") :] if spectral else text
    norm = {"": "none", "none": "none", "instance": "instance", "batch": "batch", "sync_batch": "syncbatch"}.get(sub)
    if norm is None:
        raise CheckpointError(f"norm_D {text!r}: unknown norm {sub!r}")
    return {"norm": norm, "spectral": spectral}


def options_from_official(opt: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Our constructor arguments from the official options (``vars(opt)``, e.g. a saved opt.json).

    Returns ``{"generator", "discriminator", "encoder", "objective", "layout"}`` argument dicts; widths are
    the options' (a checkpoint's shapes, read by :func:`load_official`, take precedence).
    """
    if not opt.get("retrival_memory", False):
        raise CheckpointError("only the released --retrival_memory mode of BachGAN is supported")
    semantic_nc = opt["label_nc"] + int(bool(opt.get("contain_dontcare_label"))) + int(not opt.get("no_instance", False))
    generator = {
        "semantic_nc": semantic_nc,
        "ngf": opt.get("ngf", 64),
        "width": opt["crop_size"],
        "aspect_ratio": float(opt.get("aspect_ratio", 1.0)),
        "upsampling": opt.get("num_upsampling_layers", "normal"),
        "use_vae": bool(opt.get("use_vae", False)),
        "z_dim": opt.get("z_dim", 256),
        "num_retrieved": 3,
        **_norm_g(opt.get("norm_G", "spectralspadesyncbatch3x3")),
    }
    discriminator = {
        "multiscale": opt.get("netD", "multiscale") == "multiscale",
        "in_channels": semantic_nc + opt.get("output_nc", 3),
        "ndf": opt.get("ndf", 64),
        "num_D": opt.get("num_D", 2) if opt.get("netD", "multiscale") == "multiscale" else 1,
        "n_layers": opt.get("n_layers_D", 4),
        **_norm_d(opt.get("norm_D", "spectralinstance")),
    }
    objective = {
        "gan_mode": opt.get("gan_mode", "hinge"),
        "feature_matching": not opt.get("no_ganFeat_loss", False),
        "lambda_feat": float(opt.get("lambda_feat", 10.0)),
        "lambda_vgg": 0.0 if opt.get("no_vgg_loss", False) else float(opt.get("lambda_vgg", 10.0)),
        "lambda_kld": float(opt.get("lambda_kld", 0.05)),
        "lambda_seg": 1.0 if opt.get("seg", False) else 0.0,
    }
    encoder = {"ngf": opt.get("ngf", 64), "z_dim": 256, **_norm_d(opt.get("norm_E", "spectralinstance"))}
    layout = {"dataset": opt.get("dataset_mode"), "num_classes": semantic_nc}
    return {"generator": generator, "discriminator": discriminator, "encoder": encoder, "objective": objective, "layout": layout}
