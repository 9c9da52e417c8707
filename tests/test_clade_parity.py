"""Converted official CLADE checkpoints reproduce every tensor the official code recorded.

Data-driven: one test per case folder under ``peers/clade/`` (``opt.json`` + ``latest_net_*.pth`` +
``io.pt``, produced by running tzt101/CLADE; see each README). A new case is picked up with no code change.
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
    recorded_image,
    recorded_semantics,
)
from spadekit.methods.clade.convert import OfficialCLADE, load_official, save_official

CASES = fixture_cases("peers", "clade")
PARAMS = [pytest.param(case, id=case.name) for case in CASES]


def test_there_are_cases():
    assert CASES, "no CLADE parity case found under peers/clade/"


def _load(case: Path) -> tuple[dict, dict, OfficialCLADE]:
    opt, io = read_case(case)
    return opt, io, load_official(case, opt)


def _dist(io: dict) -> torch.Tensor | None:
    for key in ("dist", "input_dist"):
        if isinstance(io.get(key), torch.Tensor) and io[key].dim() == 4:
            return io[key].float()
    return None


def _z(io: dict, mode: str) -> torch.Tensor | None:
    return io.get(f"z_{mode}", io.get("z"))


def _counters_frozen(opt: dict) -> bool:
    # The official sync batch norm (the default) never counts steps; plain batch norm does.
    return "syncbatch" in str(opt.get("norm_G", "syncbatch"))


@pytest.mark.parametrize("case", PARAMS)
def test_semantics_match_official_preprocessing(case):
    opt, io, model = _load(case)
    o = model.options
    check_semantics(io, o["label_nc"], o["contain_dontcare_label"], not o["no_instance"])


@pytest.mark.parametrize("case", PARAMS)
def test_generator_eval_with_block_outputs(case):
    opt, io, model = _load(case)
    generator = model.generator
    semantics = recorded_semantics(io)
    outputs: dict[str, torch.Tensor] = {}
    names = list(io.get("G_eval_block_outputs", {}))
    hooks = [
        generator.get_submodule(name).register_forward_hook(lambda module, args, out, name=name: outputs.__setitem__(name, out))
        for name in names
    ]
    dist = _dist(io)
    with torch.no_grad():
        fake = generator(semantics, _z(io, "eval"), dist) if dist is not None else generator(semantics, _z(io, "eval"))
    for hook in hooks:
        hook.remove()
    # A comparison means something only on an image that is neither flat nor saturated.
    assert io["G_eval"].std() > 0.05 and (io["G_eval"].abs() > 0.999).float().mean() < 0.5
    assert_parity(fake, io["G_eval"], "G_eval")
    for name in names:
        assert_parity(outputs[name], io["G_eval_block_outputs"][name], f"G_eval_block_outputs[{name}]")


@pytest.mark.parametrize("case", PARAMS)
def test_generator_train_forward_and_buffers(case):
    opt, io, model = _load(case)
    generator = model.generator.train()
    semantics = recorded_semantics(io)
    dist = _dist(io)
    torch.manual_seed(1234)
    with torch.no_grad():
        fake = generator(semantics, _z(io, "train"), dist) if dist is not None else generator(semantics, _z(io, "train"))
    assert_parity(fake, io["G_train"], "G_train")
    check_buffers(generator, io.get("G_after_train_forward_buffers", {}), _counters_frozen(opt), "G")


@pytest.mark.parametrize("case", PARAMS)
def test_encoder_and_discriminator(case):
    opt, io, model = _load(case)
    semantics = recorded_semantics(io)
    checked = check_discriminator(io, model.discriminator, semantics, opt)
    if "mu_eval" in io:
        assert model.encoder is not None, "io.pt records encoder outputs but the case has no latest_net_E.pth"
        image = recorded_image(io)
        for mode in ("eval", "train"):
            if f"mu_{mode}" not in io:
                continue
            model.encoder.train(mode == "train")
            with torch.no_grad():
                mu, logvar = model.encoder(image)
            assert_parity(mu, io[f"mu_{mode}"], f"mu_{mode}")
            assert_parity(logvar, io[f"logvar_{mode}"], f"logvar_{mode}")
            if "eps" in io and f"z_{mode}" in io:
                assert_parity(io["eps"] * torch.exp(0.5 * logvar) + mu, io[f"z_{mode}"], f"z_{mode}")
        if "E_after_train_forward_buffers" in io:
            check_buffers(model.encoder, io["E_after_train_forward_buffers"], False, "E")
    assert checked or model.discriminator is None or "D_eval" not in io


@pytest.mark.parametrize("case", PARAMS)
def test_every_recorded_tensor_is_checked(case):
    _, io = read_case(case)
    checked = {"G_eval", "G_eval_block_outputs", "G_train", "G_after_train_forward_buffers", "z_eval", "z_train"}
    checked |= {"D_eval", "D_train", "D_after_train_forward_buffers", "D_fake", "D_real"}
    checked |= {"mu_eval", "logvar_eval", "mu_train", "logvar_train", "E_after_train_forward_buffers"}
    unknown = set(io) - checked - INPUT_KEYS
    assert not unknown, f"io.pt records tensors that no test compares: {sorted(unknown)}"


@pytest.mark.parametrize("case", PARAMS)
def test_back_to_official_files(case, tmp_path):
    opt, io, model = _load(case)
    written = save_official(tmp_path, model.generator, model.discriminator, model.encoder)
    check_official_files(case, written)
    reloaded = load_official(tmp_path, opt)
    dist = _dist(io)
    with torch.no_grad():
        args = (recorded_semantics(io), _z(io, "eval")) + ((dist,) if dist is not None else ())
        assert_parity(reloaded.generator(*args), io["G_eval"], "G_eval after the round trip")
