"""Loss terms on constructed cases, and the objective's G/D steps."""

from __future__ import annotations

import math

import pytest
import torch

from spadekit.config import Config, LossConfig, ModelConfig
from spadekit.errors import MissingWeightsError
from spadekit.losses import VGG19Features, VGGLoss, feature_matching_loss, find_vgg19_weights, gan_loss, kl_loss
from spadekit.models import build_networks
from spadekit.methods import layout_batch
from spadekit.objective import SpadeObjective
from spadekit.training.optim import decayed_lr, optimizer_settings


def preds(*values: float) -> list[list[torch.Tensor]]:
    return [[torch.tensor([v])] for v in values]


def test_hinge():
    # scales with predictions 0.5 and -2: D real = mean(relu(1-0.5), relu(1+2)) = (0.5 + 3) / 2
    assert gan_loss(preds(0.5, -2.0), "hinge", True, True).item() == pytest.approx(1.75)
    assert gan_loss(preds(0.5, -2.0), "hinge", False, True).item() == pytest.approx((1.5 + 0.0) / 2)
    assert gan_loss(preds(0.5, -2.0), "hinge", True, False).item() == pytest.approx(0.75)


def test_other_gan_modes():
    assert gan_loss(preds(0.5), "ls", True, True).item() == pytest.approx(0.25)
    assert gan_loss(preds(0.5), "ls", False, True).item() == pytest.approx(0.25)
    assert gan_loss(preds(0.0), "original", True, True).item() == pytest.approx(math.log(2))
    assert gan_loss(preds(3.0), "w", True, False).item() == pytest.approx(-3.0)
    assert gan_loss(preds(3.0), "w", False, True).item() == pytest.approx(3.0)
    with pytest.raises(ValueError):
        gan_loss(preds(1.0), "nope", True, True)


def test_feature_matching_skips_predictions_and_divides_by_scales():
    fake = [[torch.ones(2, 3), torch.zeros(1)], [torch.full((2, 3), 2.0), torch.zeros(1)]]
    real = [[torch.zeros(2, 3), torch.full((1,), 9.0)], [torch.zeros(2, 3), torch.full((1,), 9.0)]]
    # L1s are 1 and 2; predictions (the last entries) are ignored; weight 10 / 2 scales
    assert feature_matching_loss(fake, real, 10.0).item() == pytest.approx(15.0)


def test_kl_closed_form():
    mu = torch.tensor([[1.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(4.0)]])
    # 0.5 * sum(mu^2 + var - 1 - logvar) = 0.5 * (1 + 0 + (4 - 1 - log 4))
    assert kl_loss(mu, logvar).item() == pytest.approx(0.5 * (1 + 3 - math.log(4)))
    assert kl_loss(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0


def test_vgg_weights_are_never_downloaded(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(MissingWeightsError, match="vgg19-dcbb9e9d.pth"):
        find_vgg19_weights()
    with pytest.raises(MissingWeightsError, match="nowhere.pth"):
        find_vgg19_weights(tmp_path / "nowhere.pth")


def test_vgg_loss_layers_and_weights(tmp_path, monkeypatch):
    torch.manual_seed(0)
    features = VGG19Features(load=False)
    names = [type(block[-1]).__name__ for block in features.slices]
    assert names == ["ReLU"] * 5
    assert [sum(isinstance(m, torch.nn.Conv2d) for m in block) for block in features.slices] == [1, 2, 2, 4, 4]
    loss = VGGLoss(features)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0
    assert loss(x, -x).item() > 0
    # the torch-cache file is found and loaded with weights_only
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    from torchvision.models import vgg19

    torch.save(vgg19(weights=None).state_dict(), tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth")
    loaded = VGG19Features()
    assert not any(p.requires_grad for p in loaded.parameters())


def test_optimizer_settings_and_decay():
    ttur = optimizer_settings(2e-4, ttur=True)
    assert ttur["generator"] == (1e-4, (0.0, 0.9)) and ttur["discriminator"] == (4e-4, (0.0, 0.9))
    plain = optimizer_settings(2e-4, ttur=False)
    assert plain["generator"] == (2e-4, (0.5, 0.999)) == plain["discriminator"]
    assert decayed_lr(1.0, 5, 10, 10) == 1.0
    assert decayed_lr(1.0, 14, 10, 10) == pytest.approx(0.5)
    assert decayed_lr(1.0, 19, 10, 10) == 0.0


@pytest.mark.parametrize("use_vae", [False, True])
def test_objective_steps_produce_finite_losses_and_gradients(use_vae):
    torch.manual_seed(0)
    cfg = ModelConfig(label_nc=4, use_instance=True, ngf=8, ndf=8, width=64, use_vae=use_vae, norm_G="batch")
    g, d, e = build_networks(cfg)
    objective = SpadeObjective(g, d, e, LossConfig(lambda_vgg=0))
    batch = {
        "label": torch.randint(0, 4, (2, 1, 64, 64)),
        "instance": torch.randint(0, 3, (2, 1, 64, 64)),
        "image": torch.rand(2, 3, 64, 64) * 2 - 1,
    }
    prepared = layout_batch(batch, Config(model=cfg), "cpu")
    assert prepared.semantics.shape == (2, 5, 64, 64)  # 4 classes + instance edges
    total, terms, fake = objective.generator_losses(prepared)
    assert set(terms) == ({"G_GAN", "G_feat", "KLD"} if use_vae else {"G_GAN", "G_feat"})
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in g.parameters() if p.grad is not None)
    d.zero_grad()
    g.zero_grad(set_to_none=True)
    d_total, d_terms = objective.discriminator_losses(prepared, fake)
    d_total.backward()
    assert set(d_terms) == {"D_fake", "D_real"} and torch.isfinite(d_total)
    assert all(p.grad is None for p in g.parameters()), "the D step must not reach the generator"
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())
