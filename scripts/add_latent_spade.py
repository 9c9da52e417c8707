"""Turn a SPADE VAE training checkpoint into one with ``model.latent_spade`` on, same images.

    python scripts/add_latent_spade.py runs/toy/checkpoints/step-00018000.pt latent_start.pt
    spadekit train --preset toy --out runs/toy-latent --resume latent_start.pt --set model.latent_spade=true ...

Every SPADE layer of the generator (and of its EMA copy) gets its ``mlp_latent`` weight at zero,
so the checkpoint's generator draws exactly the images it drew before; training then grows the
latent's say in every layer. The generator optimiser's Adam moments move with their parameters
(matched by name) and start at zero for the new weights. Everything else (discriminator, encoder,
step, data position, random streams) is kept, and the checkpoint's config gets
``model.latent_spade: true`` so that ``--resume`` accepts it with that option set.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from spadekit.config import config_from_dict
from spadekit.io import atomic_write
from spadekit.models.build import build_encoder, build_generator
from spadekit.training.checkpoint import load_checkpoint


def parameter_names(config) -> list[str]:
    """The generator optimiser's parameters by name, in its order: the generator's, then the encoder's."""
    names = [f"generator.{name}" for name, _ in build_generator(config, init=False).named_parameters()]
    encoder = build_encoder(config, init=False)
    return names + [f"encoder.{name}" for name, _ in encoder.named_parameters()] if encoder is not None else names


def add_latent_spade(state: dict) -> dict:
    """``state`` (a loaded checkpoint) with zero ``mlp_latent`` weights in every SPADE layer."""
    saved = state["config"]["model"]
    if saved.get("latent_spade"):
        raise SystemExit("add_latent_spade: the checkpoint's generator already has model.latent_spade on")
    before = config_from_dict(state["config"])
    if not before.model.use_vae or before.model.generator != "spade":
        raise SystemExit("add_latent_spade: needs a checkpoint of the spade generator with use_vae")
    after = config_from_dict({**state["config"], "model": {**saved, "latent_spade": True}})
    grown = build_generator(after, init=False).state_dict()
    for part in ("generator", "ema"):
        if state.get(part) is None:
            continue
        old = state[part]
        new_keys = [key for key in grown if key not in old]
        if not new_keys or any(not key.endswith("mlp_latent.weight") for key in new_keys):
            raise SystemExit(f"add_latent_spade: the checkpoint's {part} does not match the spade generator it names")
        # Rebuilt in the grown module's key order, as a fresh state dict would be.
        state[part] = {key: old[key] if key in old else torch.zeros_like(grown[key]) for key in grown}
    old_names, new_names = parameter_names(before), parameter_names(after)
    optimizer = state["optimizer_G"]
    if len(optimizer["param_groups"][0]["params"]) != len(old_names):
        raise SystemExit("add_latent_spade: the generator optimiser does not hold the generator and encoder this config builds")
    position = {name: index for index, name in enumerate(new_names)}
    optimizer["state"] = {position[old_names[int(i)]]: moments for i, moments in optimizer["state"].items()}
    optimizer["param_groups"][0]["params"] = list(range(len(new_names)))
    state["config"]["model"] = {**saved, "latent_spade": True}
    return state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a training checkpoint (step-*.pt) of a SPADE run with a style encoder")
    parser.add_argument("out", type=Path, help="where to write the new checkpoint")
    args = parser.parse_args()
    state = add_latent_spade(load_checkpoint(args.checkpoint))
    atomic_write(args.out, lambda handle: torch.save(state, handle))
    print(f"wrote {args.out}: {args.checkpoint} with zero latent weights in every SPADE layer (model.latent_spade=true)")


if __name__ == "__main__":
    main()
