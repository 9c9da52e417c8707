"""A run killed with SIGKILL (mid-step, and inside a checkpoint write) resumes with ``--resume auto``
and ends with exactly the weights, optimiser state and RNG of an uninterrupted run: for every
registered method, trained on its toy preset shrunk by its tiny overrides."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from spadekit.methods import list_methods
from spadekit.training.checkpoint import SLOW_SAVE_ENV, load_checkpoint

# Options that make a method draw from torch's RNG during training, so that resuming also proves the
# RNG is restored: SPADE's VAE samples z (OASIS draws its 3D noise and LabelMix masks anyway).
RANDOM_STEPS = {"spade": ["model.use_vae=true"]}
METHODS = sorted(name for name, method in list_methods().items() if method.toy_preset)
STEPS = 8


def command(run: Path, name: str) -> list[str]:
    method = list_methods()[name]
    args = [sys.executable, "-m", "spadekit.cli", "train", "--preset", method.toy_preset, "--out", str(run)]
    args += ["--steps", str(STEPS), "--checkpoint-every", "2", "--resume", "auto", "--no-vgg"]
    args += ["--no-progress", "--no-tensorboard", "--device", "cpu"]
    for override in [*method.tiny_overrides, *RANDOM_STEPS.get(name, []), "train.log_every=1", "train.image_every=3"]:
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
    parts = list(theirs["parts"]) + (["ema"] if theirs.get("ema") is not None else [])
    assert "generator" in parts and "discriminator" in parts
    if "model.use_vae=true" in RANDOM_STEPS.get(name, []):
        assert "encoder" in parts
    for part in parts:
        assert ours[part].keys() == theirs[part].keys()
        for key, value in theirs[part].items():
            assert torch.equal(ours[part][key], value), f"{part}.{key} differs after resume"
    for part in ("optimizer_G", "optimizer_D"):
        for index, state in theirs[part]["state"].items():
            for name, value in state.items():
                assert torch.equal(ours[part]["state"][index][name], value), f"{part} state {index}.{name}"
    assert torch.equal(ours["rng"][0]["torch"], theirs["rng"][0]["torch"])

    # Each step was logged exactly once although steps 3..6 and 7 ran twice.
    steps = [json.loads(line)["step"] for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))
