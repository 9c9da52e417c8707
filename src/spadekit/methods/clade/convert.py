"""Official tzt101/CLADE checkpoints ↔ spadekit networks.

The official files are plain state dicts (``latest_net_G.pth``, ``_D``, ``_E``) whose keys equal our
modules' keys, so conversion is a strict load. Everything the weights determine is read from them:
CLADE vs SPADE layers (``--norm_mode``), class count, instance channel, ICPE (``--add_dist``),
widths, spectral norm, batch vs instance norm, VAE and z size, ``most`` upsampling, and the
discriminator's and encoder's structure. The rest comes from the run's options (the ``opt.json`` /
``opt.txt`` values, official names; a missing key takes the official default): ``crop_size``,
``aspect_ratio``, ``num_upsampling_layers`` (``normal`` vs ``more``), and how the class channels
split into ``label_nc`` + don't-care. The discriminator is SPADE's and the encoder SPADE's
(:mod:`spadekit.models`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from spadekit.convert import infer_discriminator_options, read_official_state
from spadekit.errors import CheckpointError
from spadekit.io import atomic_torch_save, official_state
from spadekit.methods.clade.generator import CLADEGenerator
from spadekit.models.discriminator import MultiscaleDiscriminator
from spadekit.models.encoder import ConvEncoder
from spadekit.models.generator import SPADEGenerator
from spadekit.release import load_state_into

OFFICIAL_FILES = {"generator": "latest_net_G.pth", "discriminator": "latest_net_D.pth", "encoder": "latest_net_E.pth"}

# The official defaults of the options the weights do not determine (base_options + SPADEGenerator).
DEFAULTS: dict[str, Any] = {
    "crop_size": 512,
    "aspect_ratio": 1.0,
    "num_upsampling_layers": "normal",
    "norm_G": "spectralspadesyncbatch3x3",
    "contain_dontcare_label": False,
}


@dataclass
class OfficialCLADE:
    """Networks rebuilt from an official checkpoint directory.

    ``kwargs[part]`` are the explicit constructor arguments each network was built with;
    ``options`` the resolved official options (label_nc, contain_dontcare_label, no_instance,
    add_dist, use_vae, norm_mode, crop_size, aspect_ratio, num_upsampling_layers).
    """

    generator: CLADEGenerator | SPADEGenerator
    discriminator: MultiscaleDiscriminator | None = None
    encoder: ConvEncoder | None = None
    options: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _param_free_norm(norm_G: str, batch_like: bool) -> str:
    """Our parameter-free norm name: the weights tell batch vs instance, the option string batch vs syncbatch."""
    match = re.search(r"spade(\D+)(\d)x\d", norm_G.replace("spectral", ""))
    named = match.group(1) if match else "syncbatch"
    if batch_like:
        return named if named in ("batch", "syncbatch") else "syncbatch"
    return "instance"


def generator_options(state: Mapping[str, torch.Tensor], path: Path, options: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(``"clade"`` or ``"spade"``, constructor kwargs, resolved official options) for a generator state dict."""
    opt = {**DEFAULTS, **options}
    if "conv_img.weight" not in state or "fc.weight" not in state:
        raise CheckpointError(f"{path}: not a CLADE/SPADE generator checkpoint (no conv_img.weight / fc.weight)")
    clade = "head_0.norm_0.class_specified_affine.weight" in state
    if not clade and "head_0.norm_0.mlp_shared.0.weight" not in state:
        raise CheckpointError(f"{path}: not a CLADE generator checkpoint (no head_0.norm_0.class_specified_affine.weight)")
    most = any(k.startswith("up_4.") for k in state)
    upsampling = "most" if most else str(opt["num_upsampling_layers"])
    if upsampling == "most" and not most:
        raise CheckpointError(f"{path}: the options say num_upsampling_layers 'most' but the weights have no up_4 block")
    final_nc = state["conv_img.weight"].shape[1]
    fc = state["fc.weight"]
    use_vae = fc.dim() == 2
    batch_like = "head_0.norm_0.param_free_norm.running_mean" in state
    common = {
        "ngf": final_nc * 2 if most else final_nc,
        "width": int(opt["crop_size"]),
        "aspect_ratio": float(opt["aspect_ratio"]),
        "upsampling": upsampling,
        "norm": _param_free_norm(str(opt["norm_G"]), batch_like),
        "spectral": "head_0.conv_0.weight_orig" in state,
        "use_vae": use_vae,
        "z_dim": fc.shape[1] if use_vae else int(opt.get("z_dim", 256)),
    }
    if clade:
        num_classes = state["head_0.norm_0.class_specified_affine.weight"].shape[0]
        use_instance = "head_0.norm_0.inst_conv.weight" in state
        use_dist = "head_0.norm_0.class_specified_affine.dist_conv_w.weight" in state
        kwargs = {"num_classes": num_classes, **common, "use_instance": use_instance, "use_dist": use_dist}
        if not use_vae and fc.shape[1] != num_classes + int(use_instance):
            raise CheckpointError(f"{path}: fc takes {fc.shape[1]} channels but the class tables have {num_classes} rows (+instance {use_instance})")
    else:
        shared = state["head_0.norm_0.mlp_shared.0.weight"]
        semantic_nc = shared.shape[1]
        kwargs = {"semantic_nc": semantic_nc, **common, "spade_kernel": shared.shape[-1], "spade_hidden": shared.shape[0]}
        # Which SPADE channel is the instance map the weights cannot say: the options can.
        use_instance = not bool(opt.get("no_instance", False))
        num_classes = semantic_nc - int(use_instance)
        use_dist = False
    resolved = _resolve_classes(num_classes, opt, options, path)
    resolved.update(
        norm_mode="clade" if clade else "spade",
        no_instance=not use_instance,
        add_dist=use_dist,
        use_vae=use_vae,
        crop_size=common["width"],
        aspect_ratio=common["aspect_ratio"],
        num_upsampling_layers=upsampling,
    )
    return ("clade" if clade else "spade"), kwargs, resolved


def _resolve_classes(num_classes: int, opt: Mapping[str, Any], given: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """label_nc and the don't-care flag; the weights fix their sum, an explicit contradiction is an error."""
    dontcare = bool(opt["contain_dontcare_label"])
    if "label_nc" in given and int(given["label_nc"]) + int(dontcare) != num_classes:
        raise CheckpointError(
            f"{path}: the weights have {num_classes} class channels but label_nc {given['label_nc']} "
            f"+ don't-care {dontcare} gives {int(given['label_nc']) + int(dontcare)}"
        )
    return {"label_nc": num_classes - int(dontcare), "contain_dontcare_label": dontcare}


def discriminator_options(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """Constructor kwargs of SPADE's :class:`MultiscaleDiscriminator` for an official D state dict."""
    inferred = infer_discriminator_options(dict(state), path)
    first_middle = "discriminator_0.model1.0"
    if f"{first_middle}.weight" in state or f"{first_middle}.weight_orig" in state:
        inferred["norm_D"] = "none"  # the conv is not wrapped with a norm layer
    return {
        "in_channels": state["discriminator_0.model0.0.weight"].shape[1],
        "ndf": inferred["ndf"],
        "num_D": inferred["num_D"],
        "n_layers": inferred["n_layers_D"],
        "norm": inferred["norm_D"],
        "spectral": inferred["spectral_D"],
    }


def encoder_options(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """Constructor kwargs of SPADE's :class:`ConvEncoder` for an official E state dict."""
    if "fc_mu.weight" not in state:
        raise CheckpointError(f"{path}: not a VAE encoder checkpoint (no fc_mu.weight)")
    if not any(k.startswith("layer6.") for k in state):
        raise CheckpointError(f"{path}: the encoder has no layer6 (trained with crop_size < 256, which the official code cannot run)")
    spectral = "layer1.0.weight_orig" in state
    first = state["layer1.0.weight_orig" if spectral else "layer1.0.weight"]
    norm = "batch" if "layer1.1.running_mean" in state else "instance"
    return {"ngf": first.shape[0], "z_dim": state["fc_mu.weight"].shape[0], "norm": norm, "spectral": spectral}


def _add_missing_counters(network: nn.Module, state: dict[str, torch.Tensor]) -> None:
    # Some official sync batch norm versions have no step counter; ours always does (its value is unused).
    for key, value in network.state_dict().items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)


def load_official(directory: str | Path, options: Mapping[str, Any] | None = None) -> OfficialCLADE:
    """Build and strictly load the networks of an official CLADE checkpoint directory.

    Args:
        directory: holds ``latest_net_G.pth`` and optionally ``latest_net_D.pth`` / ``latest_net_E.pth``.
        options: the run's official options (``opt.json`` values); see the module docstring.
    Returns:
        :class:`OfficialCLADE` in eval mode.
    """
    options = dict(options or {})
    directory = Path(directory)
    g_path = directory / OFFICIAL_FILES["generator"]
    if not g_path.is_file():
        raise CheckpointError(f"{g_path}: file not found (expected the official generator checkpoint)")
    g_state = read_official_state(g_path)
    kind, g_kwargs, resolved = generator_options(g_state, g_path, options)
    try:
        generator: nn.Module = CLADEGenerator(**g_kwargs) if kind == "clade" else SPADEGenerator(**g_kwargs)
    except ValueError as exc:
        raise CheckpointError(f"{g_path}: {exc}") from None
    if g_kwargs["use_vae"]:
        expected = generator.fc.out_features
        if g_state["fc.weight"].shape[0] != expected:
            raise CheckpointError(
                f"{g_path}: fc maps z to {g_state['fc.weight'].shape[0]} values but crop_size {g_kwargs['width']}, "
                f"aspect_ratio {g_kwargs['aspect_ratio']} and '{g_kwargs['upsampling']}' upsampling need {expected}"
            )
    _add_missing_counters(generator, g_state)
    load_state_into(generator, g_state, g_path)
    result = OfficialCLADE(generator=generator.eval(), options=resolved, kwargs={"generator": g_kwargs})

    d_path = directory / OFFICIAL_FILES["discriminator"]
    if d_path.is_file():
        d_state = read_official_state(d_path)
        d_kwargs = discriminator_options(d_state, d_path)
        discriminator = MultiscaleDiscriminator(**d_kwargs)
        _add_missing_counters(discriminator, d_state)
        load_state_into(discriminator, d_state, d_path)
        result.discriminator, result.kwargs["discriminator"] = discriminator.eval(), d_kwargs
    e_path = directory / OFFICIAL_FILES["encoder"]
    if e_path.is_file():
        if not g_kwargs["use_vae"]:
            raise CheckpointError(f"{e_path}: an encoder checkpoint next to a generator without VAE input")
        e_state = read_official_state(e_path)
        e_kwargs = encoder_options(e_state, e_path)
        encoder = ConvEncoder(**e_kwargs)
        _add_missing_counters(encoder, e_state)
        load_state_into(encoder, e_state, e_path)
        result.encoder, result.kwargs["encoder"] = encoder.eval(), e_kwargs
    return result


def save_official(
    directory: str | Path,
    generator: nn.Module,
    discriminator: nn.Module | None = None,
    encoder: nn.Module | None = None,
) -> list[Path]:
    """Write ``latest_net_{G,D,E}.pth`` files that the official code loads (same keys, shapes and order)."""
    directory = Path(directory)
    written = []
    for part, network in (("generator", generator), ("discriminator", discriminator), ("encoder", encoder)):
        if network is None:
            continue
        target = directory / OFFICIAL_FILES[part]
        atomic_torch_save(official_state(network), target)
        written.append(target)
    return written
