"""The toy protocol's segmenter: training reduces the loss, save/load, resizing, the toy FID and
feature distance, the command line and its errors."""

from __future__ import annotations

import json

import pytest
import torch

from spadekit.cli import main
from spadekit.errors import CheckpointError, MissingWeightsError
from spadekit.evaluation.fid import FID
from spadekit.evaluation.toy_segmenter import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    ToyFeatures,
    ToySegmenter,
    ToySegNet,
    load_toy_segmenter,
    render_toy_set,
    save_toy_segmenter,
    score_segmenter,
    to_unit_range,
    training_step,
)

CLASSES = [f"c{i}" for i in range(12)]


@pytest.fixture(scope="module")
def scenes():
    images, labels = render_toy_set(12, 32, "train", seed=3)
    return to_unit_range(images), labels.long()


def test_training_steps_reduce_the_loss(scenes):
    images, labels = scenes
    torch.manual_seed(0)
    net = ToySegNet(12, width=8, depth=3, size=32)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = [training_step(net, optimizer, images[:8], labels[:8]) for _ in range(15)]
    # Twelve classes start near ln(12) ≈ 2.5; fitting one fixed batch must bring it well down.
    assert losses[0] > 2.0
    assert losses[-1] < 0.75 * losses[0]
    assert all(torch.isfinite(torch.tensor(losses)))


def test_save_load_round_trip_gives_the_same_outputs(tmp_path, scenes):
    images, _ = scenes
    net = ToySegNet(12, width=8, depth=3, size=32).eval()
    save_toy_segmenter(net, tmp_path / "seg", CLASSES, {"val": {"miou": 0.5}})
    assert (tmp_path / "seg" / WEIGHTS_FILE).is_file()
    config = json.loads((tmp_path / "seg" / CONFIG_FILE).read_text())
    assert config["size"] == 32 and config["feature_dim"] == 8 + 32 and config["class_names"] == CLASSES

    loaded = load_toy_segmenter(tmp_path / "seg")
    reference = ToySegmenter(net, CLASSES)
    assert torch.equal(loaded(images[:4]), reference(images[:4]))
    assert loaded.class_names == CLASSES and loaded.meta["val"]["miou"] == 0.5
    # A path to one of its files finds the folder too.
    assert torch.equal(load_toy_segmenter(tmp_path / "seg" / WEIGHTS_FILE)(images[:2]), reference(images[:2]))
    assert not any(p.requires_grad for p in loaded.parameters())


def test_other_sizes_are_resized_to_the_training_size(scenes):
    images, _ = scenes
    segmenter = ToySegmenter(ToySegNet(12, width=8, depth=3, size=32).eval(), CLASSES)
    big = torch.nn.functional.interpolate(images[:3], size=(64, 64), mode="bilinear", align_corners=False)
    logits = segmenter(big)
    assert logits.shape == (3, 12, 64, 64)
    assert segmenter.predict(big).shape == (3, 64, 64)
    # The network itself always sees its training size.
    seen = []
    segmenter.net.down[0].register_forward_pre_hook(lambda module, inputs: seen.append(tuple(inputs[0].shape[-2:])))
    assert segmenter.features(big).shape == (3, 40)
    segmenter.feature_distance(big, big)
    assert seen and set(seen) == {(32, 32)}


def test_toy_fid_of_a_set_with_itself_is_zero(scenes):
    images, _ = scenes
    segmenter = ToySegmenter(ToySegNet(12, width=4, depth=2, size=32).eval(), CLASSES)
    metric = FID(ToyFeatures(segmenter))
    metric.update(images, real=True)
    metric.update(images)
    same = metric.compute()
    assert abs(same) < 1e-9
    # ... and clearly positive against another set (an untrained net's features vary little,
    # hence the small absolute scale).
    metric.fake.reset()
    metric.update(torch.rand_like(images) * 2 - 1)
    assert metric.compute() > 1e-5


def test_feature_distance_is_zero_for_identical_images_only(scenes):
    images, _ = scenes
    segmenter = ToySegmenter(ToySegNet(12, width=8, depth=3, size=32).eval(), CLASSES)
    same = segmenter.feature_distance(images[:3], images[:3])
    assert same.shape == (3,) and torch.allclose(same, torch.zeros(3), atol=1e-6)
    assert (segmenter.feature_distance(images[:3], images[3:6]) > 1e-3).all()


def test_score_segmenter_counts_a_perfect_prediction_as_one(scenes):
    _, labels = scenes

    class Oracle(torch.nn.Module):
        num_classes = 12

        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def predict(self, images):  # images carry the answer in channel 0
            return images[:, 0].round().long()

    fake_images = labels[:, None].float().expand(-1, 3, -1, -1).contiguous()
    scores = score_segmenter(Oracle(), fake_images, labels, batch_size=5, class_names=CLASSES)
    assert scores["miou"] == pytest.approx(1.0) and scores["pixel_accuracy"] == pytest.approx(1.0)
    assert scores["images"] == 12


def test_missing_and_corrupt_files_are_named(tmp_path):
    with pytest.raises(MissingWeightsError, match=WEIGHTS_FILE):
        load_toy_segmenter(tmp_path / "nowhere")
    folder = tmp_path / "seg"
    save_toy_segmenter(ToySegNet(12, width=4, depth=2, size=16), folder, CLASSES)
    (folder / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="segmenter.safetensors"):
        load_toy_segmenter(folder)
    # Weights of another segmenter beside this config: caught by the hash the config records.
    other = tmp_path / "other"
    save_toy_segmenter(ToySegNet(12, width=4, depth=2, size=16), other, CLASSES)
    save_toy_segmenter(ToySegNet(12, width=4, depth=2, size=16), folder, CLASSES)
    (folder / WEIGHTS_FILE).write_bytes((other / WEIGHTS_FILE).read_bytes())
    with pytest.raises(CheckpointError, match="does not match segmenter.json"):
        load_toy_segmenter(folder)
    # A file that is not safetensors, with no recorded hash to catch it first.
    config = json.loads((folder / CONFIG_FILE).read_text())
    del config["weights_sha256"]
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    (folder / WEIGHTS_FILE).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_toy_segmenter(folder)
    save_toy_segmenter(ToySegNet(12, width=4, depth=2, size=16), folder, CLASSES)
    (folder / CONFIG_FILE).write_text("{ nope")
    with pytest.raises(CheckpointError, match="segmenter.json"):
        load_toy_segmenter(folder)
    (folder / CONFIG_FILE).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CheckpointError, match="not a toy segmenter"):
        load_toy_segmenter(folder)


def test_command_trains_saves_and_reports(tmp_path, capsys):
    out = tmp_path / "seg"
    code = main(["toy", "segmenter", "--out", str(out), "--steps", "3", "--size", "32", "--width", "4",
                 "--batch-size", "4", "--train-scenes", "6", "--val-scenes", "3", "--no-progress"])
    assert code == 0
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["training"]["steps"] == 3 and config["val"]["images"] == 3
    assert 0.0 <= config["val"]["miou"] <= 1.0
    # Default scales 1,2: trained on 32 px and 64→32 px scenes, scored at both sizes.
    assert config["training"]["render_sizes"] == [32, 64]
    assert set(config["val_by_size"]) == {"32", "64"} and config["val_by_size"]["32"] == config["val"]
    assert "32px mIoU" in capsys.readouterr().out
    assert load_toy_segmenter(out).size == 32


@pytest.mark.parametrize("extra, message", [(["--size", "30"], "--size 30"), (["--scales", "1,x"], "--scales 1,x")])
def test_command_rejects_bad_options(tmp_path, capsys, extra, message):
    assert main(["toy", "segmenter", "--out", str(tmp_path / "x"), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
