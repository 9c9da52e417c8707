"""The real COCO-Stuff samples load in both splits, as the official pipeline would give them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from spadekit.config import load_config
from spadekit.data import instance_edges, open_dataset, to_semantics

LABEL_NC = 182  # COCO-Stuff: ids 0..181, 255 = don't-care -> 182


def _official_test_time(label_path: Path, image_path: Path, inst_path: Path, size: int = 256):
    """The official COCO test-time recipe written with torchvision: resize to 256 (nearest for ids,
    bicubic for the photo), ToTensor, ids * 255, 255 -> label_nc, photo normalised to [-1, 1]."""
    nearest = T.Compose([T.Resize([size, size], interpolation=T.InterpolationMode.NEAREST), T.ToTensor()])
    bicubic = T.Compose(
        [T.Resize([size, size], interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(), T.Normalize((0.5,) * 3, (0.5,) * 3)]
    )
    label = nearest(Image.open(label_path)) * 255.0
    label[label == 255] = LABEL_NC
    instance = (nearest(Image.open(inst_path)) * 255).long()
    image = bicubic(Image.open(image_path).convert("RGB"))
    return label.long(), instance, image


@pytest.mark.parametrize("split,count", [("train", 13), ("val", 8)])
def test_both_splits_load_with_the_official_test_time_tensors(coco_samples, split, count):
    ds = open_dataset(coco_samples, preset="coco", split=split, train=False)
    assert len(ds) == count
    for i in range(len(ds)):
        item = ds[i]
        image_path = Path(item["path"])
        assert image_path.parent.name == f"{split}_img"
        stem = image_path.stem
        label, instance, image = _official_test_time(
            coco_samples / f"{split}_label" / f"{stem}.png", image_path, coco_samples / f"{split}_inst" / f"{stem}.png"
        )
        assert item["label"].dtype == torch.int64 and item["label"].shape == (1, 256, 256)
        assert item["instance"].dtype == torch.int64 and item["instance"].shape == (1, 256, 256)
        assert item["image"].dtype == torch.float32 and item["image"].shape == (3, 256, 256)
        assert torch.equal(item["label"], label)
        assert torch.equal(item["instance"], instance)
        assert torch.equal(item["image"], image)


def test_value_ranges_and_dontcare(coco_samples):
    ds = open_dataset(coco_samples, preset="coco", split="val", train=False)
    saw_dontcare = False
    for i in range(len(ds)):
        item = ds[i]
        raw = np.array(Image.open(coco_samples / "val_label" / (Path(item["path"]).stem + ".png")))
        assert 0 <= int(item["label"].min()) and int(item["label"].max()) <= LABEL_NC
        assert float(item["image"].min()) >= -1.0 and float(item["image"].max()) <= 1.0
        assert 255 not in item["label"]
        if (raw == 255).any():
            saw_dontcare = True
            assert (item["label"] == LABEL_NC).any()  # the don't-care index
        # Nearest resizing invents no ids: every id of the item is in the file (255 shown as 182).
        raw_ids = set(np.unique(raw).tolist())
        raw_ids = {LABEL_NC if v == 255 else v for v in raw_ids}
        assert set(item["label"].unique().tolist()) <= raw_ids
    assert saw_dontcare


def test_semantics_from_a_real_sample(coco_samples):
    model = load_config("coco").model
    ds = open_dataset(coco_samples, preset="coco", split="val", train=False)
    item = ds[0]
    sem = to_semantics(item["label"][None], model.label_nc, model.contain_dontcare, item["instance"][None])
    assert sem.shape == (1, model.semantic_nc, 256, 256) == (1, 184, 256, 256)
    assert torch.equal(sem[:, :183].sum(1), torch.ones(1, 256, 256))  # exactly one class per pixel
    edges = sem[0, -1]
    assert set(edges.unique().tolist()) <= {0.0, 1.0}
    assert 0.0 < float(edges.mean()) < 0.5


def _edges_by_hand(inst: np.ndarray) -> np.ndarray:
    """Reference written pixel-wise: an edge where any 4-neighbour has another id."""
    h, w = inst.shape
    out = np.zeros((h, w), np.float32)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
                ny, nx = y + dy, x + dx
                if 0 <= ny < h and 0 <= nx < w and inst[ny, nx] != inst[y, x]:
                    out[y, x] = 1
    return out


def test_instance_edges_hand_made_case():
    inst = torch.tensor(
        [
            [0, 0, 0, 0, 0],
            [0, 7, 7, 0, 0],
            [0, 7, 7, 0, 0],
            [0, 0, 0, 0, 3],
            [0, 0, 0, 0, 3],
        ]
    )
    expected = torch.tensor(
        [
            [0, 1, 1, 0, 0],
            [1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1],
            [0, 1, 1, 1, 1],
            [0, 0, 0, 1, 1],
        ],
        dtype=torch.float32,
    )
    assert torch.equal(instance_edges(inst[None, None])[0, 0], expected)


def test_instance_edges_of_a_real_crop_match_the_pixelwise_definition(coco_samples):
    ds = open_dataset(coco_samples, preset="coco", split="train", train=False)
    full = ds[9]["instance"][0]
    # The 48x48 window (on a coarse grid) with the most instance ids, so the check is not trivial.
    y, x = max(((y, x) for y in range(0, 209, 16) for x in range(0, 209, 16)), key=lambda p: len(full[p[0] : p[0] + 48, p[1] : p[1] + 48].unique()))
    inst = full[y : y + 48, x : x + 48]
    assert len(inst.unique()) >= 3
    expected = _edges_by_hand(inst.numpy())
    assert np.array_equal(instance_edges(inst[None, None])[0, 0].numpy(), expected)


def _find_crop(full: torch.Tensor, crop: torch.Tensor) -> set[tuple[int, int, bool]]:
    """All (x, y, flip) placing ``crop`` inside ``full`` (both (C, H, W))."""
    size = crop.shape[-1]
    found = set()
    for flip in (False, True):
        target = crop.flip(-1) if flip else crop
        for y in range(full.shape[-2] - size + 1):
            for x in range(full.shape[-1] - size + 1):
                if torch.equal(full[..., y : y + size, x : x + size], target):
                    found.add((x, y, flip))
    return found


def test_training_crop_and_flip_are_shared_by_label_instance_and_image(coco_samples):
    data = load_config("coco").data
    data.load_size, data.crop_size = 40, 32  # small, so the crop search below is quick
    ds = open_dataset(coco_samples, preset="coco", split="train", train=True, data=data)
    # The test-time item with load_size = crop_size = 40 is the whole resized picture, uncropped.
    whole = load_config("coco").data
    whole.load_size = whole.crop_size = 40
    ref = open_dataset(coco_samples, preset="coco", split="train", train=False, data=whole)[1]
    flips = set()
    for seed in range(6):
        torch.manual_seed(seed)
        item = ds[1]
        assert item["image"].shape == (3, 32, 32) and item["label"].shape == item["instance"].shape == (1, 32, 32)
        where = _find_crop(ref["image"], item["image"])
        assert len(where) == 1
        assert where <= _find_crop(ref["label"], item["label"])
        assert where <= _find_crop(ref["instance"], item["instance"])
        flips |= {f for _, _, f in where}
    assert flips == {False, True}
