"""Example label maps to start painting from.

For a model trained on the toy-scenes world (its class names are the toy classes) the examples are
toy scenes from :func:`spadekit.data.toy.render_scene`. For any other model, a few simple layouts
(a horizon, a lake under mountains, trees, a street) are drawn with the classes whose names fit
each role ("sky", "grass", "water"...), falling back to the first unused ids.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

TOY_EXAMPLE_SEEDS = (7, 11, 23, 42)
"""Toy scenes shown as examples (chosen to have varied content)."""

ROLES: dict[str, tuple[str, ...]] = {
    "sky": ("sky",),
    "ground": ("grass", "ground", "field", "terrain", "earth", "dirt", "land"),
    "road": ("road", "street", "pavement", "sidewalk", "floor"),
    "water": ("water", "sea", "lake", "river"),
    "mountain": ("mountain", "hill", "rock", "stone"),
    "tree": ("tree", "vegetation", "bush", "plant"),
    "building": ("building", "house", "wall", "skyscraper"),
    "cloud": ("cloud",),
}
"""Keywords that pick a class for each role of the simple layouts, in order of preference."""
FALLBACK = {"cloud": "sky", "road": "ground", "mountain": "ground", "building": "mountain"}
"""The role whose class stands in when a role has no class of its own and no id is left."""


@dataclass(frozen=True)
class Example:
    """A named example label map."""

    name: str
    ids: np.ndarray
    """(H, W) int64 class ids."""


def make_examples(class_names: list[str], size: tuple[int, int]) -> list[Example]:
    """Example label maps at ``size`` = (width, height) for a model with these classes."""
    width, height = size
    if width < 8 or height < 8:
        return []
    if _is_toy(class_names):
        from spadekit.data.toy import render_scene

        return [Example(f"toy scene {seed}", render_scene(seed, (width, height)).label.astype(np.int64)) for seed in TOY_EXAMPLE_SEEDS]
    ids = assign_roles(class_names)
    return [
        Example("horizon", _horizon(ids, width, height)),
        Example("lake", _lake(ids, width, height)),
        Example("trees", _trees(ids, width, height)),
        Example("street", _street(ids, width, height)),
    ]


def _is_toy(class_names: list[str]) -> bool:
    try:
        from spadekit.data.toy import TOY_CLASSES
    except ImportError:  # the toy world is optional for this module
        return False
    return tuple(class_names) == tuple(TOY_CLASSES)


def assign_roles(class_names: list[str]) -> dict[str, int]:
    """Class id for each layout role: the first class whose name contains a role keyword as a word;
    roles with no match take the lowest ids not used yet, and once ids run out, the class of a
    related role (:data:`FALLBACK`; a cloud becomes sky) or else the ids in turn."""
    words = [set(re.split(r"[^a-z]+", name.lower())) for name in class_names]
    chosen: dict[str, int] = {}
    for role, keywords in ROLES.items():
        for keyword in keywords:
            match = next((i for i, w in enumerate(words) if keyword in w and i not in chosen.values()), None)
            if match is not None:
                chosen[role] = match
                break
    spare = [i for i in range(len(class_names)) if i not in chosen.values()]
    unmatched = [role for role in ROLES if role not in chosen]
    for n, role in enumerate(unmatched):
        if spare:
            chosen[role] = spare.pop(0)
        elif FALLBACK.get(role) in chosen:
            chosen[role] = chosen[FALLBACK[role]]
        else:
            chosen[role] = n % len(class_names)
    return chosen


def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in 0..1: (y, x), each (H, W)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    return (yy + 0.5) / height, (xx + 0.5) / width


def _horizon(ids: dict[str, int], width: int, height: int) -> np.ndarray:
    y, x = _grid(width, height)
    out = np.full((height, width), ids["sky"], np.int64)
    out[((x - 0.3) / 0.18) ** 2 + ((y - 0.18) / 0.06) ** 2 < 1] = ids["cloud"]
    out[y > 0.55 + 0.05 * np.sin(6 * x)] = ids["ground"]
    return out


def _lake(ids: dict[str, int], width: int, height: int) -> np.ndarray:
    y, x = _grid(width, height)
    out = np.full((height, width), ids["sky"], np.int64)
    ridge = 0.45 - 0.2 * np.abs(np.sin(3.2 * x + 0.4)) * (0.6 + 0.4 * np.cos(7 * x))
    out[y > ridge] = ids["mountain"]
    out[y > 0.55] = ids["water"]
    out[y > 0.85 - 0.04 * np.sin(9 * x)] = ids["ground"]
    return out


def _trees(ids: dict[str, int], width: int, height: int) -> np.ndarray:
    y, x = _grid(width, height)
    out = np.full((height, width), ids["sky"], np.int64)
    out[y > 0.62] = ids["ground"]
    for cx, cy, r in ((0.2, 0.45, 0.14), (0.5, 0.38, 0.18), (0.8, 0.47, 0.12)):
        trunk = (np.abs(x - cx) < r * 0.15) & (y > cy) & (y < 0.7)
        crown = ((x - cx) / r) ** 2 + ((y - cy) / (r * 1.2)) ** 2 < 1
        out[trunk | crown] = ids["tree"]
    return out


def _street(ids: dict[str, int], width: int, height: int) -> np.ndarray:
    y, x = _grid(width, height)
    out = np.full((height, width), ids["sky"], np.int64)
    for x0, x1, top in ((0.0, 0.22, 0.2), (0.25, 0.45, 0.35), (0.55, 0.78, 0.15), (0.8, 1.0, 0.3)):
        out[(x >= x0) & (x < x1) & (y > top)] = ids["building"]
    out[y > 0.7] = ids["ground"]
    out[(y > 0.7) & (np.abs(x - 0.5) < 0.12 + 0.9 * (y - 0.7))] = ids["road"]
    return out
