"""The optional terms on images from prior latents (``loss.lambda_prior_gan``,
``loss.lambda_mode_seeking``): off by default, exact when on, and refused without a latent."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from helpers import tiny_spade_objective

from spadekit.config import LossConfig, load_config
from spadekit.errors import ConfigError
from spadekit.losses import gan_loss, mode_seeking_loss


def _objective_and_batch(losses: LossConfig, use_vae: bool = True):
    objective, batch, g, d, _ = tiny_spade_objective(losses, use_vae)
    return objective, batch, g, d


def test_prior_terms_are_off_by_default():
    assert LossConfig().lambda_prior_gan == 0 and LossConfig().lambda_mode_seeking == 0
    for preset in ("coco", "toy"):
        assert load_config(preset).loss.lambda_prior_gan == 0 and load_config(preset).loss.lambda_mode_seeking == 0
    objective, batch, _, _ = _objective_and_batch(LossConfig(lambda_vgg=0))
    assert objective.prior_terms(batch) == {}
    _, terms, _ = objective.generator_losses(batch)
    assert set(terms) == {"G_GAN", "G_feat", "KLD"}


def test_mode_seeking_loss_on_constructed_images():
    first = torch.zeros(2, 3, 2, 2)
    second = torch.zeros(2, 3, 2, 2)
    second[0] = 0.5  # pair 0: images differ by 0.5 everywhere
    second[1, 0] = 0.3  # pair 1: one channel of three differs by 0.3 -> mean 0.1
    z1 = torch.zeros(2, 4)
    z2 = torch.ones(2, 4) * 2  # latents differ by 2 in every dimension
    expected = (1 / (0.5 / 2 + 1e-5) + 1 / (0.1 / 2 + 1e-5)) / 2
    assert float(mode_seeking_loss(first, second, z1, z2)) == pytest.approx(expected, rel=1e-6)
    # Alike images for distinct latents cost the most: a z-blind generator is penalised by 1/eps.
    assert float(mode_seeking_loss(first, first, z1, z2)) == pytest.approx(1e5)


def test_prior_terms_are_computed_on_two_prior_images_per_layout():
    losses = LossConfig(lambda_vgg=0, lambda_prior_gan=0.7, lambda_mode_seeking=3.0)
    objective, batch, g, d = _objective_and_batch(losses)
    # Copies from before any forward: spectral norm's power iteration moves the weights a little on each one.
    g_copy, d_copy = copy.deepcopy(g), copy.deepcopy(d)
    torch.manual_seed(5)
    terms = objective.prior_terms(batch)
    assert set(terms) == {"G_prior_GAN", "G_mode_seeking"}

    # The same images written out here: z from the same seed, layouts repeated, D's hinge G loss.
    torch.manual_seed(5)
    z = torch.randn(4, 256)
    semantics = torch.cat([batch.semantics, batch.semantics])
    with torch.no_grad():
        images = g_copy(semantics, z)
        gan = gan_loss(d_copy(torch.cat([semantics, images], dim=1)), "hinge", True, for_discriminator=False)
    distance = [(images[i] - images[i + 2]).abs().mean() / (z[i] - z[i + 2]).abs().mean() for i in range(2)]
    seeking = sum(1 / (x + 1e-5) for x in distance) / 2
    assert float(terms["G_prior_GAN"].detach()) == pytest.approx(0.7 * float(gan), rel=1e-4)
    assert float(terms["G_mode_seeking"].detach()) == pytest.approx(3.0 * float(seeking), rel=1e-4)

    # The images of both latents of a layout really differ (the term is not at its 1/eps ceiling),
    # and its gradient reaches the generator (the point of the term), not the encoder.
    assert float(terms["G_mode_seeking"].detach()) < 3.0 * 1e4
    g.zero_grad(set_to_none=True)
    terms["G_mode_seeking"].backward(retain_graph=True)
    assert g.fc.weight.grad is not None and g.fc.weight.grad.abs().sum() > 0
    # The prior GAN term trains the generator too (prior images not detached before D).
    g.zero_grad(set_to_none=True)
    terms["G_prior_GAN"].backward()
    assert g.fc.weight.grad is not None and g.fc.weight.grad.abs().sum() > 0


def test_prior_terms_join_the_generator_total():
    objective, batch, _, _ = _objective_and_batch(LossConfig(lambda_vgg=0, lambda_mode_seeking=1.0))
    total, terms, _ = objective.generator_losses(batch)
    assert set(terms) == {"G_GAN", "G_feat", "KLD", "G_mode_seeking"}
    assert float(total.detach()) == pytest.approx(float(sum(t.detach() for t in terms.values())), rel=1e-6)


def test_the_discriminator_also_learns_that_prior_images_are_fake():
    # Without this term D never sees prior-latent images, and G can drive them to wherever D scores
    # high (a training run's G_prior_GAN fell from 1.7 to -1.2 while the toy FID tripled).
    objective, batch, g, d = _objective_and_batch(LossConfig(lambda_vgg=0, lambda_prior_gan=0.7))
    g_copy, d_copy = copy.deepcopy(g), copy.deepcopy(d)
    fake = objective.generate(batch)[0]
    torch.manual_seed(11)
    total, terms = objective.discriminator_losses(batch, fake)
    assert set(terms) == {"D_fake", "D_real", "D_prior_fake"}
    assert float(total.detach()) == pytest.approx(float(sum(t.detach() for t in terms.values())), rel=1e-6)
    torch.manual_seed(11)
    z = torch.randn(2, 256)
    with torch.no_grad():
        images = g_copy(batch.semantics, z)
        expected = gan_loss(d_copy(torch.cat([batch.semantics, images], dim=1)), "hinge", False, for_discriminator=True)
    assert float(terms["D_prior_fake"].detach()) == pytest.approx(0.7 * float(expected), rel=1e-4)
    # It trains D, and not G (the images are drawn without gradients).
    g.zero_grad(set_to_none=True)
    d.zero_grad(set_to_none=True)
    terms["D_prior_fake"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())
    assert all(p.grad is None for p in g.parameters())
    # Off with the prior GAN term (mode seeking alone has no critic).
    objective, batch, _, _ = _objective_and_batch(LossConfig(lambda_vgg=0, lambda_mode_seeking=1.0))
    assert set(objective.discriminator_losses(batch, None)[1]) == {"D_fake", "D_real"}


def test_prior_terms_are_validated():
    with pytest.raises(ConfigError, match="loss weights"):
        load_config("toy", ["loss.lambda_mode_seeking=-1"])
    with pytest.raises(ConfigError, match="loss weights"):
        load_config("toy", ["loss.lambda_prior_gan=-0.1"])
    with pytest.raises(ConfigError, match="vector latent"):
        _objective_and_batch(LossConfig(lambda_vgg=0, lambda_mode_seeking=1.0), use_vae=False)


def test_training_logs_and_uses_the_prior_terms(tmp_path):
    from spadekit.cli import main

    overrides = ["model.ngf=8", "model.ndf=8", "model.width=32", "model.spade_hidden=16", "model.use_vae=true",
                 "data.crop_size=32", "data.load_size=36", "data.toy_scenes=4", "train.batch_size=2",
                 "train.ema_decay=0", "train.log_every=1", "loss.lambda_vgg=0",
                 "loss.lambda_prior_gan=0.5", "loss.lambda_mode_seeking=2"]
    args = ["train", "--preset", "toy", "--out", str(tmp_path / "run"), "--device", "cpu", "--no-progress",
            "--no-tensorboard", "--steps", "2", "--set", *overrides]
    assert main(args) == 0
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert records and all(r["G_prior_GAN"] != 0 and 0 < r["G_mode_seeking"] < 2e4 for r in records)
    # Refused with the cause named when the generator has no latent.
    bad = [o.replace("model.use_vae=true", "model.use_vae=false") for o in overrides]
    code = main(["train", "--preset", "toy", "--out", str(tmp_path / "bad"), "--device", "cpu", "--no-progress",
                 "--no-tensorboard", "--steps", "1", "--set", *bad])
    assert code != 0
    assert not (tmp_path / "bad").exists()  # refused before the run directory is made
