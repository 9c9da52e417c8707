"""A run killed with SIGKILL (mid-step, and inside a checkpoint write) resumes with ``--resume auto``
and ends with exactly the state of an uninterrupted run: weights, EMA weights, optimiser and
gradient-scaler state, and the torch, NumPy and Python random streams; for every registered method,
trained on its toy preset shrunk by its tiny overrides.

Bit-exact equality needs the same number of threads in both runs (multi-threaded CPU kernels sum in
an order that depends on it), so every run here uses one thread.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from spadekit.config import load_config
from spadekit.methods import list_methods
from spadekit.training.checkpoint import SLOW_SAVE_ENV, checkpoint_path, load_checkpoint
from spadekit.training.setup import build_trainer
from spadekit.training.trainer import Trainer

# Options that make a method draw from torch's RNG during training, so that resuming also proves the
# RNG is restored (SPADE's VAE samples z; OASIS draws its 3D noise and LabelMix masks anyway), and
# keep an EMA generator, so that its state is compared too.
RANDOM_STEPS = {"spade": ["model.use_vae=true"]}
EMA = ["train.ema_decay=0.9"]
METHODS = sorted(name for name, method in list_methods().items() if method.toy_preset)
# The in-process variants below: SPADE's toy preset, tiny.
TINY = [
    "model.ngf=8",
    "model.ndf=8",
    "model.width=32",
    "model.spade_hidden=16",
    "data.crop_size=32",
    "data.load_size=40",
    "data.toy_scenes=10",
    "train.batch_size=2",
    "train.log_every=1",
    "train.image_every=3",
]
STEPS = 8


def command(run: Path, name: str) -> list[str]:
    method = list_methods()[name]
    args = [sys.executable, "-m", "spadekit.cli", "train", "--preset", method.toy_preset, "--out", str(run)]
    args += ["--steps", str(STEPS), "--checkpoint-every", "2", "--resume", "auto", "--no-vgg"]
    args += ["--no-progress", "--no-tensorboard", "--device", "cpu"]
    for override in [*method.tiny_overrides, *RANDOM_STEPS.get(name, []), *EMA, "train.log_every=1", "train.image_every=3"]:
        args += ["--set", override]
    return args


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != SLOW_SAVE_ENV}
    env.update({"OMP_NUM_THREADS": "1", **extra})  # same thread count in every run: bitwise-equal results
    return env


def wait_for(condition, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"training exited early with {process.returncode}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the training process")
        time.sleep(0.02)


def assert_same_state(ours, theirs, where: str = "checkpoint") -> None:
    """Every entry of two checkpoints is equal: tensors bit for bit, numbers and strings exactly."""
    if isinstance(theirs, dict):
        assert set(ours) == set(theirs), f"{where}: keys {sorted(set(ours) ^ set(theirs))}"
        for key in theirs:
            assert_same_state(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs), where
        for index, (a, b) in enumerate(zip(ours, theirs)):
            assert_same_state(a, b, f"{where}[{index}]")
    elif isinstance(theirs, torch.Tensor):
        assert torch.equal(ours, theirs), f"{where} differs after resume"
    else:
        assert ours == theirs, f"{where}: {ours!r} != {theirs!r}"


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


@pytest.mark.parametrize("name", METHODS)
def test_sigkill_anywhere_then_resume_gives_identical_weights(tmp_path: Path, name: str) -> None:
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    done = subprocess.run(command(reference, name), env=environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    # 1. Killed while writing the step-4 checkpoint (the write pauses there on request).
    ckpts = interrupted / "checkpoints"
    process = subprocess.Popen(
        command(interrupted, name), env=environment(**{SLOW_SAVE_ENV: "4=60"}), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: any(ckpts.glob(".step-00000004.pt.*.tmp")), process)
    time.sleep(0.3)
    kill(process)
    assert sorted(p.name for p in ckpts.glob("step-*.pt")) == ["step-00000002.pt"]
    assert any(ckpts.glob(".step-*.tmp")), "the half-written checkpoint should still be lying there"

    # 2. Resumed from step 2, then killed in the middle of training right after the step-6 checkpoint.
    process = subprocess.Popen(command(interrupted, name), env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (ckpts / "step-00000006.pt").exists(), process)
    kill(process)

    # 3. Resumed again to the end.
    done = subprocess.run(command(interrupted, name), env=environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stdout and "step-00000006.pt" in done.stdout, done.stdout
    assert not any(ckpts.glob(".step-*.tmp")), "stale temporary files are cleaned up on resume"

    ours = load_checkpoint(ckpts / f"step-{STEPS:08d}.pt")
    theirs = load_checkpoint(reference / "checkpoints" / f"step-{STEPS:08d}.pt")
    assert ours["step"] == theirs["step"] == STEPS
    assert "generator" in theirs["parts"] and "discriminator" in theirs["parts"] and theirs.get("ema") is not None
    assert_same_state(ours, theirs)

    # Each step was logged exactly once although steps 3..6 and 7 ran twice.
    steps = [json.loads(line)["step"] for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))


# ----------------------------------------------------------------------------- resume variants, in process

VARIANTS = {
    "vae-ema": ["model.use_vae=true", "train.ema_decay=0.9"],
    "grad-accum-2": ["model.use_vae=true", "train.batch_size=4", "train.grad_accum=2"],
    "fp16-scaler": ["train.precision=fp16", "train.ema_decay=0.5"],
}


@pytest.mark.parametrize("extra", list(VARIANTS.values()), ids=list(VARIANTS))
def test_resume_mid_epoch_continues_exactly(tmp_path: Path, monkeypatch, extra: list[str]) -> None:
    # Code in the training step that draws from NumPy's and Python's global generators (as an
    # augmentation might): their streams must continue after a resume exactly as they would have.
    real_batch = Trainer._batch

    def noisy_batch(self, raw):
        batch = real_batch(self, raw)
        batch.image.add_(0.01 * float(np.random.rand()) - 0.01 * random.random())
        return batch

    monkeypatch.setattr(Trainer, "_batch", noisy_batch)
    overrides = [o for o in TINY if not o.startswith(("model.use_vae", "train.ema_decay"))]
    config = load_config("toy", overrides + ["data.toy_scenes=12", "train.checkpoint_every=100"] + extra)

    def train(run: Path, steps: int, resume: str | None = None) -> None:
        build_trainer(config, run, steps=steps, resume=resume, progress=False, tensorboard=False, log=lambda _: None).fit()

    train(tmp_path / "reference", 5)
    train(tmp_path / "resumed", 3)  # 3 of the 6 (or 3) steps of epoch 0: the resume is mid-epoch
    train(tmp_path / "resumed", 5, resume="auto")
    ours = load_checkpoint(checkpoint_path(tmp_path / "resumed", 5))
    theirs = load_checkpoint(checkpoint_path(tmp_path / "reference", 5))
    if "train.precision=fp16" in extra:
        assert theirs["scaler"]["scale"] > 0
    if any(o.startswith("train.ema_decay") for o in extra):
        assert theirs["ema"] is not None
    assert_same_state(ours, theirs)
