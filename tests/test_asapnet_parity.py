"""Converted official ASAPNet checkpoints reproduce every tensor the official code recorded.

Data-driven: one test per case folder under ``peers/asapnet/`` (``opt.json`` + ``latest_net_*.pth`` +
``io.pt``, produced by running tamarott/ASAPNet; see each README). A new case is picked up with no
code change.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import fixture_cases
from peer_checks import (
    INPUT_KEYS,
    assert_parity,
    check_buffers,
    check_discriminator,
    check_official_files,
    check_semantics,
    read_case,
    recorded_semantics,
)
from spadekit.methods.asapnet.convert import OfficialASAPNet, load_official, save_official
from spadekit.methods.asapnet.inputs import instance_distance_channel

CASES = fixture_cases("peers", "asapnet")
PARAMS = [pytest.param(case, id=case.name) for case in CASES]


def test_there_are_cases():
    assert CASES, "no ASAPNet parity case found under peers/asapnet/"


def _load(case: Path) -> tuple[dict, dict, OfficialASAPNet]:
    opt, io = read_case(case)
    return opt, io, load_official(case, opt)


@pytest.mark.parametrize("case", PARAMS)
def test_semantics_match_official_preprocessing(case):
    opt, io, model = _load(case)
    o = model.options
    one_hot = not opt.get("no_one_hot", False)
    if o["no_instance_dist"]:
        check_semantics(io, o["label_nc"], o["contain_dontcare_label"], not o["no_instance_edge"], one_hot=one_hot)
    else:
        assert o["no_instance_edge"], "the official code cannot combine the edge and distance channels"
        distance = instance_distance_channel(io["instance"].long())
        check_semantics(io, o["label_nc"], o["contain_dontcare_label"], False, extra=distance, one_hot=one_hot)


@pytest.mark.parametrize("case", PARAMS)
def test_generator_eval_parameters_and_encoding(case):
    opt, io, model = _load(case)
    generator = model.generator
    semantics = recorded_semantics(io)
    with torch.no_grad():
        fake, params = generator.forward_with_parameters(semantics)
        if "lowres_input" in io:
            assert_parity(generator.lowres_input(semantics), io["lowres_input"], "lowres_input")
    # A comparison means something only on an image that is neither flat nor saturated.
    assert io["G_eval"].std() > 0.05 and (io["G_eval"].abs() > 0.999).float().mean() < 0.5
    assert_parity(fake, io["G_eval"], "G_eval")
    assert_parity(params, io["lr_features_eval"], "lr_features_eval")
    if "xy_coords" in io:
        h, w = semantics.shape[-2:]
        encoding = generator.highres_stream.encoding(h, w, semantics.device, semantics.dtype)
        assert_parity(encoding, io["xy_coords"], "xy_coords")
    assert not any(k.startswith("highres_stream") for k in generator.state_dict()), "the encoding must not be saved"


@pytest.mark.parametrize("case", PARAMS)
def test_generator_train_forward_and_buffers(case):
    opt, io, model = _load(case)
    generator = model.generator.train()
    torch.manual_seed(1234)
    with torch.no_grad():
        fake, params = generator.forward_with_parameters(recorded_semantics(io))
    assert_parity(fake, io["G_train"], "G_train")
    if "lr_features_train" in io:
        assert_parity(params, io["lr_features_train"], "lr_features_train")
    frozen = "sync" in str(opt.get("norm_G", ""))
    check_buffers(generator, io.get("G_after_train_forward_buffers", {}), frozen, "G")


@pytest.mark.parametrize("case", PARAMS)
def test_discriminator(case):
    opt, io, model = _load(case)
    checked = check_discriminator(io, model.discriminator, recorded_semantics(io), opt)
    assert checked or model.discriminator is None


@pytest.mark.parametrize("case", PARAMS)
def test_every_recorded_tensor_is_checked(case):
    _, io = read_case(case)
    checked = {"G_eval", "G_train", "G_after_train_forward_buffers", "lr_features_eval", "lr_features_train"}
    checked |= {"xy_coords", "lowres_input", "D_eval", "D_train", "D_after_train_forward_buffers", "D_fake", "D_real"}
    unknown = set(io) - checked - INPUT_KEYS
    assert not unknown, f"io.pt records tensors that no test compares: {sorted(unknown)}"


@pytest.mark.parametrize("case", PARAMS)
def test_back_to_official_files(case, tmp_path):
    opt, io, model = _load(case)
    written = save_official(tmp_path, model.generator, model.discriminator)
    check_official_files(case, written)
    reloaded = load_official(tmp_path, opt)
    with torch.no_grad():
        assert_parity(reloaded.generator(recorded_semantics(io)), io["G_eval"], "G_eval after the round trip")
