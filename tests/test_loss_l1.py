"""The optional L1 terms of SPADE's objective (``loss.lambda_l1``, ``loss.l1_pool``,
``loss.lambda_region_colour``): off by default, exact when on, pooled when asked."""

from __future__ import annotations

import pytest
import torch

from helpers import tiny_spade_objective

from spadekit.config import LossConfig, load_config
from spadekit.errors import ConfigError
from spadekit.losses import pooled_l1, region_colour_l1


def test_pooled_l1_on_constructed_images():
    real = torch.zeros(1, 3, 4, 4)
    checker = torch.ones(1, 3, 4, 4)
    checker[..., ::2, ::2] = -1
    checker[..., 1::2, 1::2] = -1  # every 2x2 block averages to 0
    assert float(pooled_l1(checker, real, 1)) == pytest.approx(1.0)
    assert float(pooled_l1(checker, real, 2)) == pytest.approx(0.0)
    shifted = torch.full((1, 3, 4, 4), 0.25)
    assert float(pooled_l1(shifted, real, 4)) == pytest.approx(0.25)
    # A size the kernel does not divide: the last window is averaged over what it covers.
    odd = torch.zeros(1, 1, 5, 5)
    odd[..., 4, 4] = 1.0
    assert float(pooled_l1(odd, torch.zeros(1, 1, 5, 5), 4)) == pytest.approx(1.0 / 4)


def _objective_and_batch(losses: LossConfig):
    objective, batch, _, _, encoder = tiny_spade_objective(losses)
    return objective, batch, encoder


def test_l1_is_off_by_default_so_the_paper_objective_is_unchanged():
    assert LossConfig().lambda_l1 == 0 and load_config("coco").loss.lambda_l1 == 0
    objective, batch, _ = _objective_and_batch(LossConfig(lambda_vgg=0))
    _, terms, _ = objective.generator_losses(batch)
    assert set(terms) == {"G_GAN", "G_feat", "KLD"}
    assert LossConfig().lambda_region_colour == 0 and load_config("coco").loss.lambda_region_colour == 0


def test_region_colour_l1_on_constructed_images():
    # Two regions: the top half (class 0) and the bottom half (class 1); class 2 is absent.
    regions = torch.zeros(1, 3, 4, 4)
    regions[0, 0, :2] = 1
    regions[0, 1, 2:] = 1
    real = torch.zeros(1, 3, 4, 4)
    real[0, 0, :2] = 0.6  # the top region is red in the photo
    fake = torch.zeros(1, 3, 4, 4)
    # A checkerboard of +-0.6 in the bottom region: its mean is 0, so only the top region's mean
    # red differs (0.6, one of three channels) and the absent class does not dilute the average.
    fake[0, 2, 2:] = 0.6
    fake[0, 2, 2:, ::2] = -0.6
    per_region = torch.tensor([0.6 / 3, 0.0])
    assert float(region_colour_l1(fake, real, regions)) == pytest.approx(float(per_region.mean()))
    # Pixels are compared only through their region's mean: a per-pixel (or pooled) L1 is not zero here.
    shuffled = real.clone()
    shuffled[0, 0, :2, :2] = 1.2
    shuffled[0, 0, :2, 2:] = 0.0
    assert float(region_colour_l1(shuffled, real, regions)) == pytest.approx(0.0, abs=1e-7)
    assert float(pooled_l1(shuffled, real, 2)) > 0.1
    # Per image: a second image's regions and colours do not mix with the first's.
    two = region_colour_l1(torch.cat([fake, real]), torch.cat([real, real]), torch.cat([regions, regions]))
    assert float(two) == pytest.approx(float(per_region.mean()) / 2)


def test_region_colour_term_is_weighted_and_trains_the_encoder():
    objective, batch, encoder = _objective_and_batch(LossConfig(lambda_vgg=0, lambda_region_colour=5.0))
    _, terms, fake = objective.generator_losses(batch)
    f, r = fake.detach().double(), batch.image.double()
    masks = batch.semantics.double()
    expected = []
    for n in range(2):  # written out region by region, not with the code under test
        diffs = []
        for s in range(masks.shape[1]):
            m = masks[n, s]
            if m.sum() > 0:
                diffs.append(((f[n] * m).sum(dim=(1, 2)) / m.sum() - (r[n] * m).sum(dim=(1, 2)) / m.sum()).abs().mean())
        expected.append(torch.stack(diffs).mean())
    assert float(terms["G_region_colour"].detach()) == pytest.approx(5.0 * float(torch.stack(expected).mean()), rel=1e-5)
    encoder.zero_grad(set_to_none=True)
    terms["G_region_colour"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


@pytest.mark.parametrize("pool", [1, 4])
def test_l1_term_is_the_weighted_mean_absolute_error_of_the_pooled_images(pool):
    objective, batch, encoder = _objective_and_batch(LossConfig(lambda_vgg=0, lambda_l1=3.0, l1_pool=pool))
    total, terms, fake = objective.generator_losses(batch)
    f = fake.detach()
    r = batch.image
    if pool > 1:  # expected value written out block by block, not with the code under test
        f = f.reshape(2, 3, 64 // pool, pool, 64 // pool, pool).mean(dim=(3, 5))
        r = r.reshape(2, 3, 64 // pool, pool, 64 // pool, pool).mean(dim=(3, 5))
    expected = 3.0 * (f - r).abs().mean()
    assert float(terms["G_L1"].detach()) == pytest.approx(float(expected), rel=1e-5)
    assert float(total.detach()) == pytest.approx(float(sum(t.detach() for t in terms.values())), rel=1e-6)
    # The term trains the style encoder through z (the point of the term in VAE mode).
    encoder.zero_grad(set_to_none=True)
    terms["G_L1"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_l1_options_are_validated():
    with pytest.raises(ConfigError, match="loss weights"):
        load_config("toy", ["loss.lambda_l1=-1"])
    with pytest.raises(ConfigError, match="loss.l1_pool"):
        load_config("toy", ["loss.l1_pool=0"])
    with pytest.raises(ConfigError, match="loss weights"):
        load_config("toy", ["loss.lambda_region_colour=-0.5"])
