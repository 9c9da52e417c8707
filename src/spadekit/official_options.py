"""The official SPADE command-line options (``opt.txt`` of a run, or a JSON dict of them) → spadekit config.

Every option of the official code (base, train and test options plus the generator, discriminator
and dataset additions) is accounted for below: either it maps onto a spadekit setting, or it has no
effect on the networks and their outputs (bookkeeping, display, data file lists) and is ignored.
Values that spadekit cannot reproduce (a discriminator other than the multi-scale PatchGAN, other
residual-block kernels for the pix2pixHD baseline, ...) raise :class:`~spadekit.errors.ConfigError`
naming the option rather than giving a different network.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

from spadekit.errors import ConfigError

PRESETS = {"coco": "coco", "ade20k": "ade20k", "cityscapes": "cityscapes"}
"""dataset_mode → spadekit preset; any other dataset (custom, facades) → ``custom``."""
FORMATS = {"coco": "coco", "ade20k": "ade20k", "cityscapes": "cityscapes", "custom": "folder", "facades": "folder"}

IGNORED = frozenset(
    {
        # run bookkeeping, devices, display and logging
        "name", "gpu_ids", "checkpoints_dir", "model", "phase", "isTrain", "display_winsize", "display_freq",
        "print_freq", "save_latest_freq", "save_epoch_freq", "no_html", "debug", "tf_log", "continue_train",
        "which_epoch", "results_dir", "how_many", "load_from_opt_file",
        # where the data lives and how its file lists are cached (spadekit: --data and its own scan)
        "dataroot", "label_dir", "image_dir", "instance_dir", "cache_filelist_write", "cache_filelist_read",
        "serial_batches", "max_dataset_size", "nThreads", "coco_no_portraits", "no_pairing_check",
        # initialisation only decides the first weights of a new run, never a converted model's outputs
        "init_type", "init_variance",
        # declared by the official code but read nowhere (the encoder's width is ngf)
        "nef",
        # derived from the others (checked below)
        "semantic_nc",
    }
)
"""Official options with no effect on a converted model's networks or outputs."""

MAPPED = frozenset(
    {
        "label_nc", "contain_dontcare_label", "no_instance", "output_nc", "netG", "ngf", "norm_G", "crop_size",
        "aspect_ratio", "num_upsampling_layers", "use_vae", "z_dim", "resnet_n_downsample", "resnet_n_blocks",
        "resnet_kernel_size", "resnet_initial_kernel_size", "netD", "netD_subarch", "ndf", "num_D", "n_layers_D",
        "norm_D", "norm_E", "gan_mode", "lambda_feat", "lambda_vgg", "lambda_kld", "no_ganFeat_loss", "no_vgg_loss",
        "dataset_mode", "preprocess_mode", "load_size", "no_flip", "batchSize", "niter", "niter_decay", "lr",
        "beta1", "beta2", "no_TTUR", "optimizer", "D_steps_per_G",
    }
)
"""Options that become spadekit settings (or are refused when spadekit cannot honour their value)."""


def unrecognised_options(opt: Mapping[str, Any]) -> list[str]:
    """Keys of ``opt`` that are not options of the official code (e.g. from a fork): ignored."""
    return sorted(set(opt) - MAPPED - IGNORED)


_SPADE_NORM = re.compile(r"^spade(\D+)(\d)x\d$")
_PLAIN_NORMS = {"instance": "instance", "batch": "batch", "sync_batch": "syncbatch", "none": "none", "": "none"}


def read_official_options(path: str | Path) -> dict[str, Any]:
    """The options of an official run: ``opt.txt`` as the official code writes it, or a JSON object."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the options file ({exc.strerror})") from None
    if text.lstrip().startswith("{"):
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a JSON object of options")
        return values
    values = {}
    for line in text.splitlines():
        if ":" not in line or line.startswith("-"):
            continue  # the ----- Options ----- frame
        key, _, rest = line.partition(":")
        values[key.strip()] = _scalar(rest.split("\t[default:")[0].strip())
    if not values:
        raise ConfigError(f"{path}: no 'key: value' lines; expected the official opt.txt")
    return values


def _scalar(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def official_preset(opt: Mapping[str, Any]) -> str:
    """The spadekit preset matching the run's ``dataset_mode``."""
    return PRESETS.get(str(opt.get("dataset_mode", "custom")), "custom")


def _plain_norm(option: str, value: str) -> tuple[bool, str]:
    """(spectral, norm) of a non-SPADE norm string such as ``spectralinstance`` or ``sync_batch``."""
    spectral = value.startswith("spectral")
    rest = value[len("spectral"):] if spectral else value
    if rest not in _PLAIN_NORMS:
        raise ConfigError(f"{option}={value!r}: unknown normalisation {rest!r} (expected instance, batch, sync_batch or none)")
    return spectral, _PLAIN_NORMS[rest]


def official_overrides(opt: Mapping[str, Any]) -> list[str]:
    """Dotted spadekit overrides (``section.key=value``) equivalent to the official options ``opt``.

    Options missing from ``opt`` keep the preset's values; keys that are not official options
    (e.g. notes stored beside them) are ignored.
    """
    out: dict[str, Any] = {}

    def has(key: str) -> bool:
        return key in opt and opt[key] is not None

    def need(key: str, allowed: tuple, what: str) -> None:
        if has(key) and opt[key] not in allowed:
            raise ConfigError(f"{key}={opt[key]!r}: spadekit has {what} only ({', '.join(map(str, allowed))})")

    need("output_nc", (3,), "RGB outputs")
    need("netD", ("multiscale",), "the multi-scale discriminator")
    need("netD_subarch", ("n_layer",), "the n-layer PatchGAN")
    need("netG", ("spade", "pix2pixhd"), "these generators")
    need("optimizer", ("adam",), "the Adam optimiser")
    need("D_steps_per_G", (1,), "one discriminator step per generator step")
    need("gan_mode", ("hinge", "ls", "original", "w"), "these GAN losses")
    generator = str(opt.get("netG", "spade"))

    # -- networks
    simple = {
        "label_nc": "model.label_nc", "contain_dontcare_label": "model.contain_dontcare", "ngf": "model.ngf",
        "ndf": "model.ndf", "crop_size": "model.width", "aspect_ratio": "model.aspect_ratio",
        "num_upsampling_layers": "model.upsampling", "use_vae": "model.use_vae", "z_dim": "model.z_dim",
        "num_D": "model.num_D", "n_layers_D": "model.n_layers_D",
        "resnet_n_downsample": "model.baseline_downsampling", "resnet_n_blocks": "model.baseline_blocks",
    }
    for key, target in simple.items():
        if has(key):
            out[target] = opt[key]
    out["model.generator"] = generator
    if has("no_instance"):
        out["model.use_instance"] = not opt["no_instance"]
    if has("norm_G"):
        value = str(opt["norm_G"])
        if generator == "spade":
            # SPADE blocks: spectral norm when the string contains "spectral"; the rest is spade<norm><k>x<k>.
            parsed = _SPADE_NORM.match(value.replace("spectral", ""))
            if parsed is None:
                raise ConfigError(f"norm_G={value!r}: expected [spectral]spade<instance|batch|syncbatch><k>x<k>")
            norm, kernel = parsed.group(1), int(parsed.group(2))
            if norm not in ("instance", "batch", "syncbatch"):
                raise ConfigError(f"norm_G={value!r}: unknown parameter-free norm {norm!r} (instance, batch or syncbatch)")
            out.update({"model.norm_G": norm, "model.spade_kernel": kernel, "model.spectral_G": "spectral" in value})
        else:
            spectral, norm = _plain_norm("norm_G", value)
            if spectral or norm not in ("instance", "batch"):
                raise ConfigError(f"norm_G={value!r}: the pix2pixHD baseline has instance or batch norm without spectral norm")
            out["model.norm_G"] = norm
    if generator == "pix2pixhd":
        need("resnet_kernel_size", (3,), "3x3 residual blocks in the pix2pixHD baseline")
        need("resnet_initial_kernel_size", (7,), "a 7x7 first convolution in the pix2pixHD baseline")
    for key, part in (("norm_D", "D"), ("norm_E", "E")):
        if has(key):
            spectral, norm = _plain_norm(key, str(opt[key]))
            out[f"model.norm_{part}"], out[f"model.spectral_{part}"] = norm, spectral

    # -- losses
    if has("gan_mode"):
        out["loss.gan_mode"] = opt["gan_mode"]
    for key in ("lambda_feat", "lambda_vgg", "lambda_kld"):
        if has(key):
            out[f"loss.{key}"] = opt[key]
    if has("no_ganFeat_loss"):
        out["loss.feature_matching"] = not opt["no_ganFeat_loss"]
    if opt.get("no_vgg_loss"):
        out["loss.lambda_vgg"] = 0.0

    # -- data
    if has("dataset_mode"):
        out["data.format"] = FORMATS.get(str(opt["dataset_mode"]), "folder")
    for key, target in (("preprocess_mode", "data.preprocess"), ("load_size", "data.load_size"),
                        ("crop_size", "data.crop_size"), ("no_flip", "data.no_flip")):
        if has(key):
            out[target] = opt[key]

    # -- training (the official code always uses opt.beta1/beta2, with or without TTUR)
    for key, target in (("batchSize", "train.batch_size"), ("niter", "train.epochs"), ("niter_decay", "train.epochs_decay"),
                        ("lr", "train.lr"), ("beta1", "train.beta1"), ("beta2", "train.beta2")):
        if has(key):
            out[target] = opt[key]
    if has("no_TTUR"):
        out["train.ttur"] = not opt["no_TTUR"]

    if has("semantic_nc") and has("label_nc"):
        expected = int(opt["label_nc"]) + int(bool(opt.get("contain_dontcare_label"))) + int(not opt.get("no_instance", False))
        if int(opt["semantic_nc"]) != expected:
            raise ConfigError(f"semantic_nc={opt['semantic_nc']} does not follow from label_nc, contain_dontcare_label and no_instance ({expected})")
    return [f"{key}={_yaml(value)}" for key, value in out.items()]


def _yaml(value: Any) -> str:
    """A value as the override parser (YAML scalars) reads it back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else repr(value)
