"""Datasets, transforms, label utilities and the toy-scenes world.

Main entry points: :func:`open_dataset` (any format, or generated toy scenes), :func:`make_loader`,
:func:`render_scene` (one toy scene) and :func:`to_semantics` (label map → one-hot generator input).
"""

from spadekit.data.dataset import PairedDataset, ToySceneDataset, make_loader, open_dataset
from spadekit.data.formats import FORMATS, Sample, scan_dataset
from spadekit.data.labels import instance_edges, map_dontcare, to_semantics
from spadekit.data.palette import Palette, colors_to_ids, ids_to_colors, load_palette, save_palette
from spadekit.data.toy import TOY_CLASSES, TOY_COLORS, ToyScene, render_scene, scene_seed
from spadekit.data.transforms import Preprocess

__all__ = [
    "FORMATS",
    "PairedDataset",
    "Palette",
    "Preprocess",
    "Sample",
    "TOY_CLASSES",
    "TOY_COLORS",
    "ToyScene",
    "ToySceneDataset",
    "colors_to_ids",
    "ids_to_colors",
    "instance_edges",
    "load_palette",
    "make_loader",
    "map_dontcare",
    "open_dataset",
    "render_scene",
    "save_palette",
    "scan_dataset",
    "scene_seed",
    "to_semantics",
]
