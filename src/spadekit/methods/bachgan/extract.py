"""Boxes of the salient objects of a training image, from its dataset maps.

Each function returns the boxes in an order for which :func:`~spadekit.methods.bachgan.boxes.draw_box_layout`
reproduces the official box layout bit for bit (the order matters: see that module).

* Cityscapes (:func:`cityscapes_boxes`): one box per instance id of the ``*_instanceIds.png`` map whose
  decimal string starts with a foreground class id 24..33 (so a crowd region stored as the bare class
  id gets a box too), in ascending id order. The official loader may read the 16-bit PNG as int16 and
  then loses every bicycle (ids 33000+ wrap negative); pass the ids as read at full precision (int32),
  which keeps them.
* ADE20K (:func:`ade20k_boxes`): per object class present (ascending), the boxes of the contours
  OpenCV's ``findContours(RETR_TREE)`` finds in the class mask; boxes with (rows-1)·(cols-1) < 30 are
  dropped; touching objects of one class form one box. Reproduced with scipy (no OpenCV needed).
* COCO-Stuff and toy scenes (:func:`instance_boxes`): one box per instance id among the pixels of
  thing classes, labelled with the most frequent thing class of those pixels.
"""

from __future__ import annotations

from typing import Collection, Sequence

import numpy as np

from spadekit.methods.bachgan.boxes import Box

CITYSCAPES_FOREGROUND: tuple[int, ...] = tuple(range(24, 34))
"""person, rider, car, truck, bus, caravan, trailer, train, motorcycle, bicycle (labelIds)."""

ADE20K_OBJECT_CLASSES: tuple[int, ...] = (
    4, 7, 8, 10, 12, 14, 15, 17, 18, 19, 20, 22, 23, 24, 27, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 47, 49, 50, 53, 55, 56, 57, 58, 62, 63, 64, 65, 66, 67, 69, 70, 71, 72, 73, 74,
    75, 76, 77, 78, 80, 81, 82, 83, 85, 86, 87, 88, 89, 90, 92, 93, 95, 97, 98, 99, 100, 102, 103, 104,
    106, 107, 108, 110, 111, 112, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
    129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 141, 142, 143, 144, 145, 146, 147, 148, 149,
)  # fmt: skip
"""The 115 ADE20K classes marked "object" (0-based ids, i.e. raw annotation value - 1) by the
scene-parsing benchmark's object/stuff split (``objectSplit35-115.mat``, CSAILVision/sceneparsing)."""

ADE20K_MIN_BOX_AREA = 30
"""Boxes with (max row - min row) · (max col - min col) below this are dropped (inclusive extremes)."""

COCO_STUFF_THINGS: tuple[int, ...] = tuple(range(91))
"""COCO-Stuff label ids of thing classes (0-based; 91..181 are stuff)."""


def _bounding_box(class_id: int, rows: np.ndarray, cols: np.ndarray) -> Box:
    return Box(class_id, int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)


def cityscapes_boxes(instance_ids: np.ndarray, foreground: Sequence[int] = CITYSCAPES_FOREGROUND) -> list[Box]:
    """Boxes of a Cityscapes ``instanceIds`` map (H, W) of integers, in the official order."""
    ids = np.asarray(instance_ids)
    boxes = []
    for value in np.unique(ids):
        text = str(int(value))
        for class_id in foreground:
            # The official test is on the decimal string: 26001 and a bare group id 26 both match 26.
            if text.startswith(str(class_id)):
                rows, cols = np.nonzero(ids == value)
                boxes.append(_bounding_box(class_id, rows, cols))
    return boxes


def _top_level(components: np.ndarray, count: int) -> np.ndarray:
    """(count + 1,) bool: components not nested in a hole of another one (index 0 unused).

    A component is top level when one of its 4-neighbours outside it belongs to the background
    region (4-connected, as holes are in OpenCV's border following) that reaches the image frame."""
    from scipy import ndimage

    padded = np.pad(components, 1)
    background, _ = ndimage.label(padded == 0)
    frame = background == background[0, 0]
    top = np.zeros(count + 1, dtype=bool)
    for axis in (0, 1):
        for step in (1, -1):
            neighbour_in_frame = np.roll(frame, step, axis=axis)  # the padding keeps the wrap harmless
            top[padded[neighbour_in_frame & (padded > 0)]] = True
    return top


def ade20k_boxes(
    label: np.ndarray,
    object_classes: Collection[int] = ADE20K_OBJECT_CLASSES,
    min_area: int = ADE20K_MIN_BOX_AREA,
) -> list[Box]:
    """Boxes of a raw ADE20K annotation map (H, W) (0 = unlabeled, k = class k-1), box classes being
    0-based ids, ordered so that drawing them gives the official box layout.

    The official code boxes every contour OpenCV's ``findContours(RETR_TREE)`` returns: the outer
    border of each 8-connected component of the class mask (box = the component's bounding box) and
    the border of each hole (a box inside its component's box, of the same class: it changes nothing
    in the layout, so it is not listed here). Boxes with (rows-1)·(cols-1) < ``min_area`` are dropped.
    Order matters only for the first box drawn (the background channel is 1 everywhere but there):
    OpenCV lists the top-level components in reverse raster order of their first pixel, each before
    the components nested in its holes; we list them the same way, nested ones last.
    """
    from scipy import ndimage

    shifted = np.asarray(label).astype(np.int64) - 1
    objects = set(int(c) for c in object_classes)
    flat_index = np.arange(shifted.size).reshape(shifted.shape)
    boxes = []
    for class_id in np.unique(shifted):
        class_id = int(class_id)
        if class_id not in objects:
            continue
        components, count = ndimage.label(shifted == class_id, structure=np.ones((3, 3), dtype=bool))
        indices = np.arange(1, count + 1)
        first_pixel = ndimage.minimum(flat_index, components, indices)
        top = _top_level(components, count)
        order = sorted(indices, key=lambda k: (not top[k], -first_pixel[k - 1]))
        extents = ndimage.find_objects(components)
        for k in order:
            rows, cols = extents[k - 1]
            if (rows.stop - 1 - rows.start) * (cols.stop - 1 - cols.start) < min_area:
                continue
            boxes.append(Box(class_id, cols.start, rows.start, cols.stop, rows.stop))
    return boxes


def instance_boxes(label: np.ndarray, instance: np.ndarray, things: Collection[int]) -> list[Box]:
    """Boxes of the thing instances of a label map and an instance map (both (H, W)).

    Only pixels whose label is a thing class count; each distinct instance id among them (ascending)
    gives one box, labelled with the most frequent thing class of its pixels (the smallest on ties).
    Works for COCO-Stuff instance maps (stuff pixels keep their class ids, so ids may collide with
    class ids; the thing mask keeps stuff out) and toy scenes (windows belong to their building's
    instance but are not a thing class, so they do not change its class).
    """
    label = np.asarray(label).astype(np.int64)
    instance = np.asarray(instance).astype(np.int64)
    if label.shape != instance.shape:
        raise ValueError(f"label map {label.shape} and instance map {instance.shape} differ in size")
    is_thing = np.isin(label, np.asarray(sorted(things), dtype=np.int64))
    boxes = []
    for value in np.unique(instance[is_thing]):
        rows, cols = np.nonzero(is_thing & (instance == value))
        classes, counts = np.unique(label[rows, cols], return_counts=True)
        boxes.append(_bounding_box(int(classes[np.argmax(counts)]), rows, cols))
    return boxes


def toy_boxes(label: np.ndarray, instance: np.ndarray) -> list[Box]:
    """Boxes of a toy scene's buildings, trees, cars and persons."""
    from spadekit.data.toy import THING_CLASSES

    return instance_boxes(label, instance, THING_CLASSES)


def ade20k_channels(raw: np.ndarray, label_nc: int = 150) -> np.ndarray:
    """A raw ADE20K annotation map (0 = unlabeled, k = class k-1) in BachGAN's channel ids: class k-1
    for k ≥ 1 and ``label_nc`` (the don't-care channel) for unlabeled pixels, as the official loader
    shifts the retrieved layouts. (spadekit's SPADE presets keep the raw ids instead.)"""
    shifted = np.asarray(raw).astype(np.int64) - 1
    shifted[shifted < 0] = label_nc
    return shifted
