"""``torchrun --nproc-per-node 2`` (gloo, CPU) trains like one process on the same global batch: the
sampler splits each global batch over the ranks, sync batch norm uses global statistics, DDP averages
the gradients (and the VAE's KL keeps its weight), and only rank 0 writes.

The check is on the gradients of one step (``tests/grad_probe.py``), which are all-reduced before
the optimiser sees them: they must equal the one-process gradients up to float summation order
(relative 1e-5). Comparing weights after an Adam step instead hides a factor 2 (Adam divides it
out); a gradient summed instead of averaged over the processes fails here by 100%.

OASIS computes its class-balancing weights and LabelMix mask on the batch it sees and draws its noise
per process: under DDP, per rank, as the official code does per GPU (DataParallel computes the losses
on each device's chunk and averages them). Its equality check (identical first-step losses, nearly
every weight within half a learning rate after Adam steps, per-process batch norm failing the same
check) therefore runs with noise, LabelMix and balancing off; its full recipe is checked to train
under torchrun too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from grad_probe import relative_errors, step_gradients
from spadekit.methods import get_method
from spadekit.training.checkpoint import load_checkpoint

PROBE = Path(__file__).with_name("grad_probe.py")
# norm_G=syncbatch: batch statistics over the global batch of 4 in both runs. VAE on: the KL term
# is a sum over each process's samples, scaled back to the global batch by the trainer.
TINY = [
    "model.ngf=8",
    "model.ndf=8",
    "model.width=32",
    "model.spade_hidden=16",
    "model.norm_G=syncbatch",
    "model.use_vae=true",
    "data.crop_size=32",
    "data.load_size=40",
    "data.toy_scenes=12",
    "train.batch_size=4",
    "train.log_every=1",
    "loss.lambda_vgg=0",
]
LR = {"generator": 0.5e-5, "discriminator": 2e-5}  # TTUR: lr / 2 and lr * 2
STEPS = 3


def train_args(run: Path, *extra: str, preset: str = "toy", tiny: list[str] = TINY) -> list[str]:
    args = ["spadekit.cli", "train", "--preset", preset, "--out", str(run), "--steps", str(STEPS)]
    args += ["--checkpoint-every", str(STEPS), "--no-vgg", "--no-progress", "--no-tensorboard", "--device", "cpu"]
    for override in tiny + list(extra):
        args += ["--set", override]
    return args


def disagreement(one: dict, two: dict, part: str, lr: dict[str, float] = LR) -> float:
    """Fraction of the weights of ``part`` that differ by more than half its learning rate."""
    far = total = 0
    for key, value in one[part].items():
        if value.dtype.is_floating_point and not key.endswith(("_u", "_v", "running_mean", "running_var")):
            far += int(((two[part][key] - value).abs() > lr[part] / 2).sum())
            total += value.numel()
    return far / total


def losses(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def run(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def torchrun(*args: str) -> subprocess.CompletedProcess:
    # `python -m torch.distributed.run` is the torchrun command; --standalone picks a free local port.
    return run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args])


def test_all_reduced_gradients_equal_one_process_gradients(tmp_path: Path) -> None:
    reference = step_gradients(TINY, tmp_path / "single")
    args = [str(PROBE), str(tmp_path / "ddp.pt"), str(tmp_path / "runs"), "--case", "sync"]
    for override in TINY:
        args += ["--set", override]
    # Control: plain (per-process) batch norm normalises each half of the batch on its own.
    args += ["--case", "per_process_bn"]
    for override in TINY + ["model.norm_G=batch"]:
        args += ["--set", override]
    torchrun(*args)
    results = torch.load(tmp_path / "ddp.pt", weights_only=True)

    errors = relative_errors(results["sync"]["grads"], reference["grads"])
    assert set(errors) == {"G", "D", "E"} and all(e < 1e-5 for e in errors.values()), errors
    # Every tensor that carries gradient agrees too, the encoder's (through z and the KL) included.
    for key, expected in reference["grads"].items():
        got = results["sync"]["grads"][key]
        if expected.norm() > 1e-3 * max(g.norm() for k, g in reference["grads"].items() if k[0] == key[0]):
            assert (got - expected).norm() <= 1e-4 * expected.norm(), key
    # The sync-batch-norm running statistics cover the global batch too.
    for key, expected in reference["buffers"].items():
        torch.testing.assert_close(results["sync"]["buffers"][key], expected, rtol=1e-4, atol=1e-6)

    control = relative_errors(results["per_process_bn"]["grads"], reference["grads"])
    assert control["G"] > 0.01 and control["E"] > 0.01, f"the check cannot tell per-process batch norm apart: {control}"


def test_only_rank_zero_writes(tmp_path: Path) -> None:
    run_dir = tmp_path / "double"
    args = ["-m", "spadekit.cli", "train", "--preset", "toy", "--out", str(run_dir), "--steps", "2", "--checkpoint-every", "2"]
    args += ["--no-vgg", "--no-progress", "--no-tensorboard", "--device", "cpu"]
    for override in TINY:
        args += ["--set", override]
    done = torchrun(*args)
    assert "x 2 process(es)" in done.stdout
    state = load_checkpoint(run_dir / "checkpoints" / "step-00000002.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"]), "each process has its own random stream"
    # Only rank 0 logged (rank-averaged losses, one line per step) and checkpointed (one file).
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-00000002.pt"]


# OASIS's toy preset shrunk (its tiny overrides), global batch 4, sync batch norm; lr_G / lr_D as LR.
OASIS_TINY = [
    *get_method("oasis").tiny_overrides,
    "model.ngf=4",
    "model.norm_G=syncbatch",
    "data.toy_scenes=12",
    "train.batch_size=4",
    "train.log_every=1",
    "train.lr_G=0.5e-5",
    "train.lr_D=2e-5",
    "train.ema_decay=0",
]
DETERMINISTIC = ["oasis.noise_3d=false", "oasis.labelmix=false", "oasis.class_balancing=false"]


def test_oasis_two_gloo_processes_match_one_process_on_the_global_batch(tmp_path: Path) -> None:
    single, double, unsynced, full = (tmp_path / name for name in ("single", "double", "unsynced", "full"))
    oasis = {"preset": "oasis-toy", "tiny": OASIS_TINY}
    run([sys.executable, "-m", *train_args(single, *DETERMINISTIC, **oasis)])
    assert "x 2 process(es)" in torchrun("-m", *train_args(double, *DETERMINISTIC, **oasis)).stdout
    torchrun("-m", *train_args(unsynced, *DETERMINISTIC, "model.norm_G=batch", **oasis))

    one = load_checkpoint(single / "checkpoints" / f"step-{STEPS:08d}.pt")
    two = load_checkpoint(double / "checkpoints" / f"step-{STEPS:08d}.pt")
    bad = load_checkpoint(unsynced / "checkpoints" / f"step-{STEPS:08d}.pt")
    assert two["world_size"] == 2 and len(two["rng"]) == 2
    first_one, first_two = losses(single)[0], losses(double)[0]
    for name in ("G_adv", "D_fake", "D_real"):
        assert abs(first_one[name] - first_two[name]) <= 1e-6 + 1e-5 * abs(first_one[name]), name
    for part in ("generator", "discriminator"):
        assert disagreement(one, two, part) < 0.1, part
    # The discriminator has no batch norm, so only the generator tells per-process statistics apart.
    assert disagreement(one, bad, "generator") > 0.2, "the check cannot tell per-process batch norm apart"
    # The batch-norm running statistics cover the global batch too (the first layer's input barely
    # varies, so only deeper ones tell the per-process statistics apart).
    keys = [k for k in one["generator"] if k.endswith("running_var")]
    assert keys and all(torch.allclose(two["generator"][k], one["generator"][k], rtol=1e-3, atol=1e-6) for k in keys)
    assert not all(torch.allclose(bad["generator"][k], one["generator"][k], rtol=1e-3, atol=1e-6) for k in keys)

    # The full recipe (3D noise, LabelMix, class balancing, EMA with its batch-norm refresh) under torchrun.
    torchrun("-m", *train_args(full, "train.ema_decay=0.999", "train.ema_refresh_batches=2", **oasis))
    state = load_checkpoint(full / "checkpoints" / f"step-{STEPS:08d}.pt")
    records = losses(full)
    assert [r["step"] for r in records] == list(range(1, STEPS + 1))
    assert all(torch.isfinite(torch.tensor(r[name])) for r in records for name in ("G_adv", "D_fake", "D_real", "D_labelmix"))
    assert state["world_size"] == 2 and state.get("ema") is not None
    # Each rank draws its own noise and masks: the two random streams differ.
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])
    assert (full / "model" / "generator.safetensors").is_file()
