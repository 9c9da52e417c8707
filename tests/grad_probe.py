"""One training step's gradients, for the gradient-equivalence tests (not a test module itself).

``python tests/grad_probe.py OUT RUN_DIR [--set KEY=VALUE ...]`` (alone or under torchrun) builds the
trainer for the toy preset with the given overrides, runs one G+D step and writes, from rank 0,
the gradients every parameter holds after it (DDP has all-reduced them by then) to ``OUT``.
Several ``--case NAME`` groups may follow, each with its own ``--set`` options, to reuse one launch.

The VAE's latent is made deterministic (z = mu) so that runs with different batch layouts draw the
same latents; the KL term still sees mu and logvar.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import spadekit.objective
from spadekit.config import load_config
from spadekit.training.distributed import cleanup_distributed, setup_distributed
from spadekit.training.setup import build_trainer


def step_gradients(overrides: list[str], run_dir: Path, env=None) -> dict:
    """After one training step: {"grads": {"G.name": tensor, ...}, "buffers": G's batch-norm running
    statistics, "terms": this process's loss terms}."""
    real = spadekit.objective.reparameterize
    spadekit.objective.reparameterize = lambda mu, logvar: mu + 0 * logvar
    try:
        config = load_config("toy", overrides)
        trainer = build_trainer(config, run_dir, env=env, steps=1, progress=False, tensorboard=False, log=lambda _text: None)
        trainer.set_learning_rates(0)
        trainer.sampler.set_epoch(0)
        terms = trainer.train_step(iter(trainer.loader))
    finally:
        spadekit.objective.reparameterize = real
    grads = {}
    for name, network in (("G", trainer.G), ("D", trainer.D), ("E", trainer.E)):
        if network is not None:
            for key, parameter in network.named_parameters():
                if parameter.grad is not None:
                    grads[f"{name}.{key}"] = parameter.grad.detach().clone()
    buffers = {k: v.detach().clone() for k, v in trainer.G.named_buffers() if k.endswith(("running_mean", "running_var"))}
    return {"grads": grads, "buffers": buffers, "terms": {k: float(v) for k, v in terms.items()}}


def relative_errors(ours: dict, reference: dict) -> dict[str, float]:
    """Relative L2 error of each network's gradients (G, D, E), all its parameters together."""
    errors = {}
    for net in ("G", "D", "E"):
        keys = sorted(k for k in reference if k.startswith(f"{net}."))
        if not keys:
            continue
        assert set(keys) == {k for k in ours if k.startswith(f"{net}.")}, f"{net}: other parameters have gradients"
        a = torch.cat([ours[k].flatten() for k in keys])
        b = torch.cat([reference[k].flatten() for k in keys])
        errors[net] = float((a - b).norm() / b.norm())
    return errors


def main(argv: list[str]) -> None:
    torch.set_num_threads(1)
    out, run_dir, rest = Path(argv[0]), Path(argv[1]), argv[2:]
    cases: dict[str, list[str]] = {"default": []}
    current = "default"
    while rest:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "--case":
            current = value
            cases[current] = []
        else:
            cases[current].append(value)
    env = setup_distributed("cpu")
    try:
        results = {name: step_gradients(overrides, run_dir / name, env) for name, overrides in cases.items() if overrides}
        if env.is_main:
            torch.save(results, out)
    finally:
        cleanup_distributed()


if __name__ == "__main__":
    main(sys.argv[1:])
