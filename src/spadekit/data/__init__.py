"""Datasets, transforms, label utilities and the toy-scenes world.

Main entry points: :func:`open_dataset` (any format, or generated toy scenes), :func:`make_loader`,
:func:`render_scene` (one toy scene) and :func:`to_semantics` (label map → one-hot generator input).
User inputs to synthesis (label-map files, their ids, seeds, sizes) are read and checked by
:mod:`spadekit.data.label_maps` and :mod:`spadekit.data.inputs`, for the CLI and the studio alike.

Names are imported lazily: the dataset side pulls in torchvision, which inference-only processes
(the studio, ``spadekit synthesize``) do not need.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "PairedDataset": "dataset",
    "ToySceneDataset": "dataset",
    "make_loader": "dataset",
    "open_dataset": "dataset",
    "FORMATS": "formats",
    "Sample": "formats",
    "scan_dataset": "formats",
    "ImageLimits": "inputs",
    "MAX_SEED": "inputs",
    "check_seed": "inputs",
    "parse_size": "inputs",
    "check_ids": "label_maps",
    "image_to_ids": "label_maps",
    "read_label_map": "label_maps",
    "instance_edges": "labels",
    "map_dontcare": "labels",
    "to_semantics": "labels",
    "Palette": "palette",
    "colors_to_ids": "palette",
    "ids_to_colors": "palette",
    "load_palette": "palette",
    "save_palette": "palette",
    "TOY_CLASSES": "toy",
    "TOY_COLORS": "toy",
    "ToyScene": "toy",
    "render_scene": "toy",
    "scene_seed": "toy",
    "Preprocess": "transforms",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'spadekit.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"spadekit.data.{module}"), name)


def __dir__() -> list[str]:
    return __all__
