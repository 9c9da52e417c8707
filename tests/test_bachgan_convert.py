"""BachGAN official-checkpoint conversion: clear errors on wrong files, options from opt.json, the
single-scale discriminator variant."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from conftest import fixture_cases
from spadekit.errors import CheckpointError
from spadekit.methods.bachgan.convert import load_official, options_from_official
from spadekit.methods.bachgan.objective import BachGANBatch, BachGANObjective

CASE = fixture_cases("peers", "bachgan")[0] if fixture_cases("peers", "bachgan") else None


@pytest.fixture
def official(tmp_path):
    assert CASE is not None, "no BachGAN fixture case under tests/assets/peers/bachgan/"
    for name in ("latest_net_G.pth", "latest_net_D.pth"):
        shutil.copy(CASE / name, tmp_path / name)
    return tmp_path


def edit(path, change) -> None:
    state = torch.load(path, weights_only=True)
    state = {k: v.clone() for k, v in state.items()}
    change(state)
    torch.save(state, path)


def test_missing_generator_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"latest_net_G\.pth: file not found"):
        load_official(tmp_path, width=64)


def test_a_spade_generator_is_not_a_bachgan_one(official):
    edit(official / "latest_net_G.pth", lambda s: [s.pop(k) for k in list(s) if k.startswith(("encode_shared", "memory_shared"))])
    with pytest.raises(CheckpointError, match="without BachGAN's fusion layers"):
        load_official(official, width=64)


def test_missing_and_misshapen_tensors_are_named(official):
    path = official / "latest_net_G.pth"
    edit(path, lambda s: s.pop("memory_shared.0.bias"))
    with pytest.raises(CheckpointError, match=r"latest_net_G\.pth: does not fit the model: 1 missing key.*memory_shared\.0\.bias"):
        load_official(official, width=64)
    shutil.copy(CASE / "latest_net_G.pth", path)
    edit(path, lambda s: s.__setitem__("conv_seg.weight", torch.zeros(150, 12, 3, 3)))
    with pytest.raises(CheckpointError, match=r"conv_seg\.weight has shape \(150, 12, 3, 3\)"):
        load_official(official, width=64)


def test_discriminator_must_see_the_box_layout(official):
    edit(official / "latest_net_D.pth",
         lambda s: [s.__setitem__(k, torch.zeros(8, 155, 4, 4)) for k in list(s) if k.endswith("model0.0.weight")])  # fmt: skip
    with pytest.raises(CheckpointError, match="takes 155 channels"):
        load_official(official, width=64)


def test_not_a_checkpoint(official):
    (official / "latest_net_D.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"latest_net_D\.pth: (corrupt|refused|not a valid)"):
        load_official(official, width=64)


def test_most_upsampling_must_be_in_the_weights(official):
    with pytest.raises(CheckpointError, match="no up_4 block"):
        load_official(official, width=64, upsampling="most")


def test_single_patch_discriminator_variant(official):
    """The official ``--netD nlayer``: one patch discriminator without the ``discriminator_k.`` prefix."""
    edit(official / "latest_net_D.pth",
         lambda s: [s.__setitem__(k[len("discriminator_0."):], s.pop(k)) if k.startswith("discriminator_0.") else s.pop(k)
                    for k in list(s)])  # fmt: skip
    nets = load_official(official, width=64)
    assert nets.options["discriminator"]["multiscale"] is False
    objective = BachGANObjective(nets.generator, nets.discriminator)
    batch = BachGANBatch(torch.zeros(1, 151, 64, 64), torch.zeros(1, 453, 64, 64), torch.zeros(1, 3, 64, 64))
    with torch.no_grad():
        _, terms, fake = objective.generator_losses(batch)
        _, d_terms = objective.discriminator_losses(batch, fake)
    assert set(terms) == {"G_GAN", "G_feat"} and set(d_terms) == {"D_fake", "D_real"}


def test_options_from_official_opt_json():
    opt = json.loads((CASE / "opt.json").read_text())
    options = options_from_official(opt)
    assert options["generator"]["semantic_nc"] == 151 and options["generator"]["norm"] == "syncbatch"
    assert options["generator"]["spectral"] and options["generator"]["spade_kernel"] == 3
    assert options["discriminator"] | {"in_channels": 154, "norm": "instance", "spectral": True, "num_D": 2} == options["discriminator"]
    assert options["objective"] == {
        "gan_mode": "hinge", "feature_matching": True, "lambda_feat": 10.0, "lambda_vgg": 0.0, "lambda_kld": 0.05, "lambda_seg": 0.0,
    }  # fmt: skip
    variant = options_from_official(opt | {"norm_G": "spadeinstance5x5", "norm_D": "spectralbatch", "seg": True, "no_instance": False})
    assert variant["generator"] | {"norm": "instance", "spade_kernel": 5, "spectral": False, "semantic_nc": 152} == variant["generator"]
    assert variant["discriminator"]["norm"] == "batch" and variant["objective"]["lambda_seg"] == 1.0
    with pytest.raises(CheckpointError, match="retrival_memory"):
        options_from_official(opt | {"retrival_memory": False})
