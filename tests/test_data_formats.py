"""Tiny Cityscapes, ADE20K, COCO-Stuff and folder trees (built here) load with each format's conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spadekit.config import load_config
from spadekit.data import instance_edges, make_loader, open_dataset
from spadekit.data.formats import is_outdoor_scene, natural_key
from spadekit.data.transforms import Preprocess


def _blocks(h: int, w: int, ids: list[int], dtype=np.uint8) -> np.ndarray:
    """A map of vertical stripes, one per id (wide enough to survive nearest resizing)."""
    out = np.zeros((h, w), dtype)
    for i, v in enumerate(ids):
        out[:, i * w // len(ids) : (i + 1) * w // len(ids)] = v
    return out


def _photo(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


# ------------------------------------------------------------------------------ cityscapes


def _cityscapes_tree(root: Path) -> None:
    for split, cities in (("train", ("aachen", "bremen")), ("val", ("lindau",))):
        for c, city in enumerate(cities):
            for frame in (19, 20):
                stem = f"{city}_{c:06d}_{frame:06d}"
                gt = root / "gtFine" / split / city
                left = root / "leftImg8bit" / split / city
                gt.mkdir(parents=True, exist_ok=True)
                left.mkdir(parents=True, exist_ok=True)
                Image.fromarray(_blocks(32, 64, [7, 26, 33, 0])).save(gt / f"{stem}_gtFine_labelIds.png")
                # 16-bit ids: stuff keeps its class id, cars 26000+, bicycles 33000+ (above 32767).
                inst = _blocks(32, 64, [7, 26001, 33000, 0], np.uint16)
                inst[:8, 16:32] = 26002
                Image.fromarray(inst).save(gt / f"{stem}_gtFine_instanceIds.png")
                Image.fromarray(_blocks(32, 64, [1, 2, 3, 4])).save(gt / f"{stem}_gtFine_color.png")  # ignored
                Image.fromarray(_photo(32, 64, frame)).save(left / f"{stem}_leftImg8bit.png")


def test_cityscapes_tree(tmp_path):
    _cityscapes_tree(tmp_path)
    config = load_config("cityscapes", overrides=["data.crop_size=64", "data.load_size=64"])
    ds = open_dataset(tmp_path, "cityscapes", "train", train=False, data=config.data, model=config.model)
    assert len(ds) == 4
    assert [Path(ds[i]["path"]).name for i in range(4)] == [
        "aachen_000000_000019_leftImg8bit.png",
        "aachen_000000_000020_leftImg8bit.png",
        "bremen_000001_000019_leftImg8bit.png",
        "bremen_000001_000020_leftImg8bit.png",
    ]
    item = ds[0]
    # fixed mode: crop_size x crop_size / aspect_ratio = 64 x 32, the source size, so values are exact.
    assert item["label"].shape == (1, 32, 64) and item["image"].shape == (3, 32, 64)
    expected_inst = _blocks(32, 64, [7, 26001, 33000, 0], np.int64)
    expected_inst[:8, 16:32] = 26002
    assert torch.equal(item["instance"][0], torch.from_numpy(expected_inst))  # no wrap-around above 32767
    assert torch.equal(item["label"][0], torch.from_numpy(_blocks(32, 64, [7, 26, 33, 0], np.int64)))
    # The official reading wraps 16-bit ids into int16; the edge map is the same either way.
    wrapped = torch.from_numpy(expected_inst.astype(np.uint16).view(np.int16).astype(np.int64))
    assert wrapped.min() < 0
    assert torch.equal(instance_edges(item["instance"][None]), instance_edges(wrapped[None, None]))
    val = open_dataset(tmp_path, "cityscapes", "val", data=config.data, model=config.model)
    assert len(val) == 2 and all("lindau" in val[i]["path"] for i in range(2))


def test_cityscapes_default_size_is_512x256(tmp_path):
    _cityscapes_tree(tmp_path)
    item = open_dataset(tmp_path, "cityscapes", "val")[0]
    assert item["label"].shape == (1, 256, 512) and item["image"].shape == (3, 256, 512)
    assert set(item["label"].unique().tolist()) <= {0, 7, 26, 33}


# ------------------------------------------------------------------------------ ADE20K


def _ade_tree(root: Path) -> Path:
    base = root / "ADEChallengeData2016"
    scenes = {
        "ADE_train_00000001": "street",
        "ADE_train_00000002": "bathroom",
        "ADE_train_00000010": "highway",
        "ADE_val_00000001": "kitchen",
        "ADE_val_00000002": "church_outdoor",
    }
    for stem in scenes:
        split = "training" if "_train_" in stem else "validation"
        (base / "images" / split).mkdir(parents=True, exist_ok=True)
        (base / "annotations" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(_photo(40, 48, len(stem))).save(base / "images" / split / f"{stem}.jpg", quality=95)
        Image.fromarray(_blocks(40, 48, [0, 5, 150])).save(base / "annotations" / split / f"{stem}.png")
    (base / "sceneCategories.txt").write_text("".join(f"{k} {v}\n" for k, v in scenes.items()))
    (base / "objectInfo150.png").write_bytes(b"")  # other pictures in the tree are ignored
    return root


def test_ade20k_tree_keeps_raw_ids(tmp_path):
    root = _ade_tree(tmp_path)
    config = load_config("ade20k", overrides=["data.crop_size=32"])
    ds = open_dataset(root, "ade20k", "train", train=False, data=config.data, model=config.model)
    assert [Path(ds[i]["path"]).stem for i in range(len(ds))] == ["ADE_train_00000001", "ADE_train_00000002", "ADE_train_00000010"]
    item = ds[0]
    assert "instance" not in item
    assert item["label"].shape == (1, 32, 32) and item["image"].shape == (3, 32, 32)
    # Raw ids as NVIDIA's pretrained model expects: 0 (unknown) stays 0, class 150 stays 150.
    assert set(item["label"].unique().tolist()) == {0, 5, 150}
    assert int(item["label"][0, 0, 0]) == 0 and int(item["label"][0, 0, -1]) == 150
    val = open_dataset(root, "ade20k", "val", data=config.data, model=config.model)
    assert len(val) == 2


def test_ade20k_outdoor_selects_outdoor_scenes(tmp_path):
    root = _ade_tree(tmp_path)
    config = load_config("ade20k-outdoor", overrides=["data.crop_size=32"])
    train = open_dataset(root, "ade20k-outdoor", "train", data=config.data, model=config.model)
    assert sorted(Path(s.image).stem for s in train.samples) == ["ADE_train_00000001", "ADE_train_00000010"]
    val = open_dataset(root, "ade20k-outdoor", "val", data=config.data, model=config.model)
    assert [Path(s.image).stem for s in val.samples] == ["ADE_val_00000002"]
    # An explicit list of stems at the root wins over the scene rule.
    (root / "ade20k_outdoor_images.txt").write_text("ADE_train_00000002\n")
    only = open_dataset(root, "ade20k-outdoor", "train", data=config.data, model=config.model)
    assert [Path(s.image).stem for s in only.samples] == ["ADE_train_00000002"]


def test_outdoor_rule():
    assert is_outdoor_scene("street") and is_outdoor_scene("mountain_snowy") and is_outdoor_scene("church_outdoor")
    assert not is_outdoor_scene("bathroom") and not is_outdoor_scene("kitchen") and not is_outdoor_scene("church_indoor")


# ------------------------------------------------------------------------------ COCO layout


def _coco_tree(root: Path, portrait: bool = False) -> None:
    for split, stems in (("train", ("000000000009", "000000000025")), ("val", ("000000000139",))):
        suffixes = ("", "_portrait") if portrait and split == "train" else ("",)
        for suffix in suffixes:
            for stem in stems:
                stem = stem + ("1" if suffix else "")
                for sub in ("label", "img", "inst"):
                    (root / f"{split}_{sub}{suffix}").mkdir(parents=True, exist_ok=True)
                label = _blocks(30, 40, [0, 181, 255, 90])
                Image.fromarray(label).save(root / f"{split}_label{suffix}" / f"{stem}.png")
                Image.fromarray(_blocks(30, 40, [0, 1, 2, 3])).save(root / f"{split}_inst{suffix}" / f"{stem}.png")
                Image.fromarray(_photo(30, 40, int(stem) % 1000)).save(root / f"{split}_img{suffix}" / f"{stem}.jpg")


def test_coco_tree(tmp_path):
    _coco_tree(tmp_path)
    config = load_config("coco", overrides=["data.crop_size=32", "data.load_size=36"])
    val = open_dataset(tmp_path, "coco", "val", data=config.data, model=config.model)
    assert len(val) == 1
    item = val[0]
    assert item["label"].shape == item["instance"].shape == (1, 32, 32)
    assert set(item["label"].unique().tolist()) == {0, 181, 182, 90}  # 255 -> label_nc = 182
    assert set(item["instance"].unique().tolist()) == {0, 1, 2, 3}
    torch.manual_seed(0)
    train = open_dataset(tmp_path, "coco", "train", data=config.data, model=config.model)
    assert len(train) == 2 and train[1]["image"].shape == (3, 32, 32)


def test_coco_portraits_are_added_at_training_time_only(tmp_path):
    _coco_tree(tmp_path, portrait=True)
    config = load_config("coco", overrides=["data.crop_size=32", "data.load_size=36"])
    assert len(open_dataset(tmp_path, "coco", "train", train=True, data=config.data, model=config.model)) == 4
    assert len(open_dataset(tmp_path, "coco", "train", train=False, data=config.data, model=config.model)) == 2


# ------------------------------------------------------------------------------ folder


def _folder_config(label_nc: int = 4, **data):
    config = load_config("custom", overrides=[f"model.label_nc={label_nc}", "data.crop_size=16", "data.load_size=16"])
    for key, value in data.items():
        setattr(config.data, key, value)
    return config


def test_folder_with_palette_colours(tmp_path):
    colors = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]
    (tmp_path / "palette.json").write_text('{"names": ["bg", "r", "g", "b"], "colors": %s}' % colors)
    for sub in ("labels", "images"):
        (tmp_path / sub).mkdir()
    ids = _blocks(16, 16, [0, 3, 1, 2])
    Image.fromarray(np.asarray(colors, np.uint8)[ids]).save(tmp_path / "labels" / "a.png")
    Image.fromarray(_photo(16, 16, 0)).save(tmp_path / "images" / "a.jpg")
    config = _folder_config(palette=str(tmp_path / "palette.json"))
    ds = open_dataset(tmp_path, "custom", "train", train=False, data=config.data, model=config.model)
    assert torch.equal(ds[0]["label"][0], torch.from_numpy(ids.astype(np.int64)))
    assert ds.class_names == ("bg", "r", "g", "b")
    # Without data.palette the folder's own palette.json is used for colour-coded labels.
    config = _folder_config()
    ds = open_dataset(tmp_path, "custom", "train", train=False, data=config.data, model=config.model)
    assert torch.equal(ds[0]["label"][0], torch.from_numpy(ids.astype(np.int64)))


def test_folder_pairs_by_stem_in_natural_order_and_split_folders(tmp_path):
    for split in ("train", "val"):
        for sub in ("labels", "images", "instances"):
            (tmp_path / split / sub).mkdir(parents=True)
        stems = ["img10", "img2", "img1"] if split == "train" else ["v"]
        for stem in stems:
            Image.fromarray(_blocks(16, 16, [1, 2])).save(tmp_path / split / "labels" / f"{stem}.png")
            Image.fromarray(_blocks(16, 16, [5, 6])).save(tmp_path / split / "instances" / f"{stem}.png")
            Image.fromarray(_photo(16, 16, 1)).save(tmp_path / split / "images" / f"{stem}.png")
    config = _folder_config()
    config.model.use_instance = True
    ds = open_dataset(tmp_path, "custom", "train", train=False, data=config.data, model=config.model)
    assert [Path(ds[i]["path"]).stem for i in range(3)] == ["img1", "img2", "img10"]
    assert set(ds[0]["instance"].unique().tolist()) == {5, 6}
    assert len(open_dataset(tmp_path, "custom", "val", data=config.data, model=config.model)) == 1
    assert natural_key("a9.png") < natural_key("a10.png")


def test_make_loader_batches(tmp_path):
    _coco_tree(tmp_path)
    config = load_config("coco", overrides=["data.crop_size=32", "data.load_size=36", "data.num_workers=0"])
    ds = open_dataset(tmp_path, "coco", "train", data=config.data, model=config.model)
    batches = list(make_loader(ds, 2, shuffle=True, data=config.data, generator=torch.Generator().manual_seed(0)))
    assert len(batches) == 1
    batch = batches[0]
    assert batch["label"].shape == (2, 1, 32, 32) and batch["label"].dtype == torch.int64
    assert batch["instance"].shape == (2, 1, 32, 32) and batch["image"].shape == (2, 3, 32, 32)
    assert len(batch["path"]) == 2 and all(isinstance(p, str) for p in batch["path"])


# ------------------------------------------------------------------------------ preprocess modes


# Source 100x60, load_size 50, crop_size 32, aspect ratio 2: (width, height) after the resize step
# (worked out by hand from each mode's definition) and whether a 32x32 crop follows.
PREPROCESS = {
    "resize_and_crop": ((50, 50), True),
    "crop": ((100, 60), True),
    "scale_width": ((50, 30), False),  # width 100 -> 50, height 60 * 50/100
    "scale_width_and_crop": ((50, 30), True),  # a 32-high crop of a 30-high picture: 2 zero rows
    "scale_shortside": ((83, 50), False),  # short side 60 -> 50, long side int(100 * 50/60)
    "scale_shortside_and_crop": ((83, 50), True),
    "fixed": ((32, 16), False),  # crop_size x crop_size / aspect_ratio
    "none": ((96, 64), False),  # sides rounded to multiples of 32
}


def _crops(array: np.ndarray, size: int) -> dict[tuple[int, int, bool], np.ndarray]:
    """Every size x size window of ``array`` (zero-padded past the border, as PIL's crop), flipped or not."""
    h, w = array.shape[:2]
    padded = np.zeros((max(h, size), max(w, size)) + array.shape[2:], array.dtype)
    padded[:h, :w] = array
    out = {}
    for y in range(max(h - size, 0) + 1):
        for x in range(max(w - size, 0) + 1):
            window = padded[y : y + size, x : x + size]
            out[(x, y, False)], out[(x, y, True)] = window, window[:, ::-1]
    return out


@pytest.mark.parametrize("mode", list(PREPROCESS))
def test_every_preprocess_mode_by_value(tmp_path, mode):
    for sub in ("labels", "images"):
        (tmp_path / sub).mkdir()
    ids = _blocks(60, 100, [0, 1, 2, 3])
    ids[:30, ::7] = 1  # detail that tells crop positions and flips apart
    photo = _photo(60, 100, 3)
    Image.fromarray(ids).save(tmp_path / "labels" / "a.png")
    Image.fromarray(photo).save(tmp_path / "images" / "a.png")
    config = load_config("custom", overrides=["model.label_nc=4", "data.load_size=50", "data.crop_size=32", f"data.preprocess={mode}"])
    config.model.aspect_ratio = 2.0
    ds = open_dataset(tmp_path, "custom", "train", train=True, data=config.data, model=config.model)

    # Independently: PIL resizes (nearest for ids, bicubic for the photo) to the hand-computed size,
    # then every possible crop and flip; the item must be exactly one of them, the same for both.
    (w, h), crops = PREPROCESS[mode]
    label_r = np.asarray(Image.fromarray(ids).resize((w, h), Image.Resampling.NEAREST)) if (w, h) != (100, 60) else ids
    photo_r = np.asarray(Image.fromarray(photo).resize((w, h), Image.Resampling.BICUBIC)) if (w, h) != (100, 60) else photo
    if crops:
        label_options, photo_options = _crops(label_r, 32), _crops(photo_r, 32)
    else:
        label_options = {(0, 0, False): label_r, (0, 0, True): label_r[:, ::-1]}
        photo_options = {(0, 0, False): photo_r, (0, 0, True): photo_r[:, ::-1]}
    seen = set()
    for seed in range(4):
        torch.manual_seed(seed)
        item = ds[0]
        image = item["image"].permute(1, 2, 0).numpy()
        matches = [key for key, p in photo_options.items() if np.abs(p.astype(np.float32) / 127.5 - 1 - image).max() < 1e-6]
        assert len(matches) == 1, f"{mode}: the photo is none (or several) of the expected crops/flips"
        assert np.array_equal(item["label"][0].numpy(), label_options[matches[0]]), f"{mode}: label not aligned with the photo"
        seen.add(matches[0])
    assert any(flip for *_, flip in seen), "flips are drawn"


def test_test_time_preprocess_is_deterministic_and_centred():
    recipe = Preprocess.for_split("scale_width_and_crop", 286, 256, train=False)
    assert recipe.load_size == 256 and not recipe.flip
    params = recipe.sample(512, 1024)  # scaled to 256 x 512: the 256 crop is centred vertically
    assert params.crop_pos == (0, 128) and not params.flip


def test_folder_with_only_a_train_folder_has_no_val_split(tmp_path):
    for sub in ("labels", "images"):
        (tmp_path / "train" / sub).mkdir(parents=True)
    Image.fromarray(_blocks(16, 16, [1, 2])).save(tmp_path / "train" / "labels" / "a.png")
    Image.fromarray(_photo(16, 16, 1)).save(tmp_path / "train" / "images" / "a.png")
    config = _folder_config()
    assert len(open_dataset(tmp_path, "custom", "train", data=config.data, model=config.model)) == 1
    from spadekit.errors import DataError

    with pytest.raises(DataError, match="no val samples"):
        open_dataset(tmp_path, "custom", "val", data=config.data, model=config.model)
