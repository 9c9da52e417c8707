"""The palette sampler: AIC selection, projection back to proportions, saving without pickle."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spadekit.methods.palette.sampler import PaletteSampler, project_to_simplex


def three_clusters(n_per: int = 150, seed: int = 0) -> np.ndarray:
    """Proportion vectors of 4 classes around three well separated scene types."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.4, 0.4]])
    x = np.concatenate([c + rng.normal(0, 0.02, (n_per, 4)) for c in centres])
    return x


def test_aic_picks_the_true_number_of_components():
    sampler = PaletteSampler.fit(three_clusters(), min_components=1, max_components=6)
    assert sampler.n_components == 3
    assert set(sampler.aic) == set(range(1, 7))
    assert min(sampler.aic, key=sampler.aic.get) == 3
    # AIC really separates the candidates (one component is far worse).
    assert sampler.aic[1] - sampler.aic[3] > 100


def test_forced_component_count_skips_the_search():
    sampler = PaletteSampler.fit(three_clusters(), n_components=2)
    assert sampler.n_components == 2 and sampler.aic == {}


def test_samples_are_proportions_and_follow_the_mixture():
    sampler = PaletteSampler.fit(three_clusters(), max_components=5)
    palettes = sampler.sample(600, seed=1)
    assert palettes.shape == (600, 4) and palettes.dtype == torch.float32
    assert (palettes >= 0).all()
    torch.testing.assert_close(palettes.sum(1), torch.ones(600), atol=1e-6, rtol=0)
    # Roughly a third of the samples come from the "class 0 dominates" scene.
    share = (palettes[:, 0] > 0.5).float().mean().item()
    assert 0.2 < share < 0.45


def test_seeded_sampling_is_reproducible_and_calls_differ():
    sampler = PaletteSampler.fit(three_clusters(), n_components=3)
    assert torch.equal(sampler.sample(5, seed=3), sampler.sample(5, seed=3))
    rng = np.random.default_rng(0)
    assert not torch.equal(sampler.sample(5, seed=rng), sampler.sample(5, seed=rng))


def test_projection_clips_then_renormalises():
    sampler = PaletteSampler.fit(three_clusters(), n_components=1)
    raw = np.array([[0.5, -0.2, 0.3, 0.6], [1.4, 0.2, 0.0, 0.0]])
    out = sampler.project(raw)
    np.testing.assert_allclose(out[0], np.array([0.5, 0.0, 0.3, 0.6]) / 1.4)
    np.testing.assert_allclose(out[1], np.array([1.0, 0.2, 0.0, 0.0]) / 1.2)


def test_minimums_and_excluded_classes():
    base = PaletteSampler.fit(three_clusters(), n_components=1)
    sampler = PaletteSampler(base.gmm, min_proportions={3: 0.5}, excluded=[1])
    out = sampler.project(np.array([[0.6, 0.3, 0.1, 0.0]]))
    np.testing.assert_allclose(out[0], np.array([0.6, 0.0, 0.1, 0.5]) / 1.2)
    palettes = sampler.sample(50, seed=0)
    assert (palettes[:, 1] == 0).all()


def test_all_zero_draws_are_redrawn():
    sampler = PaletteSampler.fit(three_clusters(), n_components=1)
    out = sampler.project(np.array([[-1.0, -2.0, -0.5, -0.1]]))
    assert np.isnan(out).all()
    assert torch.isfinite(sampler.sample(20, seed=0)).all()


def test_simplex_projection_is_the_euclidean_projection():
    rng = np.random.default_rng(0)
    x = rng.normal(0.25, 0.3, (50, 5))
    p = project_to_simplex(x)
    assert (p >= 0).all()
    np.testing.assert_allclose(p.sum(1), 1, atol=1e-12)
    # Optimality: no other point of the simplex is closer (checked against random simplex points).
    others = rng.dirichlet(np.ones(5), size=200)
    for xi, pi in zip(x, p):
        assert np.sum((xi - pi) ** 2) <= np.min(np.sum((others - xi) ** 2, axis=1)) + 1e-12
    inside = rng.dirichlet(np.ones(5), size=3)
    np.testing.assert_allclose(project_to_simplex(inside), inside, atol=1e-12)


def test_state_dict_round_trip_needs_no_pickle():
    sampler = PaletteSampler.fit(three_clusters(), max_components=4, min_proportions={0: 0.05}, excluded=[2])
    state = sampler.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    again = PaletteSampler.from_state_dict(state)
    assert again.n_components == sampler.n_components
    assert torch.equal(again.sample(10, seed=4), sampler.sample(10, seed=4))
    x = three_clusters(seed=9)[:20]
    np.testing.assert_allclose(again.log_likelihood(x), sampler.log_likelihood(x), rtol=1e-10)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="N >= 2"):
        PaletteSampler.fit(np.ones((1, 3)) / 3)
    with pytest.raises(ValueError, match="NaN"):
        PaletteSampler.fit(np.array([[0.5, np.nan], [0.5, 0.5], [0.2, 0.8]]))
    base = PaletteSampler.fit(three_clusters(), n_components=1)
    with pytest.raises(ValueError, match="outside"):
        PaletteSampler(base.gmm, excluded=[7])
