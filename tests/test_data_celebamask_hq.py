"""The CelebAMask-HQ format: one binary PNG per face part, merged in the documented order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spadekit.errors import DataError
from spadekit.data.celebamask_hq import (
    CLASS_NAMES,
    PARTS,
    label_key,
    merge_part_masks,
    read_label,
    scan_celebamask_hq,
    write_merged_labels,
)


def write_mask(root: Path, k: int, part: str, mask: np.ndarray, rgb: bool = True) -> None:
    folder = root / "CelebAMask-HQ-mask-anno" / str(k // 2000)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = (mask > 0).astype(np.uint8) * 255
    Image.fromarray(np.stack([pixels] * 3, -1) if rgb else pixels).save(folder / f"{k:05d}_{part}.png")


def face(root: Path, k: int) -> np.ndarray:
    """Skin everywhere but the border, hair on the top rows (over the skin), a nose patch; returns
    the expected label map."""
    skin = np.zeros((8, 8), bool)
    skin[1:7, 1:7] = True
    hair = np.zeros((8, 8), bool)
    hair[:3] = True
    nose = np.zeros((8, 8), bool)
    nose[4:6, 3:5] = True
    write_mask(root, k, "skin", skin)
    write_mask(root, k, "hair", hair, rgb=False)
    write_mask(root, k, "nose", nose)
    expected = np.zeros((8, 8), np.uint8)
    expected[skin] = PARTS.index("skin") + 1
    expected[nose] = PARTS.index("nose") + 1
    expected[hair] = PARTS.index("hair") + 1
    return expected


def test_classes_in_documented_order():
    assert len(CLASS_NAMES) == 19 and CLASS_NAMES[0] == "background"
    assert CLASS_NAMES[1:4] == ("skin", "nose", "eye_g") and CLASS_NAMES[13] == "hair" and CLASS_NAMES[18] == "cloth"


def test_later_parts_overwrite_earlier_ones(tmp_path: Path):
    expected = face(tmp_path, 4001)
    label = read_label(label_key(tmp_path, 4001))
    assert label.dtype == np.uint8
    np.testing.assert_array_equal(label, expected)
    # Hair (id 13) wins over skin (id 1) on their overlap, whatever order the files are listed in.
    assert label[1, 1] == 13 and label[4, 1] == 1 and label[4, 3] == 2 and label[7, 7] == 0


def test_merge_errors():
    with pytest.raises(DataError, match="unknown part"):
        merge_part_masks({"beard": np.ones((2, 2))})
    with pytest.raises(DataError, match="different sizes"):
        merge_part_masks({"skin": np.ones((2, 2)), "hair": np.ones((3, 3))})
    np.testing.assert_array_equal(merge_part_masks({}, size=(2, 3)), np.zeros((2, 3), np.uint8))


def test_missing_face_is_a_clear_error(tmp_path: Path):
    face(tmp_path, 1)
    with pytest.raises(DataError, match="no part mask 00002_<part>.png"):
        read_label(label_key(tmp_path, 2))


def test_scan_pairs_photos_and_splits(tmp_path: Path):
    for k in (3, 28001):
        face(tmp_path, k)
    face(tmp_path, 5)
    photos = tmp_path / "CelebA-HQ-img"
    photos.mkdir()
    for k in (3, 28001):
        Image.new("RGB", (16, 16)).save(photos / f"{k}.jpg")
    train = scan_celebamask_hq(tmp_path, "train")
    assert [s.image.name for s in train.samples] == ["3.jpg"]
    assert [p[1] for p in train.problems] == ["no photo CelebA-HQ-img/5.jpg"]
    val = scan_celebamask_hq(tmp_path, "val")
    assert [s.label for s in val.samples] == [label_key(tmp_path, 28001)]
    assert read_label(val.samples[0].label).max() == 13
    with pytest.raises(DataError, match="no instance maps"):
        scan_celebamask_hq(tmp_path, "train", use_instance=True)
    with pytest.raises(DataError, match="not CelebAMask-HQ"):
        scan_celebamask_hq(tmp_path / "nothing", "train")


def test_write_merged_labels(tmp_path: Path):
    expected = face(tmp_path, 7)
    written = write_merged_labels(tmp_path, tmp_path / "labels")
    assert [p.name for p in written] == ["7.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(written[0])), expected)


def small_celeba(root: Path) -> Path:
    """Faces 0-2 (train) and 28000 (val), photos at twice the mask size as in the release."""
    photos = root / "CelebA-HQ-img"
    photos.mkdir(parents=True)
    for k in (0, 1, 2, 28000):
        face(root, k)
        Image.new("RGB", (16, 16), (40 * (k % 5), 90, 200)).save(photos / f"{k}.jpg")
    return root


def test_the_data_layer_reads_the_format(tmp_path: Path):
    from spadekit.config import load_config
    from spadekit.data import open_dataset

    root = small_celeba(tmp_path)
    config = load_config("celebamask-hq", ["data.crop_size=8", "data.load_size=8", "model.width=32"])
    data, model = config.data, config.model
    assert data.format == "celebamask-hq" and model.label_nc == 19 and not model.use_instance
    train = open_dataset(str(root), preset="celebamask-hq", split="train", train=False, data=data, model=model)
    val = open_dataset(str(root), preset="celebamask-hq", split="val", train=False, data=data, model=model)
    assert (len(train), len(val)) == (3, 1)
    item = train[0]
    # The merged map (hair over skin over nose) at the preset size; the 16x16 photo resized to the 8x8 masks first.
    np.testing.assert_array_equal(item["label"][0].numpy(), face(tmp_path / "again", 0))
    assert item["image"].shape == (3, 8, 8)


def test_data_check_understands_the_format(tmp_path: Path, capsys: pytest.CaptureFixture):
    from spadekit.cli import main

    root = small_celeba(tmp_path)
    assert main(["data", "check", str(root), "--preset", "celebamask-hq", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "3 train samples, 1 val samples" in out and "no problems found" in out
    assert "13 hair" in out  # the histogram names the merged classes
    (root / "CelebAMask-HQ-mask-anno" / "0" / "00001_skin.png").write_bytes(b"not a png")
    face(root, 5)  # masks without a photo
    assert main(["data", "check", str(root), "--preset", "celebamask-hq", "--quiet"]) == 1
    out = capsys.readouterr().out
    assert "00001: unreadable mask" in out and "00001_skin.png" in out and "no photo CelebA-HQ-img/5.jpg" in out
