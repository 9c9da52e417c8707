"""Official OASIS checkpoints (boschresearch/OASIS) ↔ our networks.

The official files are plain state dicts saved as ``<iter>_G.pth``, ``<iter>_EMA.pth`` and
``<iter>_D.pth`` (``<iter>`` a number, ``latest`` or ``best``) in ``checkpoints/<name>/models/``.
Their keys equal our modules' keys, so loading is a strict ``load_state_dict``. Every structural
option is read from the tensors: widths, SPADE kernel and hidden width, the parameter-free norm,
the D widths. What the tensors cannot separate — N and z_dim share G's input channels — comes from
D's output layer when D is there, else from the run's ``opt.txt``, else from the caller.
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
from spadekit.methods.oasis.discriminator import OasisDiscriminator
from spadekit.methods.oasis.generator import NUM_BLOCKS, OasisGenerator, generator_widths

KINDS = ("G", "EMA", "D")
# Official dataset_mode → semantic_nc (class 0 = dontcare included), used when only G is given.
DATASET_SEMANTIC_NC = {"ade20k": 151, "cityscapes": 35, "coco": 183}


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """An official state dict (safe load); a ``module.`` prefix (DataParallel) is dropped."""
    state = safe_torch_load(path)
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _need(state: dict[str, torch.Tensor], key: str, path: Path, what: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{path}: not an OASIS {what} checkpoint (no {key!r})")
    return state[key]


def infer_generator_options(
    state: dict[str, torch.Tensor], path: Path, semantic_nc: int | None = None, z_dim: int | None = None
) -> dict[str, Any]:
    """Constructor arguments of :class:`OasisGenerator` for an official G / EMA state dict.

    ``semantic_nc`` or ``z_dim`` must be given (or both) to split G's input channels N + z_dim.
    """
    conv_img = _need(state, "conv_img.weight", path, "generator")
    fc = _need(state, "fc.weight", path, "generator")
    shared = _need(state, "body.0.norm_0.mlp_shared.0.weight", path, "generator")
    last = f"body.{NUM_BLOCKS - 1}.conv_1.weight_orig"
    _need(state, last, path, "generator (6 spectral-normed blocks)")
    if f"body.{NUM_BLOCKS}.conv_0.weight_orig" in state:
        raise CheckpointError(f"{path}: has more than {NUM_BLOCKS} residual blocks; official OASIS has exactly {NUM_BLOCKS}")
    channels = conv_img.shape[1]
    if fc.shape[0] != generator_widths(channels)[0]:
        raise CheckpointError(f"{path}: fc has {fc.shape[0]} outputs but conv_img implies {generator_widths(channels)[0]} (channels_G={channels})")
    cond_nc = fc.shape[1]
    if semantic_nc is None and z_dim is None:
        raise CheckpointError(
            f"{path}: cannot split the generator's {cond_nc} input channels into classes + noise; "
            "give the number of classes (semantic_nc) or z_dim, or convert together with the D checkpoint"
        )
    if semantic_nc is None:
        semantic_nc = cond_nc - z_dim
    if z_dim is None:
        z_dim = cond_nc - semantic_nc
    if semantic_nc < 1 or z_dim < 0 or semantic_nc + z_dim != cond_nc:
        raise CheckpointError(
            f"{path}: the generator takes {cond_nc} input channels, which is not semantic_nc={semantic_nc} + z_dim={z_dim}"
        )
    running = "body.0.norm_0.first_norm.running_mean"
    if running not in state:
        norm = "instance"
    else:
        # Official syncbatch never counts batches; nn.BatchNorm2d ("batch") does.
        counter = state.get("body.0.norm_0.first_norm.num_batches_tracked")
        norm = "batch" if counter is not None and int(counter) > 0 else "syncbatch"
    return {
        "semantic_nc": semantic_nc,
        "channels": channels,
        "z_dim": z_dim if z_dim > 0 else 64,
        "noise": z_dim > 0,
        "norm": norm,
        "spade_kernel": shared.shape[-1],
        "spade_hidden": shared.shape[0],
    }


def infer_discriminator_options(state: dict[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """Constructor arguments of :class:`OasisDiscriminator` for an official D state dict."""
    last = _need(state, "layer_up_last.weight", path, "discriminator")
    widths = [3]
    for i in range(NUM_BLOCKS):
        conv = _need(state, f"body_down.{i}.conv1.{0 if i == 0 else 1}.weight_orig", path, "discriminator")
        widths.append(conv.shape[0])
    _need(state, f"body_up.{NUM_BLOCKS - 1}.conv2.1.weight_orig", path, "discriminator")
    return {"semantic_nc": last.shape[0] - 1, "widths": tuple(widths), "last_width": last.shape[1]}


def _load_strict(network: nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[0]!r})")
        raise CheckpointError(f"{path}: does not fit the inferred {type(network).__name__}: {'; '.join(parts)}")
    for key, value in expected.items():
        if state[key].shape != value.shape:
            raise CheckpointError(f"{path}: {key} has shape {tuple(state[key].shape)}, expected {tuple(value.shape)}")
    network.load_state_dict(state, strict=True)


def build_generator(state: dict[str, torch.Tensor], path: Path, semantic_nc: int | None = None, z_dim: int | None = None) -> OasisGenerator:
    """An :class:`OasisGenerator` built from the options the state implies, with the state loaded."""
    network = OasisGenerator(**infer_generator_options(state, path, semantic_nc, z_dim))
    _load_strict(network, state, path)
    return network


def build_discriminator(state: dict[str, torch.Tensor], path: Path) -> OasisDiscriminator:
    network = OasisDiscriminator(**infer_discriminator_options(state, path))
    _load_strict(network, state, path)
    return network


def read_official_options(directory: Path) -> dict[str, str]:
    """``key: value`` pairs of the run's ``opt.txt`` (beside ``models/`` or in the folder); {} if none."""
    for candidate in (directory / "opt.txt", directory.parent / "opt.txt"):
        if candidate.is_file():
            options = {}
            for line in candidate.read_text(errors="replace").splitlines():
                match = re.match(r"\s*(\w+):\s(\S*)", line)
                if match:
                    options[match.group(1)] = match.group(2)
            return options
    return {}


def find_official_files(directory: str | Path, which: str | None = None) -> dict[str, Path]:
    """The ``G``/``EMA``/``D`` files of one checkpoint in ``directory`` (or its ``models/``).

    ``which``: ``latest``, ``best``, an iteration number, or ``""`` for bare ``G.pth``/``D.pth``;
    None picks latest, then best, then the highest iteration, then bare names.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a directory")
    if not any(directory.glob("*.pth")) and (directory / "models").is_dir():
        directory = directory / "models"
    pattern = re.compile(r"^(?:(.+)_)?(G|EMA|D)\.pth$")
    found: dict[str, dict[str, Path]] = {}
    for path in directory.iterdir():
        match = pattern.match(path.name)
        if match and path.is_file():
            found.setdefault(match.group(1) or "", {})[match.group(2)] = path
    if which is None:
        numbers = sorted((p for p in found if p.isdigit()), key=int)
        order = ["latest", "best", *reversed(numbers), ""]
        which = next((p for p in order if p in found), None)
        if which is None:
            raise CheckpointError(f"{directory}: no official OASIS checkpoint (<iter>_G.pth, _EMA.pth, _D.pth)")
    if which not in found:
        raise CheckpointError(f"{directory}: no OASIS checkpoint {which or '(bare G.pth/D.pth)'!r}; found {sorted(found) or 'none'}")
    return found[which]


@dataclass
class OfficialOasis:
    """Networks read from an official checkpoint; ``generator`` is the EMA one when available and asked for."""

    generator: OasisGenerator
    raw_generator: OasisGenerator | None
    ema: OasisGenerator | None
    discriminator: OasisDiscriminator | None
    files: dict[str, Path] = field(default_factory=dict)


def load_official_oasis(
    directory: str | Path,
    which: str | None = None,
    prefer_ema: bool = True,
    semantic_nc: int | None = None,
    z_dim: int | None = None,
) -> OfficialOasis:
    """Read the official G, EMA and D files of one checkpoint (those present), strictly loaded.

    ``semantic_nc``/``z_dim`` override what D's output layer or ``opt.txt`` say.
    """
    files = find_official_files(directory, which)
    states = {kind: read_state(path) for kind, path in files.items()}
    if "G" not in states and "EMA" not in states:
        raise CheckpointError(f"{Path(directory)}: no generator file (<iter>_G.pth or <iter>_EMA.pth) for this checkpoint")
    discriminator = build_discriminator(states["D"], files["D"]) if "D" in states else None
    options = read_official_options(next(iter(files.values())).parent)
    if semantic_nc is None and discriminator is not None:
        semantic_nc = discriminator.semantic_nc
    if semantic_nc is None and options.get("dataset_mode") in DATASET_SEMANTIC_NC:
        semantic_nc = DATASET_SEMANTIC_NC[options["dataset_mode"]]
    if z_dim is None and options.get("z_dim", "").isdigit():
        z_dim = 0 if options.get("no_3dnoise") == "True" else int(options["z_dim"])
    nets = {kind: build_generator(states[kind], files[kind], semantic_nc, z_dim) for kind in ("G", "EMA") if kind in states}
    if semantic_nc is not None and discriminator is not None and discriminator.semantic_nc != semantic_nc:
        raise CheckpointError(f"{files['D']}: D predicts {discriminator.semantic_nc} + 1 classes, but semantic_nc={semantic_nc} was given")
    main = nets.get("EMA") if prefer_ema and "EMA" in nets else nets.get("G", nets.get("EMA"))
    return OfficialOasis(main, nets.get("G"), nets.get("EMA"), discriminator, files)


def _unwrap(network: nn.Module) -> nn.Module:
    # DDP / DataParallel keep the network in .module, torch.compile in ._orig_mod.
    while True:
        inner = getattr(network, "module", None)
        if not isinstance(inner, nn.Module):
            inner = getattr(network, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return network
        network = inner


def official_state(network: nn.Module) -> OrderedDict:
    """A state dict as the official code saves it: official key order, float32 CPU tensors."""
    state = _unwrap(network).state_dict()
    out = OrderedDict(
        (k, (v.detach().float() if v.is_floating_point() else v.detach()).cpu().contiguous().clone()) for k, v in state.items()
    )
    # Keep the per-module version metadata torch.save records, so BatchNorm loads without warnings.
    metadata = getattr(state, "_metadata", None)
    if metadata is not None:
        out._metadata = metadata
    return out


def write_official_oasis(
    directory: str | Path,
    generator: nn.Module | None = None,
    discriminator: nn.Module | None = None,
    ema: nn.Module | None = None,
    which: str = "latest",
) -> list[Path]:
    """Write ``<which>_G.pth`` / ``_D.pth`` / ``_EMA.pth`` for the networks given (atomically).

    The official ``test.py`` loads ``<ckpt_iter>_EMA.pth`` (``_G.pth`` with ``--no_EMA``), so pass the
    release generator as ``ema`` for inference with the official code.
    """
    directory = Path(directory)
    written = []
    for kind, network, cls in (("G", generator, OasisGenerator), ("D", discriminator, OasisDiscriminator), ("EMA", ema, OasisGenerator)):
        if network is None:
            continue
        if not isinstance(_unwrap(network), cls):
            raise TypeError(f"{kind}: expected an {cls.__name__}, got {type(_unwrap(network)).__name__}")
        path = directory / (f"{which}_{kind}.pth" if which else f"{kind}.pth")
        atomic_torch_save(official_state(network), path)
        written.append(path)
    if not written:
        raise ValueError("nothing to write: give a generator, discriminator or ema")
    return written
