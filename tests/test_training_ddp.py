"""``torchrun --nproc-per-node 2`` (gloo, CPU) trains like one process on the same global batch: the
sampler splits each global batch over the ranks, sync batch norm uses global statistics, DDP averages
the gradients (and the VAE's KL keeps its weight), and only rank 0 writes.

The check is on the gradients of one step (``tests/grad_probe.py``), which are all-reduced before
the optimiser sees them: they must equal the one-process gradients up to float summation order
(relative 1e-5). Comparing weights after an Adam step instead hides a factor 2 (Adam divides it
out); a gradient summed instead of averaged over the processes fails here by 100%.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from grad_probe import relative_errors, step_gradients
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
