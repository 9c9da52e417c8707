"""Converted official checkpoints reproduce the official code's recorded outputs.

Data-driven: every case folder under ``FIXTURES/official_parity/`` holding an ``opt.json`` (the
official run's options) is a test case; the model options come from that file alone
(:func:`spadekit.official_options.official_overrides`), so a new case folder needs no code change.
The fixtures were produced by running NVIDIA's SPADE code (see their README). Tolerance: relative
L2 error <= 1e-5 per tensor (float32 noise across machines and thread counts is about 1e-6..1e-5
absolute on values of order 1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import fixture_cases
from peer_checks import assert_parity, unpack_bits
from spadekit.convert import convert_official, export_official
from spadekit.data.labels import to_semantics
from spadekit.inference import Pipeline
from spadekit.losses import feature_matching_loss, gan_loss, kl_loss
from spadekit.official_options import official_overrides, official_preset, read_official_options
from spadekit.release import SpadeModel, load_model

CASES = fixture_cases("official_parity")
IDS = [case.name for case in CASES]
WITH_D = [case for case in CASES if (case / "latest_net_D.pth").is_file()]
WITH_E = [case for case in CASES if (case / "latest_net_E.pth").is_file()]


def test_there_are_cases():
    assert CASES, "no case folders (with opt.json) under the fixture root's official_parity/"


def load_case(directory: Path) -> tuple[dict, dict, SpadeModel]:
    opt = read_official_options(directory / "opt.json")
    io = torch.load(directory / "io.pt", weights_only=True)
    model = convert_official(directory, official_preset(opt), overrides=official_overrides(opt))
    return opt, io, model


@pytest.mark.parametrize("directory", CASES, ids=IDS)
def test_options_come_from_the_official_run(directory):
    opt, io, model = load_case(directory)
    m = model.config.model
    assert (m.label_nc, m.contain_dontcare, m.use_instance) == (opt["label_nc"], opt["contain_dontcare_label"], not opt["no_instance"])
    assert m.semantic_nc == opt["semantic_nc"] == int(io["semantics_shape"][1])
    assert (m.ngf, m.use_vae, m.upsampling) == (opt["ngf"], opt["use_vae"], opt["num_upsampling_layers"])
    height, width = (int(s) for s in io["G_eval"].shape[-2:])
    assert m.output_size == (width, height)


@pytest.mark.parametrize("directory", CASES, ids=IDS)
def test_semantics_match_official_preprocessing(directory):
    _, io, model = load_case(directory)
    m = model.config.model
    instance = io["instance"].long() if "instance" in io else None
    ours = to_semantics(io["label"].long(), m.label_nc, m.contain_dontcare, instance)
    assert torch.equal(ours, unpack_bits(io))


@pytest.mark.parametrize("directory", CASES, ids=IDS)
def test_generator_eval_and_train_forward(directory):
    _, io, model = load_case(directory)
    semantics = unpack_bits(io)
    with torch.no_grad():
        fake = model.generator(semantics, io.get("z_eval"))
    assert_parity(fake, io["G_eval"], "G_eval")

    model.generator.train()
    with torch.no_grad():
        fake = model.generator(semantics, io.get("z_train"))
    assert_parity(fake, io["G_train"], "G_train")
    buffers = dict(model.generator.named_buffers())
    assert set(io["after_train_forward_buffers"]) <= set(buffers)
    for key, expected in io["after_train_forward_buffers"].items():
        if key.endswith("num_batches_tracked"):
            # A step counter. The official sync batch norm never increments it; ours (and the official
            # plain batch norm) does. It only matters with momentum=None, which SPADE does not use.
            if model.config.model.norm_G == "batch":
                assert int(buffers[key]) == int(expected), key
            continue
        assert_parity(buffers[key], expected, key)


@pytest.mark.parametrize("directory", CASES, ids=IDS)
def test_fast_path_reproduces_official_eval_output(directory):
    # The inference path users get by default (Pipeline, fast=True) against the official test.py output.
    _, io, model = load_case(directory)
    m = model.config.model
    semantics = unpack_bits(io)
    index = io["label"].long()[:, 0]  # 0..label_nc-1, and label_nc for don't-care
    edges = semantics[:, -1:] if m.use_instance else None
    pipeline = Pipeline(model, fast=True)
    assert pipeline.fast
    fake = pipeline.generate(index, edges, io.get("z_eval"))
    assert_parity(fake, io["G_eval"], "fast G_eval")


@pytest.mark.parametrize("directory", WITH_E, ids=[c.name for c in WITH_E])
def test_vae_encoder(directory):
    _, io, model = load_case(directory)
    assert model.encoder is not None and model.config.model.use_vae
    image = (io["image_u8"].float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        mu, logvar = model.encoder(image)
    assert_parity(mu, io["mu_eval"], "mu_eval")
    assert_parity(logvar, io["logvar_eval"], "logvar_eval")
    assert_parity(io["eps"] * torch.exp(0.5 * logvar) + mu, io["z_eval"], "z_eval")
    model.encoder.train()  # spectral norm iterates once
    with torch.no_grad():
        mu, logvar = model.encoder(image)
    assert_parity(mu, io["mu_train"], "mu_train")
    assert_parity(logvar, io["logvar_train"], "logvar_train")
    assert_parity(io["eps"] * torch.exp(0.5 * logvar) + mu, io["z_train"], "z_train")
    e_buffers = dict(model.encoder.named_buffers())
    for key, expected in io["E_after_train_forward_buffers"].items():
        assert_parity(e_buffers[key], expected, key)
    kld = kl_loss(io["mu_train"], io["logvar_train"]) * model.config.loss.lambda_kld
    assert_parity(kld, io["loss_KLD"], "loss_KLD", rel=1e-6)


@pytest.mark.parametrize("directory", WITH_D, ids=[c.name for c in WITH_D])
def test_discriminator_and_losses(directory):
    # The official training forward: G and D in train mode (spectral norm iterates once each).
    opt, io, model = load_case(directory)
    assert model.discriminator is not None
    semantics = unpack_bits(io)
    image = (io["image_u8"].float() / 255 - 0.5) / 0.5
    for network in model.networks().values():
        network.train()
    with torch.no_grad():
        fake = model.generator(semantics, io.get("z_train"))
        assert_parity(fake, io["G_train"], "G_train")
        pairs = torch.cat([torch.cat([semantics, io["G_train"]], 1), torch.cat([semantics, image], 1)], 0)
        outputs = model.discriminator(pairs)
    num_D, layers = model.config.model.num_D, model.config.model.n_layers_D + 1
    assert (num_D, layers) == (opt["num_D"], opt["n_layers_D"] + 1)
    assert len(outputs) == num_D and all(len(scale) == layers for scale in outputs)
    for i, scale in enumerate(outputs):
        for j, output in enumerate(scale):
            half = output.shape[0] // 2
            assert_parity(output[:half], io["D_fake"][f"D{i}_L{j}"], f"D_fake D{i}_L{j}")
            assert_parity(output[half:], io["D_real"][f"D{i}_L{j}"], f"D_real D{i}_L{j}")
    d_buffers = dict(model.discriminator.named_buffers())
    for key, expected in io["D_after_train_forward_buffers"].items():
        assert_parity(d_buffers[key], expected, key)

    # Losses on the recorded discriminator outputs, with the run's GAN mode and weights.
    losses = model.config.loss
    rec_fake = [[io["D_fake"][f"D{i}_L{j}"] for j in range(layers)] for i in range(num_D)]
    rec_real = [[io["D_real"][f"D{i}_L{j}"] for j in range(layers)] for i in range(num_D)]
    mode = losses.gan_mode
    assert_parity(gan_loss(rec_fake, mode, True, for_discriminator=False), io["loss_G_GAN"], "loss_G_GAN", rel=1e-6)
    if losses.feature_matching:
        assert_parity(feature_matching_loss(rec_fake, rec_real, losses.lambda_feat), io["loss_G_GAN_Feat"], "loss_G_GAN_Feat", rel=1e-6)
    assert_parity(gan_loss(rec_fake, mode, False, for_discriminator=True), io["loss_D_fake"], "loss_D_fake", rel=1e-6)
    assert_parity(gan_loss(rec_real, mode, True, for_discriminator=True), io["loss_D_real"], "loss_D_real", rel=1e-6)


@pytest.mark.parametrize("directory", CASES, ids=IDS)
def test_release_round_trip_and_back_to_official(directory, tmp_path):
    _, io, model = load_case(directory)
    model.save(tmp_path / "release")
    reloaded = load_model(tmp_path / "release")
    assert reloaded.config == model.config
    for name, network in model.networks().items():
        theirs = getattr(reloaded, name).state_dict()
        for key, value in network.state_dict().items():
            assert torch.equal(value, theirs[key]), f"{name}.{key}"

    # Back to the official layout: the same keys and values as the files we started from.
    export_official(reloaded, tmp_path / "official")
    for file in ("latest_net_G.pth", "latest_net_D.pth", "latest_net_E.pth"):
        if not (directory / file).exists():
            continue
        original = torch.load(directory / file, weights_only=True)
        written = torch.load(tmp_path / "official" / file, weights_only=True)
        assert set(original) == set(written)
        for key in original:
            assert torch.equal(original[key], written[key]), key
    with torch.no_grad():
        fake = reloaded.generator(unpack_bits(io), io.get("z_eval"))
    assert_parity(fake, io["G_eval"], "G_eval after round trip")
