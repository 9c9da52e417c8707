"""Diversity: mean pairwise distance over samples of one label map, and LPIPS loading."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from spadekit.errors import CheckpointError, MissingWeightsError
from spadekit.evaluation.diversity import Diversity, LPIPSDistance, find_lpips_backbone, mean_pairwise_distance


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean(dim=(1, 2, 3))


def _constant_samples(values: list[float]) -> torch.Tensor:
    return torch.stack([torch.full((3, 4, 4), v) for v in values])


def test_mean_pairwise_l1_on_constructed_samples():
    samples = _constant_samples([0.0, 1.0, 3.0])
    # Pairs: |0-1| = 1, |0-3| = 3, |1-3| = 2 → mean 2.
    assert mean_pairwise_distance(samples, l1) == pytest.approx(2.0)
    assert mean_pairwise_distance(samples, l1, batch_size=1) == pytest.approx(2.0)
    assert mean_pairwise_distance(list(samples), l1) == pytest.approx(2.0)


def test_identical_samples_have_zero_diversity():
    sample = torch.rand(3, 8, 8)
    assert mean_pairwise_distance(torch.stack([sample] * 4), l1) == 0.0


def test_pairwise_needs_two_samples_and_one_value_per_pair():
    with pytest.raises(ValueError):
        mean_pairwise_distance(_constant_samples([1.0]), l1)
    with pytest.raises(ValueError):
        mean_pairwise_distance(_constant_samples([0.0, 1.0]), lambda a, b: (a - b).abs().flatten(1))


def test_diversity_accumulator_averages_label_maps():
    metric = Diversity(l1)
    batch = torch.stack([_constant_samples([0.0, 1.0, 3.0]), _constant_samples([5.0, 5.0, 5.0])])  # (B=2, K=3, ...)
    metric.update(batch)
    assert metric.compute() == pytest.approx((2.0 + 0.0) / 2)
    metric.update(_constant_samples([0.0, 4.0]))  # one label map, (K, 3, H, W)
    assert metric.compute() == pytest.approx((2.0 + 0.0 + 4.0) / 3)
    metric.reset()
    with pytest.raises(ValueError):
        metric.compute()


def test_missing_lpips_backbone_names_the_file(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth") as info:
        find_lpips_backbone("alex")
    assert str(tmp_path / "checkpoints") in str(info.value)
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        LPIPSDistance("vgg")
    with pytest.raises(MissingWeightsError, match="given.pth"):
        find_lpips_backbone("alex", tmp_path / "given.pth")


_needs_lpips = pytest.mark.skipif(importlib.util.find_spec("lpips") is None, reason="the lpips package is not installed")


@_needs_lpips
def test_lpips_loads_backbone_from_torchvision_file(tmp_path):
    from torchvision.models import alexnet

    reference = alexnet(weights=None)  # random weights stand in for the ImageNet file
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(reference.state_dict(), path)
    lpips_distance = LPIPSDistance("alex", path)
    torch.testing.assert_close(lpips_distance.model.net.slice1[0].weight, reference.features[0].weight)
    torch.testing.assert_close(getattr(lpips_distance.model.net.slice5, "10").weight, reference.features[10].weight)

    a = torch.rand(2, 3, 64, 64) * 2 - 1
    b = torch.rand(2, 3, 64, 64) * 2 - 1
    d_ab = lpips_distance(a, b)
    assert d_ab.shape == (2,)
    assert (d_ab > 0).all()
    torch.testing.assert_close(lpips_distance(b, a), d_ab)
    assert lpips_distance(a, a).abs().max() < 1e-6
    assert mean_pairwise_distance(torch.cat([a, b]), lpips_distance) > 0


@_needs_lpips
def test_lpips_rejects_the_wrong_backbone_file(tmp_path):
    path = tmp_path / "not_alexnet.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, path)
    with pytest.raises(CheckpointError, match="not_alexnet.pth"):
        LPIPSDistance("alex", path)


@_needs_lpips
def test_lpips_linear_layers_come_from_the_wheel(tmp_path):
    import lpips
    from torchvision.models import alexnet

    path = tmp_path / "alexnet.pth"
    torch.save(alexnet(weights=None).state_dict(), path)
    model = LPIPSDistance("alex", path).model
    shipped = torch.load(
        f"{lpips.__path__[0]}/weights/v0.1/alex.pth", map_location="cpu", weights_only=True
    )
    for key, value in shipped.items():
        torch.testing.assert_close(model.state_dict()[key], value)
    torch.testing.assert_close(model.lins[0].model[1].weight, shipped["lin0.model.1.weight"])
