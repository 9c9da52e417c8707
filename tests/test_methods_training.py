"""CLADE (with ICPE offset maps from the data pipeline) and ASAPNet through the generic trainer:
a resumed run ends with exactly the weights of an uninterrupted one, and two gloo processes
(``torchrun``, CPU) see the same first step as one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spadekit.config import load_config
from spadekit.methods import get_method
from spadekit.training.checkpoint import load_checkpoint
from spadekit.training.setup import build_trainer

# CLADE: ICPE on (the offset maps travel with every item) and sync batch norm, so one process on
# the global batch and two processes on halves compute the same statistics.
EXTRA = {
    "clade": ["model.norm_G=syncbatch"],
    "asapnet": [],
}
METHODS = list(EXTRA)


def overrides(name: str) -> list[str]:
    tiny = [o for o in get_method(name).tiny_overrides if not o.startswith(("data.toy_scenes", "train.batch_size"))]
    return tiny + EXTRA[name] + ["data.toy_scenes=12", "train.batch_size=4", "train.log_every=1", "loss.lambda_vgg=0"]


def train(name: str, run: Path, steps: int, resume: str | None = None):
    config = load_config(get_method(name).toy_preset, overrides(name) + ["train.checkpoint_every=2"])
    trainer = build_trainer(config, run, steps=steps, resume=resume, progress=False, tensorboard=False, log=lambda _: None)
    return trainer.fit()


@pytest.mark.parametrize("name", METHODS)
def test_resume_gives_the_weights_of_an_uninterrupted_run(name: str, tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels in both runs: bitwise-equal results
    try:
        train(name, tmp_path / "straight", steps=4)
        train(name, tmp_path / "resumed", steps=2)
        result = train(name, tmp_path / "resumed", steps=4, resume="auto")
    finally:
        torch.set_num_threads(threads)
    assert result.step == 4
    ours = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "step-00000004.pt")
    theirs = load_checkpoint(tmp_path / "straight" / "checkpoints" / "step-00000004.pt")
    moved = 0
    first = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "step-00000002.pt")
    for part in ("generator", "discriminator"):
        for key, value in theirs[part].items():
            assert torch.equal(ours[part][key], value), f"{part}.{key} differs after resume"
            moved += int(value.dtype.is_floating_point and not torch.equal(first[part][key], value))
    assert moved, "steps 3-4 changed no weight: the comparison would prove nothing"


def run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def cli_args(name: str, out: Path) -> list[str]:
    args = ["spadekit.cli", "train", "--preset", get_method(name).toy_preset, "--out", str(out), "--steps", "2"]
    args += ["--checkpoint-every", "2", "--no-vgg", "--no-progress", "--no-tensorboard", "--device", "cpu"]
    for override in overrides(name):
        args += ["--set", override]
    return args


@pytest.mark.parametrize("name", METHODS)
def test_two_gloo_processes_see_the_first_step_of_one(name: str, tmp_path: Path) -> None:
    single, double = tmp_path / "single", tmp_path / "double"
    run([sys.executable, "-m", *cli_args(name, single)])
    done = run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", *cli_args(name, double)])
    assert "x 2 process(es)" in done.stdout
    two = load_checkpoint(double / "checkpoints" / "step-00000002.pt")
    assert two["world_size"] == 2 and len(two["rng"]) == 2
    first = [json.loads(line) for line in (single / "metrics.jsonl").read_text().splitlines()][0]
    first_two = [json.loads(line) for line in (double / "metrics.jsonl").read_text().splitlines()][0]
    for key in ("G_GAN", "G_feat", "D_fake", "D_real"):
        assert abs(first[key] - first_two[key]) <= 1e-5 + 1e-4 * abs(first[key]), key
    assert (double / "model" / "generator.safetensors").is_file()
