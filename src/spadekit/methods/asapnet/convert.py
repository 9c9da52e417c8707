"""Official tamarott/ASAPNet checkpoints ↔ spadekit networks.

The official files are plain state dicts (``latest_net_G.pth``, ``latest_net_D.pth``) whose keys
equal our modules' keys (``lowres_stream.model.*``, ``discriminator_<i>.model<j>.*``), so
conversion is a strict load. Read from the weights: the input channels, ``lr_width``,
``lr_max_width``, ``lr_depth``, ``learned_ds_factor`` (the number of stride-2 convs), the norm
(none / instance / instanceaffine / batch) and spectral norm, ``--reflection_pad``, the parameters
per cell, and the whole discriminator (widths, hence ``ndf_max``, scales, layers, norm). From the
run's options (``opt.json`` values, official names; a missing key takes the official default):
``crop_size`` and ``aspect_ratio`` (they fix the tile size S), ``lr_instance``, ``hr_coor``,
``output_nc``, ``hr_width``/``hr_depth`` (checked against the parameter count, and inferred from it
when they disagree and only one pair fits), and how the input channels split into classes,
don't-care and the instance channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from spadekit.convert import read_official_state
from spadekit.errors import CheckpointError, ConfigError
from spadekit.io import atomic_torch_save, official_state
from spadekit.methods.asapnet.discriminator import ASAPNetDiscriminator
from spadekit.methods.asapnet.generator import ASAPNetGenerator, check_downsampling
from spadekit.methods.asapnet.pixelmlp import positional_channels
from spadekit.release import load_state_into

OFFICIAL_FILES = {"generator": "latest_net_G.pth", "discriminator": "latest_net_D.pth"}

# Official defaults (base options + the ASAPNet generator's and discriminator's overrides).
DEFAULTS: dict[str, Any] = {
    "crop_size": 512,
    "aspect_ratio": 1.0,
    "lr_instance": True,
    "hr_coor": "cosine",
    "hr_width": 64,
    "hr_depth": 5,
    "lr_max_width": 1024,
    "output_nc": 3,
    "norm_G": "instanceaffine",
    "norm_D": "spectralinstance",
    "ndf_max": 512,
    "contain_dontcare_label": False,
    "no_instance_edge": False,
    "no_instance_dist": True,
}

_LOWRES = "lowres_stream.model."


@dataclass
class OfficialASAPNet:
    """Networks rebuilt from an official checkpoint directory.

    ``kwargs[part]`` are the explicit constructor arguments each network was built with;
    ``options`` the resolved official options (label_nc, contain_dontcare_label, instance channel,
    crop_size, aspect_ratio, lr_instance, ...).
    """

    generator: ASAPNetGenerator
    discriminator: ASAPNetDiscriminator | None = None
    options: dict[str, Any] = field(default_factory=dict)
    kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)


def _conv_at(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, Any] | None:
    """The normalised conv whose keys start with ``prefix``: its weight shape, norm and spectral flag."""
    for wrapped, conv in ((False, prefix), (True, prefix + "0.")):
        for name in ("weight", "weight_orig"):
            if conv + name in state and state[conv + name].dim() == 4:
                if not wrapped:
                    norm = "none"
                elif prefix + "1.running_mean" in state:
                    norm = "batch"
                elif prefix + "1.weight" in state:
                    norm = "instanceaffine"
                else:
                    norm = "instance"
                return {"shape": tuple(state[conv + name].shape), "norm": norm, "spectral": name == "weight_orig"}
    return None


def _official_batch_name(norm_string: str) -> str:
    return "syncbatch" if "sync" in norm_string else "batch"


def _mlp_size(in_channels: int, width: int, depth: int, out_channels: int) -> int:
    channels = [in_channels] + [width] * (depth - 1) + [out_channels]
    return sum(nco + nci * nco for nci, nco in zip(channels[:-1], channels[1:]))


def generator_options(state: Mapping[str, torch.Tensor], path: Path, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(constructor kwargs of :class:`ASAPNetGenerator`, resolved official options) for a G state dict."""
    opt = {**DEFAULTS, **options}
    indices = sorted({int(k[len(_LOWRES) :].split(".", 1)[0]) for k in state if k.startswith(_LOWRES)})
    if not indices:
        raise CheckpointError(f"{path}: not an ASAPNet generator checkpoint (no lowres_stream.model.* keys)")
    final = state.get(f"{_LOWRES}{indices[-1]}.weight")
    if final is None or final.dim() != 4 or final.shape[-2:] != (1, 1):
        raise CheckpointError(f"{path}: not an ASAPNet generator checkpoint (the last low-res layer is not the 1×1 parameter predictor)")
    convs, blocks = [], []
    for index in indices[:-1]:
        prefix = f"{_LOWRES}{index}."
        inner = {k[len(prefix) :].split(".")[1] for k in state if k.startswith(prefix + "conv_block.")}
        if inner:
            blocks.append(_conv_at(state, f"{prefix}conv_block.{max(inner)}."))
        else:
            convs.append(_conv_at(state, prefix))
    if not convs or any(c is None for c in convs + blocks):
        raise CheckpointError(f"{path}: unrecognised ASAPNet low-res stream layout")
    first = convs[0]
    steps = len(convs) - 1
    semantic_nc = first["shape"][1]
    norm = first["norm"]
    if norm == "batch":
        norm = _official_batch_name(str(opt["norm_G"]))
    positional = opt["hr_coor"] not in (None, "None")
    lr_instance = bool(opt["lr_instance"])
    kwargs: dict[str, Any] = {
        "semantic_nc": semantic_nc,
        "width": int(opt["crop_size"]),
        "aspect_ratio": float(opt["aspect_ratio"]),
        "learned_downsampling": 2**steps,
        "lr_width": first["shape"][0],
        "lr_max_width": convs[-1]["shape"][0] if steps else int(opt["lr_max_width"]),
        "lr_depth": len(blocks),
        "hr_width": int(opt["hr_width"]),
        "hr_depth": int(opt["hr_depth"]),
        "positional": positional,
        "lr_instance": lr_instance,
        "output_nc": int(opt["output_nc"]),
        "norm": norm,
        "spectral": first["spectral"],
        "reflection_pad": indices[0] == 1,  # a ReflectionPad2d (no parameters) holds index 0
    }
    try:
        s = check_downsampling(kwargs["width"], kwargs["aspect_ratio"], kwargs["learned_downsampling"])
    except ConfigError as exc:
        raise CheckpointError(f"{path}: {exc} (crop_size and aspect_ratio come from the run's options)") from None
    hr_in = semantic_nc - int(lr_instance) + (positional_channels(s) if positional else 0)
    num_params = final.shape[0]
    if _mlp_size(hr_in, kwargs["hr_width"], kwargs["hr_depth"], kwargs["output_nc"]) != num_params:
        fits = [
            (w, d)
            for d in range(1, 17)
            for w in range(1, 2049)
            if _mlp_size(hr_in, w, d, kwargs["output_nc"]) == num_params and (d > 1 or w == 1)
        ]
        if len(fits) != 1:
            raise CheckpointError(
                f"{path}: the low-res stream predicts {num_params} parameters per cell, but hr_width "
                f"{kwargs['hr_width']}, hr_depth {kwargs['hr_depth']} with {hr_in} pixel inputs (crop_size "
                f"{kwargs['width']}, aspect_ratio {kwargs['aspect_ratio']}, lr_instance {lr_instance}, hr_coor "
                f"{opt['hr_coor']}) need {_mlp_size(hr_in, kwargs['hr_width'], kwargs['hr_depth'], kwargs['output_nc'])}; "
                "pass the run's options"
            )
        kwargs["hr_width"], kwargs["hr_depth"] = fits[0]
    instance = not (bool(opt["no_instance_edge"]) and bool(opt["no_instance_dist"]))
    dontcare = bool(opt["contain_dontcare_label"])
    classes = semantic_nc - int(instance)
    if "label_nc" in options and int(options["label_nc"]) + int(dontcare) != classes:
        raise CheckpointError(
            f"{path}: the weights take {semantic_nc} input channels but label_nc {options['label_nc']} + "
            f"don't-care {dontcare} + instance channel {instance} gives {int(options['label_nc']) + int(dontcare) + int(instance)}"
        )
    resolved = {
        "label_nc": classes - int(dontcare),
        "contain_dontcare_label": dontcare,
        "no_instance_edge": bool(opt["no_instance_edge"]),
        "no_instance_dist": bool(opt["no_instance_dist"]),
        "crop_size": kwargs["width"],
        "aspect_ratio": kwargs["aspect_ratio"],
        "lr_instance": lr_instance,
        "hr_coor": "cosine" if positional else None,
    }
    return kwargs, resolved


def discriminator_options(state: Mapping[str, torch.Tensor], path: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor kwargs of :class:`ASAPNetDiscriminator` for an official D state dict."""
    opt = {**DEFAULTS, **options}
    scales = sorted({k.split(".")[0] for k in state if k.startswith("discriminator_")})
    first = state.get("discriminator_0.model0.0.weight")
    if not scales or first is None:
        raise CheckpointError(f"{path}: not a multi-scale discriminator checkpoint (no discriminator_0.model0.0.weight)")
    blocks = sorted({int(k.split(".")[1][len("model") :]) for k in state if k.startswith("discriminator_0.model")})
    n_layers = len(blocks) - 1
    middle = [_conv_at(state, f"discriminator_0.model{j}.0.") for j in range(1, n_layers)]
    if any(m is None for m in middle):
        raise CheckpointError(f"{path}: unrecognised discriminator layout")
    widths = [first.shape[0]] + [m["shape"][0] for m in middle]
    capped = [w for prev, w in zip(widths, widths[1:]) if w < 2 * prev]
    max_channels = capped[0] if capped else max(int(opt["ndf_max"]), max(widths))
    norm, spectral = (middle[0]["norm"], middle[0]["spectral"]) if middle else ("instance", True)
    if norm == "batch":
        norm = _official_batch_name(str(opt["norm_D"]))
    return {
        "in_channels": first.shape[1],
        "ndf": first.shape[0],
        "num_D": len(scales),
        "n_layers": n_layers,
        "max_channels": max_channels,
        "norm": norm,
        "spectral": spectral,
    }


def load_official(directory: str | Path, options: Mapping[str, Any] | None = None) -> OfficialASAPNet:
    """Build and strictly load the networks of an official ASAPNet checkpoint directory.

    Args:
        directory: holds ``latest_net_G.pth`` and optionally ``latest_net_D.pth``.
        options: the run's official options (``opt.json`` values); see the module docstring.
    Returns:
        :class:`OfficialASAPNet` in eval mode.
    """
    options = dict(options or {})
    if options.get("use_vae"):
        raise ConfigError("ASAPNet's official generator has no latent input: use_vae is not supported")
    directory = Path(directory)
    g_path = directory / OFFICIAL_FILES["generator"]
    if not g_path.is_file():
        raise CheckpointError(f"{g_path}: file not found (expected the official generator checkpoint)")
    g_state = read_official_state(g_path)
    g_kwargs, resolved = generator_options(g_state, g_path, options)
    try:
        generator = ASAPNetGenerator(**g_kwargs)
    except (ConfigError, ValueError) as exc:
        raise CheckpointError(f"{g_path}: {exc}") from None
    load_state_into(generator, g_state, g_path)
    result = OfficialASAPNet(generator=generator.eval(), options=resolved, kwargs={"generator": g_kwargs})
    d_path = directory / OFFICIAL_FILES["discriminator"]
    if d_path.is_file():
        d_state = read_official_state(d_path)
        d_kwargs = discriminator_options(d_state, d_path, options)
        discriminator = ASAPNetDiscriminator(**d_kwargs)
        load_state_into(discriminator, d_state, d_path)
        result.discriminator, result.kwargs["discriminator"] = discriminator.eval(), d_kwargs
    return result


def save_official(directory: str | Path, generator: ASAPNetGenerator, discriminator: nn.Module | None = None) -> list[Path]:
    """Write ``latest_net_G.pth`` (and ``latest_net_D.pth``) files that the official code loads."""
    directory = Path(directory)
    written = []
    for part, network in (("generator", generator), ("discriminator", discriminator)):
        if network is None:
            continue
        target = directory / OFFICIAL_FILES[part]
        atomic_torch_save(official_state(network), target)
        written.append(target)
    return written
