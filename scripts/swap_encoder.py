"""Put a release model's style encoder into a training checkpoint, to resume that run with it.

    python scripts/swap_encoder.py runs/toy/checkpoints/step-00018000.pt toy joint_start.pt
    spadekit train --preset toy --out runs/toy-joint --resume joint_start.pt --set model.norm_E=none ...

Everything else in the checkpoint (generator, EMA, discriminator, both optimisers' generator and
discriminator state, step, data position, random streams) is kept. The generator optimiser's state
for the old encoder is dropped (Adam restarts its moments for the new one), and the checkpoint's
config takes the model's encoder options (``model.encoder``, ``model.norm_E``, ``model.spectral_E``),
so that ``--resume`` accepts it with those options set. The joint-phase experiments in the toy
model's card started this way, from the generator run's step-18,000 checkpoint and the bundled
encoder (which was trained against that generator).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from spadekit.config import config_from_dict
from spadekit.io import atomic_write
from spadekit.models.build import build_generator
from spadekit.release import load_model
from spadekit.training.checkpoint import load_checkpoint

ENCODER_OPTIONS = ("encoder", "norm_E", "spectral_E")


def swap(state: dict, model_path: str) -> dict:
    """``state`` (a loaded checkpoint) with the encoder of the release model at ``model_path``."""
    model = load_model(model_path)
    if model.encoder is None or "encoder" not in state:
        raise SystemExit("swap_encoder: both the checkpoint and the model need a style encoder")
    saved = state["config"]["model"]
    options = {k: getattr(model.config.model, k) for k in ENCODER_OPTIONS}
    config = config_from_dict({**state["config"], "model": {**saved, **options}})
    if config.model != model.config.model:
        raise SystemExit(f"swap_encoder: {model_path} is not a model of this run's architecture")
    generator_params = len(list(build_generator(config, init=False).parameters()))
    encoder = {k: v.float().clone() for k, v in model.encoder.state_dict().items()}
    optimizer = state["optimizer_G"]
    optimizer["state"] = {i: v for i, v in optimizer["state"].items() if int(i) < generator_params}
    optimizer["param_groups"][0]["params"] = list(range(generator_params + len(list(model.encoder.parameters()))))
    state["encoder"] = encoder
    state["config"]["model"] = {**saved, **options}
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a training checkpoint (step-*.pt) of a run with a style encoder")
    parser.add_argument("model", help="release model directory or bundled name whose encoder goes in")
    parser.add_argument("out", type=Path, help="where to write the new checkpoint")
    args = parser.parse_args()
    state = swap(load_checkpoint(args.checkpoint), args.model)
    atomic_write(args.out, lambda handle: torch.save(state, handle))
    print(f"wrote {args.out}: {args.checkpoint} with the encoder of {args.model}")


if __name__ == "__main__":
    main()
