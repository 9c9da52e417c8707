"""Converted official checkpoints reproduce the official code's recorded outputs.

The fixtures in ../shared/fixtures/official_parity were produced by running NVIDIA's SPADE code
(see their README). Tolerance: relative L2 error <= 1e-5 per tensor (float32 noise across machines
and thread counts is about 1e-6..1e-5 absolute on values of order 1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from spadekit.convert import convert_official, export_official
from spadekit.data.labels import to_semantics
from spadekit.losses import feature_matching_loss, gan_loss, kl_loss
from spadekit.release import load_model

CASES = {
    "p1_custom_vae": ["model.label_nc=13", "model.contain_dontcare=true", "model.use_instance=true", "model.width=64"],
    "p2_custom_noinst": ["model.label_nc=10", "model.width=256", "model.aspect_ratio=2", "model.upsampling=most"],
    "p2b_custom_noinst_batch5x5": ["model.label_nc=10", "model.width=64"],
}


def assert_parity(actual: torch.Tensor, expected: torch.Tensor, name: str, rel: float = 1e-5) -> None:
    actual = actual.detach().float().reshape(expected.shape)
    error = (actual - expected).norm() / expected.norm().clamp_min(1e-12)
    assert error <= rel, f"{name}: relative error {error:.2e} > {rel:.0e} (max abs {(actual - expected).abs().max():.2e})"


def unpack_semantics(io: dict) -> torch.Tensor:
    shape = [int(s) for s in io["semantics_shape"]]
    count = int(torch.tensor(shape).prod())
    bits = (io["semantics_bits"][:, None] >> torch.arange(7, -1, -1, dtype=torch.uint8)) & 1
    return bits.reshape(-1)[:count].reshape(shape).float()


def load_case(parity_dir: Path, case: str):
    directory = parity_dir / case
    io = torch.load(directory / "io.pt", weights_only=True)
    model = convert_official(directory, "custom", overrides=CASES[case])
    return directory, io, model


@pytest.mark.parametrize("case", list(CASES))
def test_semantics_match_official_preprocessing(parity_dir, case):
    _, io, model = load_case(parity_dir, case)
    m = model.config.model
    instance = io["instance"].long() if "instance" in io else None
    ours = to_semantics(io["label"].long(), m.label_nc, m.contain_dontcare, instance)
    assert torch.equal(ours, unpack_semantics(io))


@pytest.mark.parametrize("case", list(CASES))
def test_generator_eval_and_train_forward(parity_dir, case):
    directory, io, model = load_case(parity_dir, case)
    semantics = unpack_semantics(io)
    with torch.no_grad():
        fake = model.generator(semantics, io.get("z_eval"))
    assert_parity(fake, io["G_eval"], "G_eval")

    model.generator.train()
    with torch.no_grad():
        fake = model.generator(semantics, io.get("z_train"))
    assert_parity(fake, io["G_train"], "G_train")
    buffers = dict(model.generator.named_buffers())
    for key, expected in io["after_train_forward_buffers"].items():
        if key.endswith("num_batches_tracked"):
            # A step counter. The official sync batch norm never increments it; ours (and the official
            # plain batch norm) does. It only matters with momentum=None, which SPADE does not use.
            if model.config.model.norm_G == "batch":
                assert int(buffers[key]) == int(expected), key
            continue
        assert_parity(buffers[key], expected, key)


def test_vae_encoder_discriminator_and_losses(parity_dir):
    directory, io, model = load_case(parity_dir, "p1_custom_vae")
    assert model.encoder is not None and model.discriminator is not None
    semantics = unpack_semantics(io)
    image = (io["image_u8"].float() / 255 - 0.5) / 0.5
    with torch.no_grad():
        mu, logvar = model.encoder(image)
    assert_parity(mu, io["mu_eval"], "mu_eval")
    assert_parity(logvar, io["logvar_eval"], "logvar_eval")
    assert_parity(io["eps"] * torch.exp(0.5 * logvar) + mu, io["z_eval"], "z_eval")

    # The official training forward: E, G and D in train mode (spectral norm iterates once each).
    for network in model.networks().values():
        network.train()
    with torch.no_grad():
        mu, logvar = model.encoder(image)
        assert_parity(mu, io["mu_train"], "mu_train")
        assert_parity(logvar, io["logvar_train"], "logvar_train")
        z = io["eps"] * torch.exp(0.5 * logvar) + mu
        assert_parity(z, io["z_train"], "z_train")
        fake = model.generator(semantics, io["z_train"])
        assert_parity(fake, io["G_train"], "G_train")
        pairs = torch.cat([torch.cat([semantics, io["G_train"]], 1), torch.cat([semantics, image], 1)], 0)
        outputs = model.discriminator(pairs)
    fake_preds = [[f[: f.shape[0] // 2] for f in scale] for scale in outputs]
    real_preds = [[f[f.shape[0] // 2 :] for f in scale] for scale in outputs]
    for i, (fake_scale, real_scale) in enumerate(zip(fake_preds, real_preds)):
        for j, (f, r) in enumerate(zip(fake_scale, real_scale)):
            assert_parity(f, io["D_fake"][f"D{i}_L{j}"], f"D_fake D{i}_L{j}")
            assert_parity(r, io["D_real"][f"D{i}_L{j}"], f"D_real D{i}_L{j}")
    d_buffers = dict(model.discriminator.named_buffers())
    for key, expected in io["D_after_train_forward_buffers"].items():
        assert_parity(d_buffers[key], expected, key)
    e_buffers = dict(model.encoder.named_buffers())
    for key, expected in io["E_after_train_forward_buffers"].items():
        assert_parity(e_buffers[key], expected, key)

    # Losses on the recorded discriminator outputs.
    rec_fake = [[io["D_fake"][f"D{i}_L{j}"] for j in range(5)] for i in range(2)]
    rec_real = [[io["D_real"][f"D{i}_L{j}"] for j in range(5)] for i in range(2)]
    assert_parity(gan_loss(rec_fake, "hinge", True, for_discriminator=False), io["loss_G_GAN"], "loss_G_GAN", rel=1e-6)
    assert_parity(feature_matching_loss(rec_fake, rec_real, 10.0), io["loss_G_GAN_Feat"], "loss_G_GAN_Feat", rel=1e-6)
    assert_parity(gan_loss(rec_fake, "hinge", False, for_discriminator=True), io["loss_D_fake"], "loss_D_fake", rel=1e-6)
    assert_parity(gan_loss(rec_real, "hinge", True, for_discriminator=True), io["loss_D_real"], "loss_D_real", rel=1e-6)
    kld = kl_loss(io["mu_train"], io["logvar_train"]) * 0.05
    assert_parity(kld, io["loss_KLD"], "loss_KLD", rel=1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_release_round_trip_and_back_to_official(parity_dir, case, tmp_path):
    directory, io, model = load_case(parity_dir, case)
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
        fake = reloaded.generator(unpack_semantics(io), io.get("z_eval"))
    assert_parity(fake, io["G_eval"], "G_eval after round trip")
