"""`spadekit data coco-instances` on a tiny hand-made COCO annotation file."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from PIL import Image

from spadekit.cli import main
from spadekit.data.coco_instances import build_coco_instance_maps
from spadekit.errors import DataError, SpadekitError

pytest.importorskip("pycocotools")


def _square(x0, y0, x1, y1):
    """A polygon covering pixels x0..x1-1, y0..y1-1 (COCO polygons use pixel-corner coordinates)."""
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


@pytest.fixture
def annotations(tmp_path):
    payload = {
        "images": [
            {"id": 1, "file_name": "000000000001.jpg", "height": 8, "width": 10},
            {"id": 2, "file_name": "000000000002.jpg", "height": 6, "width": 6},
        ],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "dog"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": _square(1, 1, 4, 4), "area": 9, "bbox": [1, 1, 3, 3]},
            {"id": 11, "image_id": 1, "category_id": 2, "iscrowd": 0, "segmentation": _square(5, 2, 9, 6), "area": 16, "bbox": [5, 2, 4, 4]},
            # A crowd region (uncompressed RLE, column-major): the whole first column.
            {"id": 12, "image_id": 1, "category_id": 1, "iscrowd": 1, "segmentation": {"counts": [0, 8, 72], "size": [8, 10]}, "area": 8, "bbox": [0, 0, 1, 8]},
            # Painted last, over part of the first square.
            {"id": 13, "image_id": 1, "category_id": 2, "iscrowd": 0, "segmentation": _square(3, 3, 6, 5), "area": 6, "bbox": [3, 3, 3, 2]},
        ],
    }
    path = tmp_path / "instances_val2017.json"
    path.write_text(json.dumps(payload))
    return path


def _expected(background: np.ndarray, first: int, crowd: bool) -> np.ndarray:
    out = background.copy()
    out[1:4, 1:4] = first
    out[2:6, 5:9] = first + 1
    if crowd:
        out[:, 0] = first + 2
    out[3:5, 3:6] = first + (3 if crowd else 2)
    return out


def test_instance_maps_without_labels(annotations, tmp_path):
    out = tmp_path / "val_inst"
    assert build_coco_instance_maps(annotations, out, progress=False) == 2
    first = Image.open(out / "000000000001.png")
    assert first.mode == "L" and first.size == (10, 8)
    assert np.array_equal(np.array(first), _expected(np.zeros((8, 10), np.uint8), 1, crowd=False))
    second = np.array(Image.open(out / "000000000002.png"))
    assert second.shape == (6, 6) and not second.any()


def test_instance_maps_with_crowd(annotations, tmp_path):
    out = tmp_path / "inst"
    build_coco_instance_maps(annotations, out, include_crowd=True, progress=False)
    assert np.array_equal(np.array(Image.open(out / "000000000001.png")), _expected(np.zeros((8, 10), np.uint8), 1, crowd=True))


def test_instance_maps_start_from_the_label_maps(annotations, tmp_path):
    labels = tmp_path / "val_label"
    labels.mkdir()
    stuff = np.full((8, 10), 150, np.uint8)
    stuff[6:] = 123
    Image.fromarray(stuff).save(labels / "000000000001.png")
    Image.fromarray(np.full((6, 6), 99, np.uint8)).save(labels / "000000000002.png")
    out = tmp_path / "val_inst"
    code = main(["data", "coco-instances", str(annotations), str(out), "--label-dir", str(labels), "--quiet"])
    assert code == 0
    assert np.array_equal(np.array(Image.open(out / "000000000001.png")), _expected(stuff, 0, crowd=False))
    assert np.array_equal(np.array(Image.open(out / "000000000002.png")), np.full((6, 6), 99, np.uint8))


def test_label_map_problems_are_named(annotations, tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    Image.fromarray(np.zeros((8, 10), np.uint8)).save(labels / "000000000001.png")
    with pytest.raises(DataError, match="000000000002.png.*not found"):
        build_coco_instance_maps(annotations, tmp_path / "out", label_dir=labels, progress=False)
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(labels / "000000000002.png")
    with pytest.raises(DataError, match="000000000002.png: size 5x5 differs"):
        build_coco_instance_maps(annotations, tmp_path / "out", label_dir=labels, progress=False)


def test_bad_annotation_files(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    with pytest.raises(DataError, match="broken.json: not a valid JSON"):
        build_coco_instance_maps(broken, tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="missing.json: annotation file not found"):
        build_coco_instance_maps(tmp_path / "missing.json", tmp_path / "out", progress=False)


def test_missing_pycocotools_says_what_to_install(annotations, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pycocotools", None)
    monkeypatch.setitem(sys.modules, "pycocotools.coco", None)
    with pytest.raises(SpadekitError, match=r"pip install 'spadekit\[coco\]'"):
        build_coco_instance_maps(annotations, tmp_path / "out", progress=False)
    assert main(["data", "coco-instances", str(annotations), str(tmp_path / "out")]) == 2
    assert "spadekit[coco]" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
