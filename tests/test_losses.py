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
    loss = VGGLoss(features)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    y = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0
    # Independently: torchvision's vgg19.features with the same weights, read after relu1_1, relu2_1,
    # relu3_1, relu4_1 and relu5_1 (indices 1, 6, 11, 20, 29), weighted 1/32, 1/16, 1/8, 1/4, 1.
    from torchvision.models.vgg import cfgs, make_layers

    trunk = make_layers(cfgs["E"]).eval()  # torchvision's VGG19 feature layers (without the slow classifier)
    ours = dict(features.named_parameters())
    convs = [m for m in trunk[:30] if isinstance(m, torch.nn.Conv2d)]
    mine = [m for block in features.slices for m in block if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == len(mine) == 13 and len(ours) == 26  # conv1_1 .. conv5_1
    with torch.no_grad():
        for theirs, our in zip(convs, mine):
            theirs.weight.copy_(our.weight)
            theirs.bias.copy_(our.bias)
        expected = torch.zeros(())
        a, b = x, y
        for index, layer in enumerate(trunk[:30]):
            a, b = layer(a), layer(b)
            if index in (1, 6, 11, 20, 29):
                expected += {1: 1 / 32, 6: 1 / 16, 11: 1 / 8, 20: 1 / 4, 29: 1.0}[index] * (a - b).abs().mean()
    assert loss(x, y).item() == pytest.approx(expected.item(), rel=1e-5)
    # the torch-cache file is found and loaded with weights_only, frozen
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save({f"features.{k}": v for k, v in trunk.state_dict().items()}, tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth")
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


def test_objective_terms_are_weighted_losses_and_total_is_their_sum():
    # Distinct weights, each term recomputed here from the networks' outputs (eval mode: spectral
    # norm does not iterate, so repeated forward passes agree).
    torch.manual_seed(0)
    cfg = ModelConfig(label_nc=4, ngf=8, ndf=8, width=64, use_vae=True, norm_G="instance")
    g, d, e = (net.eval() for net in build_networks(cfg, init=False))
    vgg = VGGLoss(VGG19Features(load=False))
    losses = LossConfig(gan_mode="hinge", lambda_feat=3.0, lambda_vgg=7.0, lambda_kld=0.5)
    objective = SpadeObjective(g, d, e, losses, vgg, kl_scale=2.0)
    batch = layout_batch({"label": torch.randint(0, 4, (2, 1, 64, 64)), "image": torch.rand(2, 3, 64, 64) * 2 - 1}, Config(model=cfg), "cpu")
    with torch.no_grad():
        total, terms, fake = objective.generator_losses(batch)
        mu, logvar = e(batch.image)
        fake_out = d(torch.cat([batch.semantics, fake], 1))
        real_out = d(torch.cat([batch.semantics, batch.image], 1))
    gan = sum(-scale[-1].mean() for scale in fake_out) / 2
    feat = sum((f - r).abs().mean() for fs, rs in zip(fake_out, real_out) for f, r in zip(fs[:-1], rs[:-1])) * 3.0 / 2
    kld = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum() * 0.5 * 2.0
    expected = {"G_GAN": gan, "G_feat": feat, "G_VGG": 7.0 * vgg(fake, batch.image), "KLD": kld}
    assert set(terms) == set(expected)
    for name, value in expected.items():
        assert terms[name].item() == pytest.approx(value.item(), rel=1e-5), name
    assert total.item() == pytest.approx(sum(v.item() for v in expected.values()), rel=1e-6)

    with torch.no_grad():
        d_total, d_terms = objective.discriminator_losses(batch, fake)
    d_fake = sum(torch.relu(1 + scale[-1]).mean() for scale in fake_out) / 2
    d_real = sum(torch.relu(1 - scale[-1]).mean() for scale in real_out) / 2
    assert d_terms["D_fake"].item() == pytest.approx(d_fake.item(), rel=1e-5)
    assert d_terms["D_real"].item() == pytest.approx(d_real.item(), rel=1e-5)
    assert d_total.item() == pytest.approx(d_fake.item() + d_real.item(), rel=1e-6)
