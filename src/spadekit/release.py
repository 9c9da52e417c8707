"""Release models: a directory with ``config.json`` and one ``<part>.safetensors`` per network
(``generator``, plus ``discriminator`` / ``encoder`` / a method's own parts when present), the data
files a method's model carries (``assets``, e.g. BachGAN's memory bank, listed in ``config.json``),
and :func:`load_model`.

The config travels with the weights, so a model of any method is rebuilt from its own directory
with no flags: ``config.method`` names the method whose builders make the networks.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from spadekit.config import Config, config_from_dict
from spadekit.errors import CheckpointError, ConfigError, SpadekitError
from spadekit.io import make_temp_dir, read_format_json, umask_mode

FORMAT_NAME = "spadekit-model"
FORMAT_VERSION = 1
PARTS = ("generator", "discriminator", "encoder")


@dataclass
class SpadeModel:
    """A loaded model of any method: its resolved config and networks (discriminator/encoder may be
    None; ``extras`` holds a method's other parts by name).

    ``provenance`` says where the weights come from, e.g. for a training run
    ``{"generator": "ema" | "raw", "steps": N, "ema_decay": ..., "ema_horizon_reached": ...}``;
    it is stored in ``config.json`` and read back (None when the model says nothing).

    ``assets``: data files the model carries, by file name (a plain name, no folders): a path (a
    loaded model's own file, or one to copy when saving) or a writer ``(target path) -> None``.
    """

    config: Config
    generator: nn.Module
    discriminator: nn.Module | None = None
    encoder: nn.Module | None = None
    extras: dict[str, nn.Module] = field(default_factory=dict)
    provenance: dict | None = None
    assets: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_parts(
        cls, config: Config, parts: dict[str, nn.Module], provenance: dict | None = None, assets: dict[str, Any] | None = None
    ) -> "SpadeModel":
        """A model from networks by part name (``generator`` is required)."""
        if "generator" not in parts:
            raise ValueError("a model needs a generator")
        extras = {k: v for k, v in parts.items() if k not in PARTS}
        return cls(config, parts["generator"], parts.get("discriminator"), parts.get("encoder"), extras, provenance, dict(assets or {}))

    @property
    def method(self):
        """The registered :class:`~spadekit.methods.Method` of this model."""
        from spadekit.methods import method_of

        return method_of(self.config)

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of generated images."""
        return self.method.size_of(self.config)

    @property
    def class_names(self) -> list[str]:
        names = self.config.data.class_names
        return list(names) if names else [f"class {i}" for i in range(self.config.model.label_nc)]

    @property
    def colors(self) -> list[list[int]] | None:
        return self.config.data.colors

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "SpadeModel":
        for network in self.networks().values():
            network.to(device=device, dtype=dtype)
        return self

    def eval(self) -> "SpadeModel":
        for network in self.networks().values():
            network.eval()
        return self

    def networks(self) -> dict[str, nn.Module]:
        parts = {name: getattr(self, name) for name in PARTS if getattr(self, name) is not None}
        return {**parts, **self.extras}

    def save(self, directory: str | Path) -> Path:
        """Write the release format atomically (a temp directory renamed into place)."""
        return save_model(self, directory)


def layout_to_image(model: SpadeModel) -> SpadeModel:
    """The model that turns label maps into photos: ``model`` itself, or, for a model whose method
    makes something else (layouts from class proportions), its method's ``image_stage``."""
    stage = model.method.image_stage
    return model if stage is None else stage(model)


def _state_for_safetensors(network: nn.Module) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage; checkpoints converted from elsewhere may share it.
    return {k: v.detach().cpu().contiguous().clone() for k, v in network.state_dict().items()}


def save_model(model: SpadeModel, directory: str | Path) -> Path:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(directory.parent, prefix=f".{directory.name}.")  # the umask's mode, as mkdir gives
    try:
        meta = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": model.config.to_dict()}
        if model.provenance:
            meta["provenance"] = model.provenance
        if model.assets:
            meta["assets"] = sorted(model.assets)
        (staging / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
        for name, network in model.networks().items():
            save_file(_state_for_safetensors(network), str(staging / f"{name}.safetensors"), metadata={"format": "pt"})
            umask_mode(staging / f"{name}.safetensors")  # safetensors writes a private (0600) file
        for name, source in model.assets.items():
            _write_asset(name, source, staging / name, model.networks())
        if directory.exists():
            backup = directory.with_name(f".{directory.name}.old")
            shutil.rmtree(backup, ignore_errors=True)
            directory.rename(backup)
            staging.rename(directory)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            staging.rename(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _asset_name_ok(name: str, networks: dict[str, nn.Module]) -> bool:
    return (
        bool(name) and name == Path(name).name and name not in (".", "..", "config.json")
        and name not in {f"{part}.safetensors" for part in networks}
    )


def _write_asset(name: str, source: Any, target: Path, networks: dict[str, nn.Module]) -> None:
    if not _asset_name_ok(name, networks):
        raise ValueError(f"asset name {name!r} must be a plain file name other than config.json and the networks' files")
    if callable(source):
        source(target)
    else:
        try:
            os.link(source, target)  # large data (a memory bank) need not be copied on the same disk
        except OSError:
            shutil.copyfile(source, target)
    umask_mode(target)


def bundled_models() -> list[str]:
    """Names of the models shipped inside the package."""
    folder = resources.files("spadekit") / "bundled"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and (p / "config.json").is_file())


def resolve_model_path(path_or_name: str | Path) -> Path:
    """A release directory, or the name of a bundled model."""
    path = Path(path_or_name)
    if path.exists():
        return path
    name = str(path_or_name)
    if name in bundled_models():
        return Path(str(resources.files("spadekit") / "bundled" / name))
    bundled = ", ".join(bundled_models()) or "none"
    raise CheckpointError(f"{path}: no such model directory or bundled model (bundled: {bundled})")


def read_config(directory: Path) -> Config:
    return _read_meta(directory)[0]


def _read_meta(directory: Path) -> tuple[Config, dict | None, list[str]]:
    """(config, provenance, asset file names) from a release directory's ``config.json``."""
    config_path = directory / "config.json"
    meta = read_format_json(config_path, FORMAT_NAME, FORMAT_VERSION, "spadekit model")
    if "config" not in meta:
        raise CheckpointError(f"{config_path}: has no 'config' section")
    try:
        config = config_from_dict(meta["config"])
    except ConfigError as exc:
        raise CheckpointError(f"{config_path}: {exc}") from None
    provenance = meta.get("provenance")
    assets = meta.get("assets", [])
    if not isinstance(assets, list) or not all(isinstance(a, str) and a == Path(a).name and a not in ("", ".", "..") for a in assets):
        raise CheckpointError(f"{config_path}: 'assets' must be a list of file names")
    return config, provenance if isinstance(provenance, dict) else None, assets


def load_state_into(
    network: nn.Module,
    state: dict[str, torch.Tensor],
    source: Path | str,
    optional: Callable[[str], bool] | None = None,
) -> None:
    """Load ``state`` into ``network`` or raise a one-line CheckpointError naming the file and the
    first mismatch (missing/unexpected keys, shapes).

    ``optional(key)`` marks keys that may be absent on either side (e.g. batch-norm counters of
    third-party checkpoints); without it every key must match (strict).
    """
    expected = network.state_dict()
    required = (lambda key: True) if optional is None else (lambda key: not optional(key))
    missing = [k for k in expected if k not in state and required(k)]
    unexpected = [k for k in state if k not in expected and required(k)]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s) (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s) (e.g. {', '.join(unexpected[:3])})")
        raise CheckpointError(f"{source}: does not fit the model: {'; '.join(parts)}")
    for key, value in state.items():
        if key in expected and tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{source}: does not fit the model: {key} has shape {tuple(value.shape)}, "
                f"the model expects {tuple(expected[key].shape)}"
            )
    network.load_state_dict({k: v for k, v in state.items() if k in expected}, strict=optional is None)


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({first})") from None


def load_model(path: str | Path, device: str | torch.device = "cpu", preset: str | None = None, overrides: list[str] | None = None) -> SpadeModel:
    """Load a model for inference (networks in eval mode).

    ``path``: a release model directory, a bundled model name (e.g. ``"toy"``), or a directory of
    official checkpoints of a registered format (``spadekit convert --help``; ``preset`` and dotted
    ``overrides`` then give what the weights cannot tell).
    """
    from spadekit.conversion import detect_format

    directory = resolve_model_path(path)
    if directory.is_dir() and not (directory / "config.json").exists():
        found = detect_format(directory)
        if found is not None:
            return found.read(directory, preset, overrides or []).to(device).eval()
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a model directory")
    config, provenance, asset_names = _read_meta(directory)
    if overrides:
        raise ConfigError("overrides apply to official checkpoints only; a release model carries its own config")
    try:
        from spadekit.methods import method_of

        method = method_of(config)
        networks = method.build_networks(config, False)
    except SpadekitError as exc:
        raise CheckpointError(f"{directory / 'config.json'}: {exc}") from None
    parts: dict[str, nn.Module] = {}
    for name, network in networks.items():
        weights = directory / f"{name}.safetensors"
        if weights.exists():
            load_state_into(network, _read_safetensors(weights), weights)
            parts[name] = network
        elif name == "generator":
            raise CheckpointError(f"{weights}: file not found (a model needs its generator)")
    # A missing asset is left out: the caller names what it lacks (e.g. "pass a memory bank").
    assets = {name: directory / name for name in asset_names if (directory / name).is_file()}
    model = SpadeModel.from_parts(config, parts, provenance, assets)
    return model.to(device).eval()
