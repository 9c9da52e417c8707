"""Shared checks for the data-driven parity tests against recorded official runs (SPADE's
``official_parity/`` cases and the SPADE-family peers: CLADE, ASAPNet, BachGAN).

Each case folder holds the official run's ``opt.json``, its checkpoint files and ``io.pt`` (inputs
and every recorded output). Tolerance: relative L2 error <= 1e-5 per tensor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from spadekit.data.labels import instance_edges, to_semantics

# io.pt keys that are inputs of the official run, not outputs to reproduce.
INPUT_KEYS = {"label", "instance", "image_u8", "input_semantics", "dist", "input_dist", "z", "eps", "label_seed"}


def assert_parity(actual: torch.Tensor, expected: torch.Tensor, name: str, rel: float = 1e-5) -> None:
    actual = actual.detach().double().reshape(expected.shape)
    expected = expected.double()
    error = (actual - expected).norm() / expected.norm().clamp_min(1e-12)
    assert error <= rel, f"{name}: relative error {error:.2e} > {rel:.0e} (max abs {(actual - expected).abs().max():.2e})"


def read_case(case: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(opt.json, io.pt) of a case folder."""
    return json.loads((case / "opt.json").read_text()), torch.load(case / "io.pt", weights_only=True)


def unpack_bits(io: dict[str, Any], prefix: str = "semantics") -> torch.Tensor:
    """A binary tensor the recorder stored bit-packed (``<prefix>_bits`` uint8, most significant bit
    first, and ``<prefix>_shape``) to keep io.pt small → float tensor of that shape."""
    shape = [int(s) for s in io[f"{prefix}_shape"]]
    count = int(torch.tensor(shape).prod())
    bits = (io[f"{prefix}_bits"][:, None] >> torch.arange(7, -1, -1, dtype=torch.uint8)) & 1
    return bits.reshape(-1)[:count].reshape(shape).float()


def spade_model_overrides(opt: dict[str, Any]) -> list[str]:
    """The structural options of an official SPADE run (``official_parity/`` case) that the weights
    cannot tell, as dotted overrides of the ``custom`` preset."""
    return [
        f"model.label_nc={opt['label_nc']}",
        f"model.contain_dontcare={str(bool(opt['contain_dontcare_label'])).lower()}",
        f"model.use_instance={str(not opt['no_instance']).lower()}",
        f"model.width={opt['crop_size']}",
        f"model.aspect_ratio={opt['aspect_ratio']}",
        f"model.upsampling={opt['num_upsampling_layers']}",
    ]


def recorded_semantics(io: dict[str, Any]) -> torch.Tensor:
    return io["input_semantics"].float()


def recorded_image(io: dict[str, Any]) -> torch.Tensor:
    """The official data pipeline's image: uint8 → [-1, 1]."""
    return (io["image_u8"].float() / 255 - 0.5) / 0.5


def check_semantics(
    io: dict[str, Any], label_nc: int, dontcare: bool, instance: bool, extra: torch.Tensor | None = None, one_hot: bool = True
) -> None:
    """Our one-hot (+ instance edges) (+ ``extra`` channels) from the recorded label/instance maps equals
    the official input (``one_hot`` False: ASAPNet's ``--no_one_hot``, the label tensor as it is)."""
    if one_hot:
        ours = to_semantics(io["label"].long(), label_nc, dontcare, io["instance"].long() if instance else None)
    else:
        ours = io["label"].float()
        if instance:
            ours = torch.cat([ours, instance_edges(io["instance"].long())], dim=1)
    if extra is not None:
        ours = torch.cat([ours, extra], dim=1)
    recorded = io["input_semantics"]
    if recorded.dtype == torch.uint8 and extra is not None:
        ours = ours.clamp(max=255).to(torch.uint8).float()  # a distance channel stored as uint8
    assert torch.equal(ours, recorded.float())


def check_buffers(network: nn.Module, expected: dict[str, torch.Tensor], counters_frozen: bool, what: str) -> list[str]:
    """Every recorded buffer after a training-mode forward; returns the keys checked.

    ``counters_frozen``: the official norm was the single-device sync batch norm, which never
    increments ``num_batches_tracked`` (ours does; the counter only matters with momentum=None,
    which these codes do not use), so counters are then only checked to exist.
    """
    buffers = dict(network.named_buffers())
    assert set(expected) <= set(buffers), f"{what}: buffers we do not have: {sorted(set(expected) - set(buffers))[:3]}"
    for key, value in expected.items():
        if key.endswith("num_batches_tracked"):
            if not counters_frozen:
                assert int(buffers[key]) == int(value), f"{what}.{key}"
            continue
        assert_parity(buffers[key], value, f"{what}.{key}")
    return list(expected)


def check_discriminator(io: dict[str, Any], discriminator: nn.Module | None, semantics: torch.Tensor, opt: dict[str, Any]) -> set[str]:
    """Discriminator outputs and buffers; returns the io keys checked.

    ``D_eval`` / ``D_train`` map ``"i.j"`` (scale i, block j) to the output on
    cat(cat(semantics, G_eval), cat(semantics, image)) (fakes first) in eval / train mode;
    ``D_fake`` / ``D_real`` (``"D{i}_L{j}"``) are SPADE-style train-mode outputs on G_train.
    With ``no_ganFeat_loss`` the official discriminator returns only each scale's prediction.
    """
    keys = {"D_eval", "D_train", "D_after_train_forward_buffers", "D_fake", "D_real"} & set(io)
    if not keys:
        return keys
    assert discriminator is not None, "io.pt records discriminator outputs but the case has no latest_net_D.pth"
    image = recorded_image(io)

    def run(fake: torch.Tensor, train: bool) -> list[list[torch.Tensor]]:
        discriminator.train(train)
        pairs = torch.cat([torch.cat([semantics, fake], 1), torch.cat([semantics, image], 1)], 0)
        with torch.no_grad():
            outputs = discriminator(pairs)
        return [[scale[-1]] for scale in outputs] if opt.get("no_ganFeat_loss") else outputs

    if "D_eval" in io:
        outputs = run(io["G_eval"], train=False)
        for key, expected in io["D_eval"].items():
            i, j = map(int, key.split("."))
            assert_parity(outputs[i][j], expected, f"D_eval {key}")
    if "D_train" in io or "D_fake" in io:
        fake = io["G_eval"] if "D_train" in io else io["G_train"]
        outputs = run(fake, train=True)
        for key, expected in io.get("D_train", {}).items():
            i, j = map(int, key.split("."))
            assert_parity(outputs[i][j], expected, f"D_train {key}")
        half = image.shape[0]
        for name, part in (("D_fake", slice(0, half)), ("D_real", slice(half, None))):
            for key, expected in io.get(name, {}).items():
                i, j = map(int, key[1:].split("_L"))
                assert_parity(outputs[i][j][part], expected, f"{name} {key}")
    if "D_after_train_forward_buffers" in io:
        check_buffers(discriminator, io["D_after_train_forward_buffers"], False, "D")
    discriminator.eval()
    return keys


def check_official_files(original_dir: Path, written: list[Path]) -> None:
    """Files we wrote hold the same keys, in the same order, with the same values as the official ones."""
    assert written, "nothing written"
    for path in written:
        original = torch.load(original_dir / path.name, weights_only=True)
        ours = torch.load(path, weights_only=True)
        assert list(ours) == list(original), f"{path.name}: keys or their order differ"
        for key, value in original.items():
            assert torch.equal(ours[key], value), f"{path.name}: {key}"
