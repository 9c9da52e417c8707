"""Palettes: class names and display colours, and colour-coded label maps ↔ integer ids.

A palette file is JSON::

    {"names": ["sky", "grass", ...], "colors": [[r, g, b], ...], "dontcare": [r, g, b]}

``names`` is optional (defaults to ``class_<i>``), ``dontcare`` is optional: pixels of that colour
become the don't-care value 255. Colour ``i`` stands for label id ``i``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spadekit.errors import DataError

DONTCARE = 255
"""The label value that marks don't-care pixels in every format."""


@dataclass(frozen=True)
class Palette:
    """Class names and RGB colours, index-aligned with label ids."""

    names: tuple[str, ...]
    colors: np.ndarray
    """(K, 3) uint8."""
    dontcare: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        if len(self.names) != len(self.colors):
            raise ValueError("a palette needs one name per colour")

    def __len__(self) -> int:
        return len(self.colors)

    def to_json(self) -> dict:
        out: dict = {"names": list(self.names), "colors": self.colors.astype(int).tolist()}
        if self.dontcare is not None:
            out["dontcare"] = list(self.dontcare)
        return out


def default_colors(n: int) -> np.ndarray:
    """A distinct colour per id (the usual bit-interleaved segmentation colour map). Returns (n, 3) uint8."""
    ids = np.arange(n, dtype=np.int64)
    colors = np.zeros((n, 3), dtype=np.int64)
    bits = ids.copy()
    for shift in range(7, -1, -1):
        for channel in range(3):
            colors[:, channel] |= ((bits >> channel) & 1) << shift
        bits >>= 3
    return colors.astype(np.uint8)


def make_palette(names: list[str] | None = None, colors: list[list[int]] | np.ndarray | None = None, n: int | None = None) -> Palette:
    """Build a palette from names and/or colours (missing parts are filled with defaults)."""
    count = n if n is not None else len(colors) if colors is not None else len(names or [])
    table = np.asarray(colors, dtype=np.int64) if colors is not None else default_colors(count).astype(np.int64)
    if table.ndim != 2 or table.shape[1] != 3 or table.min(initial=0) < 0 or table.max(initial=0) > 255:
        raise ValueError("palette colours must be a list of [r, g, b] triples in 0..255")
    labels = tuple(names) if names is not None else tuple(f"class_{i}" for i in range(len(table)))
    return Palette(labels, table.astype(np.uint8))


def load_palette(path: str | Path) -> Palette:
    """Read a palette JSON file; a :class:`DataError` naming the file when it is missing or malformed."""
    path = Path(path)
    try:
        values = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: palette file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable palette JSON file ({exc})") from None
    if not isinstance(values, dict) or "colors" not in values:
        raise DataError(f'{path}: a palette must be a JSON object with "colors": [[r, g, b], ...] (and optional "names")')
    try:
        names = values.get("names")
        palette = make_palette(names=[str(n) for n in names] if names is not None else None, colors=values["colors"])
        dontcare = values.get("dontcare")
        if dontcare is not None:
            if len(dontcare) != 3 or not all(0 <= int(c) <= 255 for c in dontcare):
                raise ValueError('"dontcare" must be one [r, g, b] colour')
            palette = Palette(palette.names, palette.colors, tuple(int(c) for c in dontcare))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: invalid palette ({exc})") from None
    keys = _pack(palette.colors)
    if len(np.unique(keys)) != len(keys):
        raise DataError(f"{path}: invalid palette (two classes share a colour)")
    return palette


def save_palette(path: str | Path, palette: Palette) -> None:
    """Write a palette as JSON (atomically)."""
    from spadekit.io import atomic_write_text

    atomic_write_text(Path(path), json.dumps(palette.to_json(), indent=1) + "\n")


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def colors_to_ids(rgb: np.ndarray, palette: Palette, source: str = "label map") -> np.ndarray:
    """Colour-coded label map → ids by exact colour match.

    Args:
        rgb: (H, W, 3) uint8.
        source: the file name used in error messages.
    Returns:
        (H, W) uint8 ids (255 for the palette's don't-care colour).
    Raises:
        DataError naming ``source`` and up to five colours that are not in the palette.
    """
    keys = _pack(rgb[..., :3])
    table = _pack(palette.colors)
    ids = np.arange(len(table), dtype=np.int64)
    if palette.dontcare is not None:
        table = np.append(table, _pack(np.asarray(palette.dontcare)))
        ids = np.append(ids, DONTCARE)
    order = np.argsort(table)
    table, ids = table[order], ids[order]
    pos = np.clip(np.searchsorted(table, keys), 0, len(table) - 1)
    found = table[pos] == keys
    if not found.all():
        unknown = np.unique(keys[~found])
        shown = ", ".join(f"({k >> 16}, {(k >> 8) & 255}, {k & 255})" for k in unknown[:5].tolist())
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise DataError(f"{source}: {len(unknown)} colour(s) not in the palette: {shown}{more}")
    out = ids[pos]
    if out.max(initial=0) > 255:
        raise DataError(f"{source}: palettes with more than 255 classes are not supported for colour-coded labels")
    return out.astype(np.uint8)


def ids_to_colors(ids: np.ndarray, colors: np.ndarray, dontcare: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Integer id map (H, W) → (H, W, 3) uint8 colours for display (unknown ids and 255 get ``dontcare``)."""
    table = np.zeros((256 if ids.max(initial=0) < 256 else int(ids.max()) + 1, 3), dtype=np.uint8)
    table[:] = dontcare
    table[: len(colors)] = np.asarray(colors, dtype=np.uint8)[: len(table)]
    return table[ids.astype(np.int64)]
