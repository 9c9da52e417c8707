"""model.latent_spade: the VAE latent conditions every SPADE layer, not only the start map."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from spadekit.cli import main
from spadekit.config import ModelConfig
from spadekit.errors import ConfigError
from spadekit.inference import one_hot
from spadekit.models.norms import SPADE
from spadekit.release import load_model

from helpers import assert_lively, label_batch, lively_model

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "add_latent_spade.py"
TINY = ["model.ngf=4", "model.ndf=8", "model.width=32", "model.spade_hidden=8", "data.crop_size=32", "data.load_size=32",
        "data.toy_scenes=4", "train.batch_size=2", "train.checkpoint_every=2", "loss.lambda_vgg=0"]


def test_a_latent_spade_layer_adds_a_linear_map_of_z_to_its_hidden_map_before_the_relu():
    torch.manual_seed(0)
    layer = SPADE(6, 4, norm="instance", kernel_size=3, hidden=5, latent_dim=3)
    x, z = torch.randn(2, 6, 8, 8), torch.randn(2, 3)
    segmap = F.one_hot(torch.randint(0, 4, (2, 8, 8)), 4).permute(0, 3, 1, 2).float()
    shared, gamma, beta = layer.mlp_shared[0], layer.mlp_gamma, layer.mlp_beta
    pre = F.conv2d(segmap, shared.weight, shared.bias, padding=1) + (z @ layer.mlp_latent.weight.t())[:, :, None, None]
    hidden = pre.clamp(min=0)
    normalized = (x - x.mean((2, 3), keepdim=True)) / torch.sqrt(x.var((2, 3), unbiased=False, keepdim=True) + 1e-5)
    expected = normalized * (1 + F.conv2d(hidden, gamma.weight, gamma.bias, padding=1)) + F.conv2d(hidden, beta.weight, beta.bias, padding=1)
    assert (layer(x, segmap, z) - expected).abs().max() < 1e-5
    # Each sample's own latent: swapping the latents swaps the outputs' modulation.
    assert not torch.allclose(layer(x, segmap, z), layer(x, segmap, z.flip(0)))
    with pytest.raises(ValueError, match="pass z"):
        layer(x, segmap)


@pytest.mark.parametrize("training", [True, False], ids=["training forward", "eval forward"])
def test_the_latent_reaches_every_spade_layer(training):
    model = lively_model("custom", {"label_nc": 5, "ngf": 4, "width": 64, "spade_hidden": 8, "norm_G": "batch",
                                    "use_vae": True, "latent_spade": True, "use_instance": True})
    generator = model.generator.train(training)
    index, edges = label_batch(model)
    semantics = one_hot(index, 5, edges, torch.float32)  # exactly one-hot: the training forward's layout path would apply
    z = torch.randn(2, model.config.model.z_dim)
    images = generator(semantics, z)
    assert_lively(images)
    images.square().mean().backward()
    layers = {name: m for name, m in generator.named_modules() if isinstance(m, SPADE)}
    assert len(layers) == 3 * 2 + 4 * 3  # head_0, G_middle_0/1: two norms each; up_0..up_3: three (learned shortcut)
    for name, layer in layers.items():
        assert layer.mlp_latent is not None and layer.mlp_latent.weight.grad is not None, name
        assert layer.mlp_latent.weight.grad.abs().sum() > 0, name


def test_latent_spade_is_refused_where_there_is_no_latent_or_no_spade_generator():
    with pytest.raises(ConfigError, match="latent_spade"):
        ModelConfig(latent_spade=True)
    with pytest.raises(ConfigError, match="latent_spade"):
        ModelConfig(latent_spade=True, use_vae=True, generator="pix2pixhd")
    assert main(["train", "--preset", "toy", "--out", "/nonexistent/never", "--steps", "1", "--set", "model.use_vae=false",
                 "model.latent_spade=true"]) != 0


def train(out: Path, steps: int, flags: list[str] = (), overrides: list[str] = ()) -> None:
    args = ["train", "--preset", "toy", "--out", str(out), "--steps", str(steps), "--no-progress", "--no-tensorboard"]
    assert main([*args, *flags, "--set", *TINY, *overrides]) == 0


def test_add_latent_spade_keeps_the_images_and_the_run_resumes_growing_the_latent_weights(tmp_path):
    train(tmp_path / "first", 2)
    checkpoint = tmp_path / "first" / "checkpoints" / "step-00000002.pt"
    grown = tmp_path / "start.pt"
    done = subprocess.run([sys.executable, str(SCRIPT), str(checkpoint), str(grown)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before, after = torch.load(checkpoint, weights_only=True), torch.load(grown, weights_only=True)
    assert after["config"]["model"]["latent_spade"] is True
    for part in ("generator", "ema"):
        added = [k for k in after[part] if k not in before[part]]
        assert added and all(k.endswith("mlp_latent.weight") and not after[part][k].any() for k in added)
        assert all(torch.equal(after[part][k], before[part][k]) for k in before[part])
    for part in ("discriminator", "encoder", "optimizer_D", "step", "rng"):
        assert str(before[part]) == str(after[part])
    # Adam's moments follow their parameters: the encoder's first weight sits after the new generator weights.
    old_g = sum(1 for k in before["generator"] if not k.endswith(("weight_u", "weight_v", "running_mean", "running_var", "num_batches_tracked")))
    new_g = old_g + len([k for k in after["generator"] if k not in before["generator"]])
    assert torch.equal(after["optimizer_G"]["state"][new_g]["exp_avg"], before["optimizer_G"]["state"][old_g]["exp_avg"])
    assert torch.equal(after["optimizer_G"]["state"][0]["exp_avg"], before["optimizer_G"]["state"][0]["exp_avg"])
    assert len(after["optimizer_G"]["param_groups"][0]["params"]) == len(before["optimizer_G"]["param_groups"][0]["params"]) + new_g - old_g
    # The same generator function: zero latent weights draw the images the checkpoint drew.
    train(tmp_path / "same", 0, ["--resume", str(checkpoint)])
    train(tmp_path / "grown", 0, ["--resume", str(grown)], ["model.latent_spade=true"])
    plain, latent = load_model(tmp_path / "same" / "model"), load_model(tmp_path / "grown" / "model")
    index, edges = label_batch(plain, block=8)
    semantics = one_hot(index, 12, edges, torch.float32)
    z = torch.randn(2, plain.config.model.z_dim)
    with torch.no_grad():
        assert (plain.generator(semantics, z) - latent.generator(semantics, z)).abs().max() < 1e-6
    # Resumed, the run trains the latent weights away from zero.
    train(tmp_path / "grown", 4, ["--resume", str(grown)], ["model.latent_spade=true"])
    final = load_file(str(tmp_path / "grown" / "model" / "generator.safetensors"))
    assert any(final[k].abs().sum() > 0 for k in final if k.endswith("mlp_latent.weight"))


def test_add_latent_spade_refuses_a_checkpoint_without_a_latent(tmp_path):
    train(tmp_path / "plain", 2, overrides=["model.use_vae=false"])
    out = tmp_path / "never.pt"
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "plain" / "checkpoints" / "step-00000002.pt"), str(out)],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "use_vae" in done.stderr and not out.exists()


def test_a_latent_spade_model_has_no_official_format(tmp_path, capsys):
    model = lively_model("custom", {"label_nc": 5, "ngf": 4, "width": 64, "spade_hidden": 8, "use_vae": True, "latent_spade": True})
    model.save(tmp_path / "model")
    out = tmp_path / "official"
    assert main(["convert", "to-official", str(tmp_path / "model"), "--out", str(out)]) != 0
    assert "latent_spade" in capsys.readouterr().err and not out.exists()
