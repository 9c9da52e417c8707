"""The toy-scenes world: deterministic, every class appears, textured photos, same scenes in memory and on disk."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.data import TOY_CLASSES, TOY_COLORS, ToySceneDataset, open_dataset, render_scene, scene_seed
from spadekit.data.toy import FIRST_INSTANCE_ID, THING_CLASSES, WINDOW, BUILDING


def _digest(scene) -> str:
    h = hashlib.sha256()
    for array in scene:
        h.update(array.tobytes())
    return h.hexdigest()


def test_same_seed_same_bytes_other_seed_other_scene():
    a, b = render_scene(1234, 64), render_scene(1234, 64)
    assert _digest(a) == _digest(b)
    assert _digest(render_scene(1235, 64)) != _digest(a)
    assert a.label.shape == a.instance.shape == (64, 64) and a.image.shape == (64, 64, 3)
    assert a.label.dtype == a.instance.dtype == a.image.dtype == np.uint8
    wide = render_scene(7, (96, 48))
    assert wide.label.shape == (48, 96) and wide.image.shape == (48, 96, 3)


def test_class_list_matches_the_toy_preset():
    assert len(TOY_CLASSES) == len(TOY_COLORS) == load_config("toy").model.label_nc
    assert len(set(TOY_COLORS)) == len(TOY_COLORS)


@pytest.fixture(scope="module")
def thousand_scenes():
    return [render_scene(scene_seed(0, i), 64) for i in range(1000)]


def test_every_class_appears_across_a_thousand_scenes(thousand_scenes):
    present = np.zeros(len(TOY_CLASSES), np.int64)
    for scene in thousand_scenes:
        present += np.bincount(scene.label.ravel(), minlength=len(TOY_CLASSES)) > 0
        assert scene.label.max() < len(TOY_CLASSES)
    # Each class in a good share of the scenes (not just once), so a model can learn it.
    assert (present >= 100).all(), dict(zip(TOY_CLASSES, present.tolist()))


def test_instance_ids(thousand_scenes):
    for scene in thousand_scenes[:200]:
        things = scene.instance >= FIRST_INSTANCE_ID
        # Stuff pixels carry their class id; thing pixels are things (or windows of a building).
        assert np.array_equal(scene.instance[~things], scene.label[~things])
        assert np.isin(scene.label[things], THING_CLASSES + (WINDOW,)).all()
        for inst in np.unique(scene.instance[things]):
            classes = set(np.unique(scene.label[scene.instance == inst]).tolist())
            assert len(classes) == 1 or classes <= {BUILDING, WINDOW}


def test_photos_are_textured_varied_and_still_recognisable(thousand_scenes):
    train, test = thousand_scenes[:200], thousand_scenes[200:300]
    n = len(TOY_CLASSES)
    sums, counts = np.zeros((n, 3)), np.zeros(n)
    per_image = [[] for _ in range(n)]
    within = [[] for _ in range(n)]
    for scene in train:
        for c in range(n):
            pixels = scene.image[scene.label == c].astype(np.float64)
            if len(pixels):
                sums[c] += pixels.sum(0)
                counts[c] += len(pixels)
                per_image[c].append(pixels.mean(0))
            if len(pixels) >= 30:
                within[c].append(pixels.std(0).mean())
    for c, name in enumerate(TOY_CLASSES):
        assert np.mean(within[c]) > 5, f"{name} looks flat"  # texture, not a flat colour
        assert np.std(per_image[c], axis=0).mean() > 8, f"{name} looks the same in every image"
    # A per-pixel nearest-colour classifier is far above chance, yet far from perfect: each class is
    # recognisable but colour alone does not give the label.
    centroids = sums / counts[:, None]
    hits = total = 0
    for scene in test:
        distance = ((scene.image[..., None, :].astype(np.float64) - centroids) ** 2).sum(-1)
        hits += int((distance.argmin(-1) == scene.label).sum())
        total += scene.label.size
    assert 0.3 < hits / total < 0.9


def test_in_memory_scenes_equal_the_written_files(tmp_path):
    out = tmp_path / "toy"
    assert main(["toy", "make", str(out), "--n", "6", "--size", "32", "--seed", "3", "--quiet"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["images", "instances", "labels", "palette.json", "toy.json"]
    assert len(list((out / "images").glob("*.png"))) == 6
    palette = json.loads((out / "palette.json").read_text())
    assert palette["names"] == list(TOY_CLASSES) and palette["colors"] == [list(c) for c in TOY_COLORS]

    config = load_config("toy", overrides=["data.toy_scenes=6", "data.toy_seed=3", "data.crop_size=32", "data.load_size=36"])
    memory = open_dataset(None, "toy", "train", data=config.data, model=config.model)
    files = open_dataset(out, "toy", "train", data=config.data, model=config.model)
    assert isinstance(memory, ToySceneDataset) and len(memory) == len(files) == 6
    for i in (0, 5):
        for train in (False, True):
            torch.manual_seed(i)
            a = (open_dataset(None, "toy", "train", train=train, data=config.data, model=config.model))[i]
            torch.manual_seed(i)
            b = (open_dataset(out, "toy", "train", train=train, data=config.data, model=config.model))[i]
            for key in ("label", "instance", "image"):
                assert torch.equal(a[key], b[key]), (i, train, key)
            assert a["image"].shape == (3, 32, 32) and a["label"].dtype == torch.int64
        assert Path(files[i]["path"]).stem == f"{i:06d}" and memory[i]["path"].endswith(f"{i:06d}")


def test_toy_make_is_deterministic_and_refuses_to_overwrite(tmp_path, capsys):
    for name in ("a", "b"):
        assert main(["toy", "make", str(tmp_path / name), "--n", "3", "--size", "24", "--seed", "9", "--quiet"]) == 0
    for sub in ("labels", "images", "instances"):
        for f in (tmp_path / "a" / sub).iterdir():
            assert f.read_bytes() == (tmp_path / "b" / sub / f.name).read_bytes()
    assert main(["toy", "make", str(tmp_path / "a"), "--n", "3", "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["toy", "make", str(tmp_path / "a"), "--n", "4", "--size", "24", "--quiet", "--force"]) == 0
    assert len(list((tmp_path / "a" / "labels").iterdir())) == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_val_split_is_another_seed_stream():
    train = ToySceneDataset(4, seed=0, split="train", size=(32, 32))
    val = ToySceneDataset(4, seed=0, split="val", size=(32, 32))
    assert not np.array_equal(train.scene(0).image, val.scene(0).image)
    assert np.array_equal(train.scene(2).label, render_scene(scene_seed(0, 2, "train"), 32).label)
    config = load_config("toy")
    ds = open_dataset(None, "toy", "val", data=config.data, model=config.model)
    item = ds[0]
    assert len(ds) == config.data.toy_scenes
    assert item["label"].shape == (1, 128, 128) and item["instance"].shape == (1, 128, 128)
    assert np.array_equal(item["label"][0].numpy(), render_scene(scene_seed(0, 0, "val"), 128).label)
