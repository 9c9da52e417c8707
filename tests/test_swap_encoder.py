"""scripts/swap_encoder.py: a training checkpoint with another model's style encoder resumes with it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from spadekit.cli import main
from spadekit.release import load_model

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "swap_encoder.py"
TINY = ["model.ngf=4", "model.ndf=8", "model.width=32", "model.spade_hidden=8", "data.crop_size=32", "data.load_size=32",
        "data.toy_scenes=4", "train.batch_size=2", "train.checkpoint_every=2", "loss.lambda_vgg=0"]


def train(out: Path, steps: int, flags: list[str] = (), overrides: list[str] = ()) -> None:
    args = ["train", "--preset", "toy", "--out", str(out), "--steps", str(steps), "--no-progress", "--no-tensorboard"]
    assert main([*args, *flags, "--set", *TINY, *overrides]) == 0


def test_swapped_checkpoint_resumes_with_the_new_encoder(tmp_path):
    train(tmp_path / "first", 2)
    # A norm-free encoder trained alone against the first run's generator (another architecture).
    train(tmp_path / "encoder", 2, ["--init-from", str(tmp_path / "first" / "model"), "--init-parts", "generator"],
          ["model.norm_E=none", "train.frozen=[generator,discriminator]", "train.ema_decay=0"])
    checkpoint = tmp_path / "first" / "checkpoints" / "step-00000002.pt"
    swapped = tmp_path / "start.pt"
    done = subprocess.run([sys.executable, str(SCRIPT), str(checkpoint), str(tmp_path / "encoder" / "model"), str(swapped)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    before, after = torch.load(checkpoint, weights_only=True), torch.load(swapped, weights_only=True)
    wanted = load_file(str(tmp_path / "encoder" / "model" / "encoder.safetensors"))
    assert after["encoder"].keys() == wanted.keys() and all(torch.equal(after["encoder"][k], wanted[k]) for k in wanted)
    assert not any(torch.equal(before["encoder"][k], wanted[k]) for k in wanted if k in before["encoder"] and k.endswith("weight"))
    for part in ("generator", "discriminator", "ema", "optimizer_D", "step"):
        assert str(before[part]) == str(after[part])
    assert after["config"]["model"]["norm_E"] == "none"
    # Adam keeps its generator moments and restarts the encoder's.
    generator_params = len(list(load_model(tmp_path / "first" / "model").generator.parameters()))
    assert set(after["optimizer_G"]["state"]) == {i for i in before["optimizer_G"]["state"] if i < generator_params}
    # The run resumes from it with the encoder's options, and trains on.
    train(tmp_path / "joint", 3, ["--resume", str(swapped)], ["model.norm_E=none"])
    final = load_file(str(tmp_path / "joint" / "model" / "encoder.safetensors"))
    assert final.keys() == wanted.keys() and any(not torch.equal(final[k], wanted[k]) for k in wanted)
