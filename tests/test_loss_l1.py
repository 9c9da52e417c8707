"""The optional L1 term of SPADE's objective (``loss.lambda_l1``, ``loss.l1_pool``): off by default,
exact when on, pooled when asked."""

from __future__ import annotations

import pytest
import torch

from spadekit.config import Config, LossConfig, ModelConfig, load_config
from spadekit.errors import ConfigError
from spadekit.losses import pooled_l1
from spadekit.methods import layout_batch
from spadekit.models import build_networks
from spadekit.objective import SpadeObjective


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
    torch.manual_seed(0)
    cfg = ModelConfig(label_nc=4, use_instance=True, ngf=8, ndf=8, width=64, use_vae=True, norm_G="batch")
    g, d, e = build_networks(cfg)
    batch = {
        "label": torch.randint(0, 4, (2, 1, 64, 64)),
        "instance": torch.randint(0, 3, (2, 1, 64, 64)),
        "image": torch.rand(2, 3, 64, 64) * 2 - 1,
    }
    return SpadeObjective(g, d, e, losses), layout_batch(batch, Config(model=cfg), "cpu"), e


def test_l1_is_off_by_default_so_the_paper_objective_is_unchanged():
    assert LossConfig().lambda_l1 == 0 and load_config("coco").loss.lambda_l1 == 0
    objective, batch, _ = _objective_and_batch(LossConfig(lambda_vgg=0))
    _, terms, _ = objective.generator_losses(batch)
    assert set(terms) == {"G_GAN", "G_feat", "KLD"}


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
