"""Official NVlabs/SPADE checkpoints ↔ spadekit release models.

The official files are plain state dicts (``latest_net_G.pth``, ``_D``, ``_E``) whose keys match
our modules one to one. Widths, channel count, VAE, spectral norm, SPADE kernel and the ``most``
upsampling mode are read from the weights; the layout the weights cannot tell (output width,
aspect ratio, ``normal`` vs ``more``, which channels are don't-care / instance) comes from the preset.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from spadekit.config import load_config
from spadekit.conversion import CheckpointFormat, register_format
from spadekit.errors import CheckpointError, ConfigError
from spadekit.io import atomic_torch_save, safe_torch_load
from spadekit.release import SpadeModel, load_state_into

OFFICIAL_FILES = {"generator": "latest_net_G.pth", "discriminator": "latest_net_D.pth", "encoder": "latest_net_E.pth"}


def read_official_state(path: Path) -> dict[str, torch.Tensor]:
    """An official checkpoint file's state dict (``module.`` prefixes dropped); CheckpointError naming
    the file when it is not a state dict of tensors. Shared by the converters of the SPADE family."""
    state = safe_torch_load(path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    # Checkpoints saved from a DataParallel/DDP wrapper carry a "module." prefix.
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


_read_official = read_official_state  # the earlier private name, kept for the converters that use it


def _need(state: dict[str, torch.Tensor], key: str, path: Path) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{path}: not a SPADE generator checkpoint (no {key!r})")
    return state[key]


def infer_generator_options(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """Model options that the generator's weights determine."""
    conv_img = _need(state, "conv_img.weight", path)
    shared = _need(state, "head_0.norm_0.mlp_shared.0.weight", path)
    fc = _need(state, "fc.weight", path)
    most = any(k.startswith("up_4.") for k in state)
    final_nc = conv_img.shape[1]
    options: dict[str, Any] = {
        "ngf": final_nc * 2 if most else final_nc,
        "spade_hidden": shared.shape[0],
        "spade_kernel": shared.shape[-1],
        "spectral_G": "head_0.conv_0.weight_orig" in state,
        "use_vae": fc.dim() == 2,
    }
    if options["use_vae"]:
        options["z_dim"] = fc.shape[1]
    if most:
        options["upsampling"] = "most"
    options["_semantic_nc"] = shared.shape[1]
    options["_batch_norm"] = "head_0.norm_0.param_free_norm.running_mean" in state
    return options


def infer_discriminator_options(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    scales = sorted({k.split(".")[0] for k in state if k.startswith("discriminator_")})
    if not scales or "discriminator_0.model0.0.weight" not in state:
        raise CheckpointError(f"{path}: not a SPADE multi-scale discriminator checkpoint")
    blocks = {k.split(".")[1] for k in state if k.startswith("discriminator_0.")}
    return {
        "ndf": state["discriminator_0.model0.0.weight"].shape[0],
        "num_D": len(scales),
        "n_layers_D": len(blocks) - 1,
        "spectral_D": any(k.endswith("weight_orig") for k in state),
        "norm_D": "batch" if any(k.endswith("running_mean") for k in state) else "instance",
    }


def convert_official(
    directory: str | Path,
    preset: str = "custom",
    overrides: list[str] | None = None,
) -> SpadeModel:
    """Build a :class:`SpadeModel` from official checkpoint files in ``directory``."""
    from spadekit.models import build_networks

    directory = Path(directory)
    g_path = directory / OFFICIAL_FILES["generator"]
    if not g_path.is_file():
        raise CheckpointError(f"{g_path}: file not found (expected the official generator checkpoint)")
    g_state = _read_official(g_path)
    inferred = infer_generator_options(g_state, g_path)
    semantic_nc = inferred.pop("_semantic_nc")
    batch_norm = inferred.pop("_batch_norm")

    base = load_config(preset, overrides)
    model_options = base.model.__dict__.copy()
    model_options.update(inferred)
    if batch_norm and model_options["norm_G"] == "instance":
        model_options["norm_G"] = "syncbatch"
    if not batch_norm:
        model_options["norm_G"] = "instance"
    extra = int(model_options["contain_dontcare"]) + int(model_options["use_instance"])
    model_options["label_nc"] = semantic_nc - extra
    if model_options["label_nc"] < 1:
        raise CheckpointError(f"{g_path}: {semantic_nc} semantic channels cannot hold the preset's extra channels")
    if semantic_nc != base.model.semantic_nc and preset != "custom":
        # A mismatched preset would otherwise give a model that silently shifts every class.
        raise CheckpointError(
            f"{g_path}: the weights take {semantic_nc} semantic channels but preset {preset!r} has "
            f"{base.model.semantic_nc}; pick the right preset or set model.label_nc / contain_dontcare / use_instance"
        )

    d_path = directory / OFFICIAL_FILES["discriminator"]
    d_state = _read_official(d_path) if d_path.is_file() else None
    if d_state is not None:
        model_options.update(infer_discriminator_options(d_state, d_path))
    e_path = directory / OFFICIAL_FILES["encoder"]
    e_state = _read_official(e_path) if e_path.is_file() else None
    if e_state is not None and not model_options["use_vae"]:
        raise CheckpointError(f"{e_path}: an encoder checkpoint next to a generator without VAE input")

    config_dict = base.to_dict()
    config_dict["model"] = model_options
    from spadekit.config import config_from_dict

    try:
        config = config_from_dict(config_dict)
    except ConfigError as exc:
        raise CheckpointError(f"{g_path}: {exc}") from None
    generator, discriminator, encoder = build_networks(config.model, init=False)
    if batch_norm and "head_0.norm_0.param_free_norm.num_batches_tracked" not in g_state:
        # The official sync batch norm of some versions has no counter; ours always does.
        for key, value in generator.state_dict().items():
            if key.endswith("num_batches_tracked"):
                g_state[key] = torch.zeros_like(value)
    load_state_into(generator, g_state, g_path)
    if d_state is not None:
        load_state_into(discriminator, d_state, d_path)
    if e_state is not None and encoder is not None:
        load_state_into(encoder, e_state, e_path)
    return SpadeModel(
        config=config,
        generator=generator,
        discriminator=discriminator if d_state is not None else None,
        encoder=encoder if e_state is not None else None,
    ).eval()


def export_official(model: SpadeModel, directory: str | Path) -> list[Path]:
    """Write ``latest_net_{G,D,E}.pth`` state dicts that the official code loads."""
    if model.config.method != "spade" or model.config.model.generator != "spade":
        raise ConfigError(
            f"only SPADE generators have the official SPADE format (this model is {model.config.method}/"
            f"{model.config.model.generator}; `spadekit convert --help` lists each method's format)"
        )
    if model.config.model.latent_spade:
        raise ConfigError("model.latent_spade is spadekit's own: the official SPADE code has no latent in its SPADE layers")
    directory = Path(directory)
    written = []
    for name, network in model.networks().items():
        state = OrderedDict((k, v.detach().cpu().clone()) for k, v in network.state_dict().items())
        state._metadata = getattr(network.state_dict(), "_metadata", None)  # keeps spectral-norm versions
        target = directory / OFFICIAL_FILES[name]
        atomic_torch_save(state, target)
        written.append(target)
    return written


def options_from_file(path: Path) -> tuple[str, list[str], list[str]]:
    """``spadekit convert official --opt FILE``: the official run's options → (preset, overrides, notes)."""
    from spadekit.official_options import official_overrides, official_preset, read_official_options, unrecognised_options

    opt = read_official_options(path)
    unknown = unrecognised_options(opt)
    notes = [f"not official SPADE options, ignored: {', '.join(unknown)}"] if unknown else []
    return official_preset(opt), official_overrides(opt), notes


register_format(
    CheckpointFormat(
        name="official",
        method="spade",
        description="NVlabs/SPADE checkpoints (NVIDIA's pretrained models and the official training code)",
        files="latest_net_G.pth (+ latest_net_D.pth, latest_net_E.pth)",
        read=lambda directory, preset, overrides: convert_official(directory, preset or "custom", overrides=overrides),
        detect=lambda directory: (Path(directory) / OFFICIAL_FILES["generator"]).is_file(),
        write=export_official,
        options_from_file=options_from_file,
        priority=-1,  # any folder with latest_net_G.pth: CLADE's, ASAPNet's and BachGAN's share the file names
    )
)
