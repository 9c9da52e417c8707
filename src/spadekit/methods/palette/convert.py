"""Official Semantic Palette checkpoints ↔ spadekit networks.

The official trainers save plain state dicts named ``<label>_net_<n>.pth`` (or
``<label>_latest_net_<n>.pth``): ``seg_g`` / ``seg_d`` for the layout generator and critic (n = the
resolution with ``--s_save_at_every_res``, else an iteration), ``img_g`` for the image generator
(n = an epoch). Files are found by that pattern, never by a fixed name. Our modules use the official
keys, so loading is a strict plain load. The weights tell: block count (hence the largest
resolution), every width, class count, latent size, aspect ratio, joints per block, the ``affine``
joint type (``bias`` and ``linear`` have the same shapes: pass ``joint_type``), the palette-fed
critic (``original_cgan``) and, for the image generator, everything except its output size and the
``normal``/``more`` upsampling.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spadekit.errors import CheckpointError, ConfigError
from spadekit.io import atomic_torch_save, safe_torch_load
from spadekit.methods.palette.layout_discriminator import CGAN_CHANNELS, LayoutDiscriminator
from spadekit.methods.palette.layout_generator import JOINT_TYPES, LayoutGenerator
from spadekit.models.generator import SPADEGenerator

LABELS = {"layout_generator": "seg_g", "layout_discriminator": "seg_d", "image_generator": "img_g"}
_NAME = re.compile(r"^(?P<label>[a-z0-9_]+?)(?P<latest>_latest)?_net_(?P<n>\d+)\.pth$")


def find_checkpoints(directory: str | Path) -> dict[str, dict[int, Path]]:
    """Official checkpoint files in ``directory``: ``{label: {n: path}}`` for labels ``seg_g``,
    ``seg_d``, ``img_g`` (and any other ``<label>_net_<n>.pth``). A ``_net_<n>`` file wins over a
    ``_latest_net_<n>`` one with the same n, as in the official loader."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a directory")
    found: dict[str, dict[int, Path]] = {}
    for path in sorted(directory.iterdir()):
        match = _NAME.match(path.name)
        if not match or not path.is_file():
            continue
        per_label = found.setdefault(match["label"], {})
        n = int(match["n"])
        if n not in per_label or not match["latest"]:
            per_label[n] = path
    return found


def pick_checkpoint(found: dict[str, dict[int, Path]], label: str, n: int | None, directory: Path) -> Path | None:
    """The file of ``label`` numbered ``n`` (default: the largest n), or None when there is none."""
    candidates = found.get(label, {})
    if n is not None:
        if n not in candidates:
            have = ", ".join(str(k) for k in sorted(candidates)) or "none"
            raise CheckpointError(f"{directory}: no {label}_net_{n}.pth (found {label} numbers: {have})")
        return candidates[n]
    return candidates[max(candidates)] if candidates else None


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """A checkpoint's state dict (a ``module.`` prefix from a DDP wrapper is dropped)."""
    state = safe_torch_load(path)
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a state dict of tensors")
    return OrderedDict((k[len("module.") :] if k.startswith("module.") else k, v) for k, v in state.items())


def _need(state: Mapping[str, torch.Tensor], key: str, path: Path, what: str) -> torch.Tensor:
    if key not in state:
        raise CheckpointError(f"{path}: not a {what} checkpoint (no {key!r})")
    return state[key]


def _block_indices(state: Mapping[str, torch.Tensor], prefix: str = "blocks.") -> list[int]:
    return sorted({int(k[len(prefix) :].split(".")[0]) for k in state if k.startswith(prefix)})


def infer_layout_generator(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """Constructor arguments of :class:`LayoutGenerator` that the weights determine: ``num_semantics``,
    ``widths``, ``aspect_ratio``, ``joints_per_block``, ``in_features`` (latent + palette size) and
    ``affine`` (whether the joints are affine)."""
    what = "Semantic Palette layout generator"
    fc1 = _need(state, "blocks.0.fc1.weight", path, what)
    if any(".ins_conv." in k for k in state):
        raise CheckpointError(f"{path}: a panoptic layout generator (instance channels); only semantic layouts are supported")
    blocks = _block_indices(state)
    if blocks != list(range(len(blocks))):
        raise CheckpointError(f"{path}: generator blocks are not numbered 0..{len(blocks) - 1}")
    widths = [int(_need(state, f"blocks.{i}.conv2.weight", path, what).shape[0]) for i in blocks]
    num_semantics = int(_need(state, "blocks.0.cond_joint.to_mask.sem_conv.weight", path, what).shape[0])
    area = fc1.shape[0] // widths[0]
    if fc1.shape[0] % widths[0] or area % 16:
        raise CheckpointError(f"{path}: blocks.0.fc1.weight {tuple(fc1.shape)} is not widths[0]·4·4·aspect")
    joints = sorted({int(k.split(".")[4]) for k in state if k.startswith("blocks.0.cond_joint.assisted_blocks.")})
    affine = False
    if joints:
        conv1 = _need(state, "blocks.0.cond_joint.assisted_blocks.0.conv1.weight", path, what)
        if conv1.shape[1] != num_semantics:
            raise CheckpointError(
                f"{path}: joints read {conv1.shape[1]} channels but the masks have {num_semantics} "
                "(a things/stuff generator, which is not supported)"
            )
        affine = conv1.shape[0] == 2 * widths[0]
    _check_tied(state, path)
    return {
        "num_semantics": num_semantics,
        "widths": widths,
        "aspect_ratio": area // 16,
        "joints_per_block": len(joints),
        "in_features": int(fc1.shape[1]),
        "affine": affine,
    }


def _check_tied(state: Mapping[str, torch.Tensor], path: Path) -> None:
    """The joints of a block share the block's ``to_mask``: their copies must be identical."""
    for key, value in state.items():
        match = re.match(r"^(blocks\.\d+\.cond_joint\.)assisted_blocks\.\d+\.(to_mask\..+)$", key)
        if match:
            shared = match[1] + match[2]
            if shared in state and not torch.equal(state[shared], value):
                raise CheckpointError(f"{path}: {key} differs from {shared} (they are one tied module in the official network)")


def infer_layout_discriminator(state: Mapping[str, torch.Tensor], path: Path) -> dict[str, Any]:
    """Constructor arguments of :class:`LayoutDiscriminator` the weights determine: ``num_semantics``,
    ``widths``, ``final_width``, ``palette_input``."""
    what = "Semantic Palette layout critic"
    blocks = _block_indices(state)
    if not blocks or blocks != list(range(len(blocks))):
        raise CheckpointError(f"{path}: not a {what} checkpoint (no numbered blocks)")
    last = blocks[-1]
    fc3 = _need(state, f"blocks.{last}.fc3.weight", path, what)
    palette_input = "fc0.weight" in state
    from_mask = _need(state, f"blocks.{last}.from_mask.weight", path, what)
    num_semantics = int(from_mask.shape[1]) - (CGAN_CHANNELS if palette_input else 0)
    # Entry k of the list is the block at the (B-1-k)-th lowest resolution.
    widths = [int(_need(state, f"blocks.{k}.from_mask.weight", path, what).shape[0]) for k in reversed(blocks)]
    return {"num_semantics": num_semantics, "widths": widths, "final_width": int(fc3.shape[1]), "palette_input": palette_input}


def load_into(network: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Strict load with a one-line error naming the file and the first mismatch."""
    from spadekit.release import load_state_into

    load_state_into(network, dict(state), path)


def build_layout_generator(
    state: Mapping[str, torch.Tensor],
    path: Path,
    joint_type: str | None = None,
    activation: str = "assisted",
    conditional: bool = True,
    filter_small: bool = False,
    res: int | None = None,
) -> LayoutGenerator:
    """A :class:`LayoutGenerator` shaped by and loaded with the official state dict.

    ``joint_type`` is only needed for joints that are not affine (``bias``, the official default,
    when None); a value contradicting the weights is an error.
    """
    inferred = infer_layout_generator(state, path)
    if inferred["joints_per_block"]:
        if joint_type is None:
            joint_type = "affine" if inferred["affine"] else "bias"
        if joint_type not in JOINT_TYPES:
            raise ConfigError(f"unknown joint type {joint_type!r}; choose one of {', '.join(JOINT_TYPES)}")
        if (joint_type == "affine") != inferred["affine"]:
            raise CheckpointError(f"{path}: the joints' weights are {'affine' if inferred['affine'] else 'not affine'}, not {joint_type!r}")
    latent_dim = inferred["in_features"] - (inferred["num_semantics"] if conditional else 0)
    if latent_dim < 1:
        raise CheckpointError(f"{path}: blocks.0.fc1 takes {inferred['in_features']} inputs, too few for a conditional generator")
    generator = LayoutGenerator(
        num_semantics=inferred["num_semantics"],
        latent_dim=latent_dim,
        widths=inferred["widths"],
        aspect_ratio=inferred["aspect_ratio"],
        joints_per_block=inferred["joints_per_block"],
        joint_type=joint_type or "bias",
        activation=activation,
        conditional=conditional,
        filter_small=filter_small,
        res=res,
    )
    load_into(generator, state, path)
    return generator


def build_layout_discriminator(state: Mapping[str, torch.Tensor], path: Path, aspect_ratio: int) -> LayoutDiscriminator:
    """A :class:`LayoutDiscriminator` shaped by and loaded with the official state dict (the aspect
    ratio, a stride, is not in the weights: take the generator's)."""
    inferred = infer_layout_discriminator(state, path)
    critic = LayoutDiscriminator(aspect_ratio=aspect_ratio, **inferred)
    load_into(critic, state, path)
    return critic


def build_image_generator(
    state: Mapping[str, torch.Tensor],
    path: Path,
    width: int,
    aspect_ratio: float,
    upsampling: str = "normal",
) -> SPADEGenerator:
    """The official image stage (a GauGAN SPADE generator) as spadekit's :class:`SPADEGenerator`.

    ``width``: output image width (the official ``width_size`` = dim · aspect); ``upsampling``:
    ``normal`` (CelebA preset) or ``more`` (Cityscapes, IDD); ``most`` is read from the weights.
    """
    from spadekit.convert import infer_generator_options

    state = dict(state)
    options = infer_generator_options(state, path)
    semantic_nc = options.pop("_semantic_nc")
    batch_norm = options.pop("_batch_norm")
    if options.pop("upsampling", None) == "most":
        upsampling = "most"
    generator = SPADEGenerator(
        semantic_nc=semantic_nc,
        ngf=options["ngf"],
        width=width,
        aspect_ratio=aspect_ratio,
        upsampling=upsampling,
        norm="syncbatch" if batch_norm else "instance",
        spectral=options["spectral_G"],
        spade_kernel=options["spade_kernel"],
        spade_hidden=options["spade_hidden"],
        use_vae=options["use_vae"],
        z_dim=options.get("z_dim", 256),
    )
    if batch_norm and not any(k.endswith("num_batches_tracked") for k in state):
        for key, value in generator.state_dict().items():
            if key.endswith("num_batches_tracked"):
                state[key] = torch.zeros_like(value)
    load_into(generator, state, path)
    return generator


@dataclass
class OfficialPalette:
    """What :func:`load_official` found: the networks (critic / image generator may be None) and
    the numbers n of the files read."""

    layout_generator: LayoutGenerator
    layout_discriminator: LayoutDiscriminator | None = None
    image_generator: SPADEGenerator | None = None
    files: dict[str, Path] = field(default_factory=dict)


def load_official(
    directory: str | Path,
    seg_n: int | None = None,
    img_n: int | None = None,
    joint_type: str | None = None,
    activation: str = "assisted",
    conditional: bool = True,
    filter_small: bool = False,
    res: int | None = None,
    image_width: int | None = None,
    image_upsampling: str = "normal",
) -> OfficialPalette:
    """Load the official layout generator (required), critic and image generator found in ``directory``.

    Args:
        seg_n, img_n: which ``seg_*_net_<n>`` / ``img_g_net_<n>`` to read (default: the largest n).
        joint_type, activation, conditional, filter_small: what the weights cannot tell (the
            official ``joint_type``, ``cond_mode`` (``sem_assisted`` / ``weakly``), ``cond_seg`` and
            ``filter_cond``); defaults are the released models'.
        res: the layout resolution to run at (default: the n of ``seg_g_net_<n>`` when it is a
            resolution the generator has, else its largest).
        image_width, image_upsampling: the image generator's output width (default: the layout
            width at ``res``) and its ``normal``/``more`` upsampling.
    """
    directory = Path(directory)
    found = find_checkpoints(directory)
    g_path = pick_checkpoint(found, LABELS["layout_generator"], seg_n, directory)
    if g_path is None:
        raise CheckpointError(f"{directory}: no layout generator checkpoint (seg_g_net_<n>.pth)")
    n = int(_NAME.match(g_path.name)["n"])
    g_state = read_state(g_path)
    max_dim = 2 ** (len(_block_indices(g_state)) + 1)
    if res is None:
        res = n if 4 <= n <= max_dim and not n & (n - 1) else max_dim
    generator = build_layout_generator(g_state, g_path, joint_type, activation, conditional, filter_small, res)
    files = {"layout_generator": g_path}

    critic = None
    d_path = pick_checkpoint(found, LABELS["layout_discriminator"], n if n in found.get("seg_d", {}) else None, directory)
    if d_path is not None:
        critic = build_layout_discriminator(read_state(d_path), d_path, generator.aspect_ratio)
        if critic.num_semantics != generator.num_semantics or critic.max_dim != generator.max_dim:
            raise CheckpointError(
                f"{d_path}: critic for {critic.num_semantics} classes up to {critic.max_dim} does not match "
                f"{g_path.name} ({generator.num_semantics} classes up to {generator.max_dim})"
            )
        files["layout_discriminator"] = d_path

    image = None
    i_path = pick_checkpoint(found, LABELS["image_generator"], img_n, directory)
    if i_path is not None:
        width = image_width if image_width is not None else res * generator.aspect_ratio
        image = build_image_generator(read_state(i_path), i_path, width, generator.aspect_ratio, image_upsampling)
        if image.semantic_nc != generator.num_semantics:
            raise CheckpointError(
                f"{i_path}: the image generator takes {image.semantic_nc} channels, the layouts have {generator.num_semantics}"
            )
        files["image_generator"] = i_path
    return OfficialPalette(generator, critic, image, files)


def export_official(
    directory: str | Path,
    layout_generator: LayoutGenerator,
    layout_discriminator: LayoutDiscriminator | None = None,
    image_generator: SPADEGenerator | None = None,
    seg_n: int | None = None,
    img_n: int = 0,
) -> list[Path]:
    """Write ``seg_g_net_<seg_n>.pth`` (+ ``seg_d_net_<seg_n>.pth``, ``img_g_net_<img_n>.pth``) that
    the official code loads strictly (same keys, order and shapes). ``seg_n`` defaults to the
    generator's resolution, as ``--s_save_at_every_res`` names them."""
    directory = Path(directory)
    seg_n = layout_generator.res if seg_n is None else seg_n
    written = []
    parts = [("seg_g", layout_generator, seg_n), ("seg_d", layout_discriminator, seg_n), ("img_g", image_generator, img_n)]
    for label, network, n in parts:
        if network is None:
            continue
        state = network.state_dict()
        copy = OrderedDict((k, v.detach().cpu().clone()) for k, v in state.items())
        copy._metadata = getattr(state, "_metadata", None)  # keeps spectral-norm versions
        target = directory / f"{label}_net_{n}.pth"
        atomic_torch_save(copy, target)
        written.append(target)
    return written


def options_from_official(seg_opt: Mapping[str, Any]) -> dict[str, Any]:
    """Our arguments from an official layout-synthesizer option dict (``vars(opt)`` of the
    ``seg_generator`` options, e.g. an ``opt.json``): keys ``generator`` (for
    :func:`build_layout_generator`), ``objective`` (for :class:`~spadekit.methods.palette.objective.PaletteObjective`),
    ``res`` (the stage: ``seg_dim``) and ``soft_real`` (soften real layouts). Raises ConfigError for
    official options this package does not implement."""
    get = seg_opt.get
    unsupported = []
    if get("model", "progressive") != "progressive":
        unsupported.append(f"model {get('model')!r} (only 'progressive')")
    if get("seg_type", "generator") != "generator":
        unsupported.append(f"seg_type {get('seg_type')!r} (the partial-editing completor)")
    if get("panoptic") or get("cond_seg") in ("instance", "panoptic"):
        unsupported.append("panoptic / instance layouts")
    if get("things_stuff"):
        unsupported.append("things_stuff")
    if get("pseudo_supervision"):
        unsupported.append("pseudo_supervision")
    if unsupported:
        raise ConfigError(f"official options not supported: {'; '.join(unsupported)}")
    cond_mode = str(get("cond_mode", "sem_recover"))
    conditional = get("cond_seg") == "semantic"
    assisted = "sem_assisted" in cond_mode
    activation = ("weakly_assisted" if "weakly" in cond_mode else "assisted") if assisted else "softmax"
    if "ins_assisted" in cond_mode and not assisted:
        # Joints exist but the layout activation is the plain softmax; not a combination we build.
        raise ConfigError("official cond_mode with ins_assisted but not sem_assisted is not supported")
    return {
        "generator": {
            "joint_type": get("joint_type", "bias"),
            "activation": activation,
            "conditional": conditional,
            "filter_small": bool(get("filter_cond", False)),
        },
        "objective": {
            "discretization": get("discretization", "gumbel"),
            "temperature": float(get("t", 1.0)),
            "intermediate": "inter" in cond_mode,
            "entropy": "entropy" in cond_mode,
            "spread": "spread" in cond_mode,
            "recover": "sem_recover" in cond_mode,
            "ova_classes": list(get("ova_idx", []) or []),
            "lambda_ova": float(get("lambda_ova", 1.0)),
        },
        "res": int(get("seg_dim", get("max_dim", 128))),
        "soft_real": bool(get("soft_sem_seg", False)),
        "palette_critic": "original_cgan" in cond_mode,
    }
