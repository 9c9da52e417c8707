"""BachGAN boxes: the box-layout constructions, box extraction from dataset maps, JSON box files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from spadekit.errors import DataError
from spadekit.methods.bachgan.boxes import Box, boxes_to_json, draw_box_layout, parse_boxes, read_boxes_json
from spadekit.methods.bachgan.extract import (
    ADE20K_OBJECT_CLASSES,
    ade20k_boxes,
    cityscapes_boxes,
    instance_boxes,
    toy_boxes,
)

# Two overlapping boxes on a 6×8 canvas, 4 classes: A (class 2) rows 0-1 cols 0-2, B (class 3) rows 1-2
# cols 2-4; they share the pixel (row 1, col 2).
A = Box(2, 0, 0, 3, 2)
B = Box(3, 2, 1, 5, 3)


def region(rows: slice, cols: slice, h: int = 6, w: int = 8) -> torch.Tensor:
    mask = torch.zeros(h, w)
    mask[rows, cols] = 1
    return mask


def test_official_construction_keeps_every_one_it_ever_set():
    layout, painted = draw_box_layout([A, B], 4, 6, 8)
    in_a, in_b = region(slice(0, 2), slice(0, 3)), region(slice(1, 3), slice(2, 5))
    # Background channel: set after the first box everywhere outside it, never cleared.
    assert torch.equal(layout[0], 1 - in_a)
    assert torch.equal(layout[1], torch.zeros(6, 8))
    assert torch.equal(layout[2], in_a)  # keeps the overlap B later covered
    assert torch.equal(layout[3], in_b)
    assert layout[:, 1, 2].tolist() == [0, 0, 1, 1]  # the overlap is 1 in both box channels
    assert layout[:, 2, 3].tolist() == [1, 0, 0, 1]  # inside B only: background and B
    expected_painted = torch.zeros(6, 8, dtype=torch.int64)
    expected_painted[0:2, 0:3] = 2
    expected_painted[1:3, 2:5] = 3
    assert torch.equal(painted, expected_painted)


def test_onehot_construction_is_the_final_painted_map():
    layout, _ = draw_box_layout([A, B], 4, 6, 8, construction="onehot")
    in_a, in_b = region(slice(0, 2), slice(0, 3)), region(slice(1, 3), slice(2, 5))
    assert torch.equal(layout[0], 1 - ((in_a + in_b) > 0).float())
    assert torch.equal(layout[2], in_a * (1 - in_b))
    assert torch.equal(layout[3], in_b)
    assert torch.equal(layout.sum(0), torch.ones(6, 8))


def test_no_box_gives_zeros_officially_and_background_when_clean():
    official, _ = draw_box_layout([], 3, 4, 4)
    clean, _ = draw_box_layout([], 3, 4, 4, background=2, construction="onehot")
    assert official.sum() == 0
    assert torch.equal(clean[2], torch.ones(4, 4)) and clean[:2].sum() == 0


def test_scaled_and_flipped_boxes():
    assert A.flipped(8) == Box(2, 5, 0, 8, 2) and A.flipped(8).flipped(8) == A
    assert A.scaled(2, 0.5) == Box(2, 0, 0, 6, 1) and Box(1, 3, 3, 4, 4).scaled(0.1, 0.1) == Box(1, 0, 0, 1, 1)


def test_background_class_is_a_parameter():
    layout, painted = draw_box_layout([A], 4, 6, 8, background=1)
    assert torch.equal(layout[1], 1 - region(slice(0, 2), slice(0, 3)))
    assert layout[0].sum() == 0 and int(painted[5, 7]) == 1


# --------------------------------------------------------------------------------- extraction


def test_cityscapes_boxes_match_instance_ids_by_their_decimal_prefix():
    ids = np.zeros((6, 8), dtype=np.int32)
    ids[0:2, 0:2] = 7  # road: not a foreground class
    ids[3:5, 0:3] = 24  # a crowd of persons stored as the bare class id: boxed
    ids[0:3, 4:6] = 26001  # car 1
    ids[4:6, 5:8] = 26002  # car 2
    ids[1, 7] = 33000  # a bicycle (int16 would wrap it negative and lose it)
    ids[5, 0] = -32536  # what int16 makes of 33000: no box
    boxes = cityscapes_boxes(ids)
    assert boxes == [Box(24, 0, 3, 3, 5), Box(26, 4, 0, 6, 3), Box(26, 5, 4, 8, 6), Box(33, 7, 1, 8, 2)]


def test_ade20k_boxes_shift_classes_and_drop_small_boxes():
    raw = np.full((20, 24), 1, dtype=np.uint8)  # wall (class 0, stuff)
    raw[0:3, 0:24] = 3  # sky (class 2, stuff): no box
    raw[5:11, 1:7] = 13  # person (class 12), 6×6: (5·5) = 25 < 30, dropped
    raw[5:11, 10:17] = 21  # car (class 20), 6×7: (5·6) = 30, kept
    raw[13:19, 2:10] = 20  # chair (class 19), ring with a 2×4 hole
    raw[15:17, 4:8] = 1
    boxes = ade20k_boxes(raw)
    assert Box(20, 10, 5, 17, 11) in boxes
    assert all(box.class_id != 12 for box in boxes) and all(box.class_id != 2 for box in boxes)
    # Classes in ascending order; the ring's outer contour gives its box (its hole box is too small).
    assert boxes[0] == Box(19, 2, 13, 10, 19)
    assert [b.class_id for b in boxes] == [19, 20]


def test_ade20k_first_box_is_the_outer_one_not_one_nested_in_its_hole():
    raw = np.ones((24, 24), dtype=np.uint8)
    raw[2:22, 2:22] = 5  # a ring of tree (class 4)...
    raw[5:19, 5:19] = 1
    raw[8:16, 8:16] = 5  # ...with another tree inside its hole (found later in raster order)
    raw[20:24, 0:2] = 13  # a small person (class 12), dropped
    boxes = ade20k_boxes(raw)
    assert boxes[0] == Box(4, 2, 2, 22, 22) and set(boxes) <= {Box(4, 2, 2, 22, 22), Box(4, 8, 8, 16, 16)}
    layout, _ = draw_box_layout(boxes, 151, 24, 24)
    outside_first = torch.ones(24, 24)
    outside_first[2:22, 2:22] = 0
    assert torch.equal(layout[0], outside_first)


def _opencv_ade20k_boxes(cv2, raw: np.ndarray) -> list[Box]:
    """The official procedure (facts sheet): every RETR_TREE contour of each object class, filled and boxed."""
    boxes = []
    for class_id in np.unique(raw.astype(np.int64) - 1):
        if class_id not in ADE20K_OBJECT_CLASSES:
            continue
        mask = (raw.astype(np.int64) - 1 == class_id).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
        for index in range(len(contours)):
            filled = np.zeros_like(mask)
            cv2.drawContours(filled, contours, index, 1, -1)
            rows, cols = np.nonzero(filled)
            if (rows.max() - rows.min()) * (cols.max() - cols.min()) >= 30:
                boxes.append(Box(int(class_id), cols.min(), rows.min(), cols.max() + 1, rows.max() + 1))
    return boxes


def test_ade20k_boxes_draw_the_layout_opencv_contours_draw():
    """Cross-check against OpenCV itself on random scenes with rings, nesting, speckle and touching objects."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    for _ in range(150):
        h, w = (int(v) for v in rng.integers(8, 64, size=2))
        raw = np.ones((h, w), dtype=np.uint8)
        yy, xx = np.mgrid[:h, :w]
        for _ in range(int(rng.integers(1, 10))):
            cy, cx, ry, rx = rng.integers(0, h), rng.integers(0, w), rng.integers(2, h // 2 + 3), rng.integers(2, w // 2 + 3)
            shape = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
            kind = rng.integers(0, 4)
            mask = [shape < 1, (shape < 1) & (shape > 0.3), rng.random((h, w)) < 0.2, (abs(yy - cy) < ry) & (abs(xx - cx) < rx)][kind]
            raw[mask] = rng.choice([5, 8, 9, 13])  # tree, bed, windowpane, person (objects)
        ours, official = ade20k_boxes(raw), _opencv_ade20k_boxes(cv2, raw)
        assert [torch.equal(a, b) for a, b in zip(draw_box_layout(ours, 151, h, w), draw_box_layout(official, 151, h, w))] == [True, True]
        assert {(b.class_id, b.x0, b.y0, b.x1, b.y1) for b in official} >= {(b.class_id, b.x0, b.y0, b.x1, b.y1) for b in ours}


def test_instance_boxes_ignore_stuff_pixels_and_parts():
    label = np.zeros((6, 8), dtype=np.uint8)  # class 0: stuff
    instance = np.zeros((6, 8), dtype=np.uint8)
    label[1:5, 1:4] = 7  # a building (thing)...
    instance[1:5, 1:4] = 40
    label[2, 2] = 8  # ...with a window (not a thing) in its instance
    label[0:2, 5:8] = 10  # a car
    instance[0:2, 5:8] = 41
    label[5, 5:8] = 3  # stuff whose class id...
    instance[5, 5:8] = 41  # ...collides with the car's instance id: not part of the car
    assert instance_boxes(label, instance, things={7, 9, 10, 11}) == [Box(7, 1, 1, 4, 5), Box(10, 5, 0, 8, 2)]


def test_toy_scene_boxes_cover_their_instances():
    from spadekit.data.toy import THING_CLASSES, render_scene

    scene = render_scene(3, 64)
    boxes = toy_boxes(scene.label, scene.instance)
    assert boxes and all(box.class_id in THING_CLASSES for box in boxes)
    thing = np.isin(scene.label, THING_CLASSES)
    assert len(boxes) == len(np.unique(scene.instance[thing]))
    for box in boxes:
        inside = np.zeros_like(thing)
        inside[box.y0 : box.y1, box.x0 : box.x1] = True
        assert (thing & (scene.label == box.class_id) & inside).any()


# ----------------------------------------------------------------------------------------- JSON

NAMES = ["sky", "road", "car", "person"]


def write(tmp_path, data) -> str:
    path = tmp_path / "scene.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_json_boxes_by_name_or_id_and_scaled_from_their_canvas(tmp_path):
    data = {"width": 32, "height": 16, "boxes": [{"class": "Car", "box": [0, 0, 16, 8]}, {"class": 3, "box": [16, 8, 32, 16]}]}
    boxes = read_boxes_json(write(tmp_path, data), NAMES, height=32, width=64)
    assert boxes == [Box(2, 0, 0, 32, 16), Box(3, 32, 16, 64, 32)]
    assert parse_boxes(boxes_to_json(boxes, NAMES, 32, 64), NAMES, 32, 64) == boxes
    assert parse_boxes([{"class": "road", "box": [1, 2, 3, 4]}], NAMES, 8, 8) == [Box(1, 1, 2, 3, 4)]


@pytest.mark.parametrize(
    "data, message",
    [
        ("{not json", "not valid JSON"),
        ({"items": []}, "no 'boxes' list"),
        ({"boxes": {"class": "car"}}, "'boxes' must be a list"),
        ({"boxes": ["car"]}, "box 0: expected an object"),
        ({"boxes": [{"class": "car", "box": [0, 0, 4, 4]}, {"box": [0, 0, 4, 4]}]}, "box 1: expected an object"),
        ({"boxes": [{"class": "car", "box": [0, 0, 4]}]}, "box 0: 'box' must be four numbers"),
        ({"boxes": [{"class": "car", "box": [0, 0, "4", 4]}]}, "box 0: 'box' must be four numbers"),
        ({"boxes": [{"class": "car", "box": [0, True, 4, 4]}]}, "box 0: 'box' must be four numbers"),
        ({"boxes": [{"class": "car", "box": [4, 0, 4, 4]}]}, "box 0: empty box"),
        ({"boxes": [{"class": "tractor", "box": [0, 0, 4, 4]}]}, "box 0: unknown class 'tractor'"),
        ({"boxes": [{"class": 9, "box": [0, 0, 4, 4]}]}, "box 0: unknown class id 9"),
        ({"boxes": [{"class": 2.5, "box": [0, 0, 4, 4]}]}, "box 0: 'class' must be"),
        ({"boxes": [{"class": "car", "box": [0, 0, 4, 4]}, {"class": "car", "box": [-1, 0, 4, 4]}]}, "box 1: [-1, 0, 4, 4] lies outside the 16x16 image"),
        ({"boxes": [{"class": "car", "box": [0, 0, 17, 4]}]}, "box 0: [0, 0, 17, 4] lies outside the 16x16 image"),
        ({"width": 8, "boxes": [{"class": "car", "box": [0, 0, 9, 4]}]}, "outside the 8x16 image"),
        ({"width": 0, "boxes": []}, "'width' must be a positive integer"),
        ({"boxes": [{"class": "sky", "box": [0, 0, 4, 4]}]}, "box 0: class 'sky' is not drawn from boxes"),
    ],
)
def test_json_box_errors_name_the_file_and_the_box(tmp_path, data, message):
    path = write(tmp_path, data)
    with pytest.raises(DataError) as error:
        read_boxes_json(path, NAMES, height=16, width=16, allowed={2, 3})
    text = str(error.value)
    assert str(path) in text and message in text and "\n" not in text


def test_missing_json_file(tmp_path):
    with pytest.raises(DataError, match="box file not found"):
        read_boxes_json(tmp_path / "nope.json", NAMES, 16, 16)
