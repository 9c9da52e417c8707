"""``torchrun --nproc-per-node 2`` (gloo, CPU) trains like one process on the same global batch: the
sampler splits each global batch over the ranks, sync batch norm uses global statistics, DDP averages
the gradients, and only rank 0 writes.

Why not bitwise equality of the weights: Adam divides each gradient coordinate by its own running
magnitude, so coordinates whose true gradient is zero (conv biases in front of batch norm, D's final
bias at the hinge equilibrium) turn float rounding noise (different summation order across processes)
into full +-lr steps. So the check is: identical first-step losses, and nearly every weight within
half a learning rate of the one-process run, while the same check on plain (per-process) batch norm
fails for most weights.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from spadekit.training.checkpoint import load_checkpoint

# norm_G=syncbatch: batch statistics over the global batch of 4 in both runs. No VAE: its KL term
# is a sum over each process's batch (as in the paper's code), which does not split evenly.
TINY = [
    "model.ngf=8",
    "model.ndf=8",
    "model.width=32",
    "model.spade_hidden=16",
    "model.norm_G=syncbatch",
    "model.use_vae=false",
    "data.crop_size=32",
    "data.load_size=40",
    "data.toy_scenes=12",
    "train.batch_size=4",
    "train.log_every=1",
    "train.lr=1e-5",
]
LR = {"generator": 0.5e-5, "discriminator": 2e-5}  # TTUR: lr / 2 and lr * 2
STEPS = 3


def train_args(run: Path, *extra: str) -> list[str]:
    args = ["spadekit.cli", "train", "--preset", "toy", "--out", str(run), "--steps", str(STEPS)]
    args += ["--checkpoint-every", str(STEPS), "--no-vgg", "--no-progress", "--no-tensorboard", "--device", "cpu"]
    for override in TINY + list(extra):
        args += ["--set", override]
    return args


def torchrun(*args: str) -> subprocess.CompletedProcess:
    # `python -m torch.distributed.run` is the torchrun command; --standalone picks a free local port.
    return run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", *args])


def disagreement(one: dict, two: dict, part: str) -> float:
    """Fraction of the weights of ``part`` that differ by more than half its learning rate."""
    far = total = 0
    for key, value in one[part].items():
        if value.dtype.is_floating_point and not key.endswith(("_u", "_v", "running_mean", "running_var")):
            far += int(((two[part][key] - value).abs() > LR[part] / 2).sum())
            total += value.numel()
    return far / total


def losses(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_two_gloo_processes_match_one_process_on_the_global_batch(tmp_path: Path) -> None:
    single, double, unsynced = tmp_path / "single", tmp_path / "double", tmp_path / "unsynced"
    run([sys.executable, "-m", *train_args(single)])
    done = torchrun(*train_args(double))
    assert "x 2 process(es)" in done.stdout
    torchrun(*train_args(unsynced, "model.norm_G=batch"))

    one = load_checkpoint(single / "checkpoints" / f"step-{STEPS:08d}.pt")
    two = load_checkpoint(double / "checkpoints" / f"step-{STEPS:08d}.pt")
    bad = load_checkpoint(unsynced / "checkpoints" / f"step-{STEPS:08d}.pt")
    assert two["world_size"] == 2 and len(two["rng"]) == 2

    # Step 1 sees identical weights and the same global batch: the (rank-averaged) losses agree.
    first_one, first_two = losses(single)[0], losses(double)[0]
    for name in ("G_GAN", "G_feat", "D_fake", "D_real"):
        assert abs(first_one[name] - first_two[name]) <= 1e-6 + 1e-5 * abs(first_one[name]), name
    for part in ("generator", "discriminator"):
        assert disagreement(one, two, part) < 0.1, part
        assert disagreement(one, bad, part) > 0.2, f"{part}: the check cannot tell per-process batch norm apart"
    # The sync-batch-norm running statistics cover the global batch too.
    key = "head_0.norm_0.param_free_norm.running_var"
    assert torch.allclose(two["generator"][key], one["generator"][key], rtol=1e-3, atol=1e-6)
    # Only rank 0 logged and checkpointed: one line per step, one file.
    assert [r["step"] for r in losses(double)] == list(range(1, STEPS + 1))
    assert sorted(p.name for p in (double / "checkpoints").iterdir()) == [f"step-{STEPS:08d}.pt"]
