"""Object boxes and the box-layout tensor BachGAN is conditioned on; JSON box files for users.

A :class:`Box` is a class id and a pixel rectangle: columns ``x0 .. x1-1``, rows ``y0 .. y1-1``
(half-open, so ``x1 - x0`` is the width). Boxes are drawn in order; later boxes cover earlier ones.

The box layout is a (C, H, W) float 0/1 tensor, C = the model's semantic channels. Two constructions:

``"official"`` (default; what the released checkpoints were trained on)
    Paint the boxes one after the other into a running class map that starts at ``background``
    (the official code uses 0, the first class, for every dataset) and, after *each* box, set the
    channel of every pixel's current class to 1 without ever clearing a 1. Consequences: the
    background channel is 1 everywhere except inside the first box; where boxes overlap, the
    channels of every box that was on top at some point stay 1 (up to 3 per pixel in practice);
    with no box at all the tensor is all zeros.
``"onehot"``
    The one-hot encoding of the final painted map: the last box wins where boxes overlap, and
    every pixel outside all boxes is 1 in the ``background`` channel only.

Both agree on where each class's boxes are (channel c of an object class c is the union of its
boxes unless a later box covers part of it), which is what retrieval and the background
composition read.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Sequence

import torch

from spadekit.errors import DataError

CONSTRUCTIONS = ("official", "onehot")


@dataclass(frozen=True)
class Box:
    """A class id and a pixel rectangle: columns [x0, x1), rows [y0, y1)."""

    class_id: int
    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def scaled(self, sx: float, sy: float) -> "Box":
        """The box on a canvas ``sx`` times wider and ``sy`` times taller, edges rounded to pixels
        (never thinner than one pixel)."""
        x0, y0 = round(self.x0 * sx), round(self.y0 * sy)
        x1, y1 = max(round(self.x1 * sx), x0 + 1), max(round(self.y1 * sy), y0 + 1)
        return Box(self.class_id, x0, y0, x1, y1)

    def flipped(self, width: int) -> "Box":
        """The box mirrored left-right in an image ``width`` pixels wide."""
        return Box(self.class_id, width - self.x1, self.y0, width - self.x0, self.y1)


def draw_box_layout(
    boxes: Sequence[Box],
    num_classes: int,
    height: int,
    width: int,
    background: int = 0,
    construction: str = "official",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The box layout of one image and the final painted class map.

    Args:
        boxes: drawn in this order (later boxes cover earlier ones).
        num_classes: channels C of the layout.
        background: class of pixels outside every box in the painted map (the official code: 0).
        construction: ``"official"`` or ``"onehot"`` (see the module docstring).
    Returns:
        layout (C, H, W) float32 0/1, painted (H, W) int64 class ids.
    """
    if construction not in CONSTRUCTIONS:
        raise ValueError(f"unknown box-layout construction {construction!r}; choose one of {', '.join(CONSTRUCTIONS)}")
    if not 0 <= background < num_classes:
        raise ValueError(f"background class {background} is not one of the {num_classes} channels")
    painted = torch.full((height, width), background, dtype=torch.int64)
    layout = torch.zeros(num_classes, height, width)
    for box in boxes:
        if not 0 <= box.class_id < num_classes:
            raise ValueError(f"box class {box.class_id} is not one of the {num_classes} channels")
        painted[box.y0 : box.y1, box.x0 : box.x1] = box.class_id
        if construction == "official":
            # The official datasets scatter the whole running map after every box and never clear.
            layout.scatter_(0, painted[None], 1.0)
    if construction == "onehot":
        layout.scatter_(0, painted[None], 1.0)
    return layout, painted


def box_union(boxes: Sequence[Box], height: int, width: int) -> torch.Tensor:
    """(H, W) bool: pixels inside at least one box."""
    inside = torch.zeros(height, width, dtype=torch.bool)
    for box in boxes:
        inside[box.y0 : box.y1, box.x0 : box.x1] = True
    return inside


def class_masks(boxes: Sequence[Box], height: int, width: int) -> dict[int, torch.Tensor]:
    """Per box class, the (H, W) bool union of its boxes."""
    masks: dict[int, torch.Tensor] = {}
    for box in boxes:
        mask = masks.setdefault(box.class_id, torch.zeros(height, width, dtype=torch.bool))
        mask[box.y0 : box.y1, box.x0 : box.x1] = True
    return masks


# ----------------------------------------------------------------------------------------- JSON

BOXES_JSON_HELP = (
    'expected {"width": W, "height": H, "boxes": [{"class": "car", "box": [x0, y0, x1, y1]}, ...]} '
    "(width/height optional, the box in pixels, x1/y1 exclusive)"
)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _class_id(value: Any, class_names: Sequence[str], allowed: Collection[int] | None, where: str) -> int:
    if isinstance(value, str):
        lookup = {name.lower(): index for index, name in enumerate(class_names)}
        if value.strip().lower() not in lookup:
            raise DataError(f"{where}: unknown class {value!r} (this model knows: {', '.join(_shown(class_names, allowed))})")
        class_id = lookup[value.strip().lower()]
    elif isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value < len(class_names):
            raise DataError(f"{where}: unknown class id {value} (ids are 0..{len(class_names) - 1})")
        class_id = value
    else:
        raise DataError(f"{where}: 'class' must be a class name or an integer id, got {value!r}")
    if allowed is not None and class_id not in allowed:
        raise DataError(
            f"{where}: class {class_names[class_id]!r} is not drawn from boxes by this model "
            f"(box classes: {', '.join(_shown(class_names, allowed))})"
        )
    return class_id


def _shown(class_names: Sequence[str], allowed: Collection[int] | None, limit: int = 40) -> list[str]:
    names = [name for index, name in enumerate(class_names) if allowed is None or index in allowed]
    return names if len(names) <= limit else names[:limit] + [f"... ({len(names)} in all)"]


def parse_boxes(
    data: Any,
    class_names: Sequence[str],
    height: int,
    width: int,
    allowed: Collection[int] | None = None,
    source: str = "boxes",
) -> list[Box]:
    """Boxes from decoded JSON (see :data:`BOXES_JSON_HELP`), on a ``width`` × ``height`` canvas.

    A top-level list is the box list itself. When the JSON gives its own ``width``/``height`` the
    boxes are checked against that canvas and then scaled to ``width`` × ``height``. Every problem
    raises a one-line :class:`DataError` naming ``source`` and the box index.
    """
    canvas_w, canvas_h = width, height
    if isinstance(data, dict):
        if "boxes" not in data:
            raise DataError(f"{source}: no 'boxes' list; {BOXES_JSON_HELP}")
        for key in ("width", "height"):
            if key in data and not (isinstance(data[key], int) and not isinstance(data[key], bool) and data[key] > 0):
                raise DataError(f"{source}: '{key}' must be a positive integer, got {data[key]!r}")
        canvas_w, canvas_h = data.get("width", width), data.get("height", height)
        items = data["boxes"]
    else:
        items = data
    if not isinstance(items, list):
        raise DataError(f"{source}: 'boxes' must be a list; {BOXES_JSON_HELP}")
    boxes = []
    for index, item in enumerate(items):
        where = f"{source}: box {index}"
        if not isinstance(item, dict) or "class" not in item or "box" not in item:
            raise DataError(f"{where}: expected an object with 'class' and 'box', got {json.dumps(item)[:80]}")
        class_id = _class_id(item["class"], class_names, allowed, where)
        coords = item["box"]
        if not (isinstance(coords, list) and len(coords) == 4 and all(_number(v) for v in coords)):
            raise DataError(f"{where}: 'box' must be four numbers [x0, y0, x1, y1], got {json.dumps(coords)[:80]}")
        x0, y0, x1, y1 = coords
        if not (x0 < x1 and y0 < y1):
            raise DataError(f"{where}: empty box {coords} (need x0 < x1 and y0 < y1)")
        if x0 < 0 or y0 < 0 or x1 > canvas_w or y1 > canvas_h:
            raise DataError(f"{where}: {coords} lies outside the {canvas_w}x{canvas_h} image")
        sx, sy = width / canvas_w, height / canvas_h
        bx0, by0 = int(round(x0 * sx)), int(round(y0 * sy))
        bx1, by1 = max(int(round(x1 * sx)), bx0 + 1), max(int(round(y1 * sy)), by0 + 1)
        boxes.append(Box(class_id, bx0, by0, min(bx1, width), min(by1, height)))
    return boxes


def read_boxes_json(
    path: str | Path,
    class_names: Sequence[str],
    height: int,
    width: int,
    allowed: Collection[int] | None = None,
) -> list[Box]:
    """Boxes of a JSON file (see :func:`parse_boxes`), with errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: box file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    return parse_boxes(data, class_names, height, width, allowed, source=str(path))


def boxes_to_json(boxes: Sequence[Box], class_names: Sequence[str], height: int, width: int) -> dict:
    """The JSON document :func:`parse_boxes` reads back to the same boxes."""
    return {
        "width": width,
        "height": height,
        "boxes": [{"class": class_names[b.class_id], "box": [b.x0, b.y0, b.x1, b.y1]} for b in boxes],
    }
