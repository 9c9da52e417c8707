"""data.toy_style_pairs: the style encoder reads another layout's photo in the same look; and
resuming a checkpoint written before a model option existed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from spadekit.batch import layout_batch
from spadekit.cli import main
from spadekit.config import Config, DataConfig, LossConfig, ModelConfig, load_config
from spadekit.data import ToySceneDataset, open_dataset, render_scene, scene_seed
from spadekit.data.toy import SKY
from spadekit.errors import CheckpointError, ConfigError
from spadekit.training.checkpoint import check_resumable

from helpers import tiny_spade_objective


def as_tensor_image(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1


def test_items_carry_the_next_layout_in_the_same_look():
    pairs = ToySceneDataset(3, seed=5, split="train", size=(64, 64), style_pairs=True)
    for index in range(3):
        item = pairs[index]
        look = scene_seed(5, index, "train")
        own = render_scene(look, 64, style_seed=look)
        partner = render_scene(scene_seed(5, (index + 1) % 3, "train"), 64, style_seed=look)
        # The default (val-like) preprocessing leaves 64² pictures as they are.
        assert torch.allclose(item["image"], as_tensor_image(own.image), atol=1e-5)
        assert torch.allclose(item["style_image"], as_tensor_image(partner.image), atol=1e-5)
        assert not np.array_equal(own.label, partner.label)  # another layout ...
        sky = (own.label == SKY, partner.label == SKY)
        if all(mask.sum() > 50 for mask in sky):  # ... in the same look: the same sky
            own_sky, partner_sky = own.image[sky[0]].mean(0), partner.image[sky[1]].mean(0)
            assert np.abs(own_sky - partner_sky).max() < 25


def test_without_pairs_items_are_unchanged():
    plain = ToySceneDataset(2, seed=5, size=(64, 64))
    item = plain[1]
    assert "style_image" not in item
    assert torch.allclose(item["image"], as_tensor_image(render_scene(scene_seed(5, 1, "train"), 64).image), atol=1e-5)


def test_open_dataset_passes_the_option_and_refuses_it_for_files(tmp_path):
    config = load_config("toy", ["data.toy_style_pairs=true", "data.toy_scenes=2"])
    dataset = open_dataset(None, "toy", "train", data=config.data, model=config.model)
    assert dataset.style_pairs and "style_image" in dataset[0]
    data = dataclasses.replace(config.data, format="folder")
    with pytest.raises(ConfigError, match="toy_style_pairs"):
        open_dataset(tmp_path, "toy", "train", data=data, model=config.model)


def test_the_encoder_reads_the_style_image():
    objective, batch, _, _, encoder = tiny_spade_objective(LossConfig(lambda_vgg=0))
    style = torch.rand_like(batch.image) * 2 - 1
    raw = {"label": batch.semantics[:, :4].argmax(1, keepdim=True), "instance": torch.zeros(2, 1, 64, 64, dtype=torch.long),
           "image": batch.image, "style_image": style}
    paired = layout_batch(raw, Config(model=ModelConfig(label_nc=4, use_instance=True, use_vae=True)), "cpu")
    assert torch.equal(paired.extras["style_image"], style)
    encoder.eval()
    with torch.no_grad():
        _, mu, _ = objective.generate(paired)
        expected, _ = encoder(style)
        own, _ = encoder(batch.image)
    assert torch.allclose(mu, expected) and not torch.allclose(mu, own, atol=1e-3)


def test_training_with_style_pairs_runs(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--preset", "toy", "--out", str(out), "--steps", "2", "--no-progress", "--set",
                 "model.ngf=4", "model.ndf=8", "model.width=32", "data.crop_size=32", "data.load_size=32",
                 "data.toy_scenes=4", "data.toy_style_pairs=true", "train.batch_size=2", "train.checkpoint_every=2"])
    assert code == 0, capsys.readouterr().err
    assert (out / "model" / "encoder.safetensors").exists()


def test_a_checkpoint_from_before_a_model_option_resumes_when_it_is_at_its_default():
    config = Config(model=ModelConfig(use_vae=True)).to_dict()
    old = {"config": {**config, "model": {k: v for k, v in config["model"].items() if k != "spade_kernel"}},
           "steps_per_epoch": 10}
    check_resumable(old, config, 10, "old.pt")
    changed = {**config, "model": {**config["model"], "spade_kernel": 5}}
    with pytest.raises(CheckpointError, match=r"old\.pt: .*model\.spade_kernel"):
        check_resumable(old, changed, 10, "old.pt")
