"""The palette sampler: a Gaussian mixture over the training set's class-proportion vectors.

As in Semantic Palette, the mixture (full covariances, scikit-learn's ``GaussianMixture``) is fitted
for every component count in a range and the count with the lowest Akaike information criterion is
kept (then refitted with ``n_init`` restarts). A sample is projected back to proportions: clipped to
[0, 1], optional per-class minimums applied, filtered classes zeroed, renormalised to sum to one
(the official ``approx`` projection); ``simplex`` instead takes the exact Euclidean projection onto
the probability simplex (what the official ``iter`` projection solves numerically).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

PROJECTIONS = ("approx", "simplex")


def _gaussian_mixture():
    try:
        from sklearn.mixture import GaussianMixture
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("the palette sampler needs scikit-learn (pip install scikit-learn)") from exc
    return GaussianMixture


def project_to_simplex(x: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean projection onto {p ≥ 0, Σ p = 1} (sort-based, exact). (N, C) → (N, C)."""
    x = np.asarray(x, dtype=np.float64)
    sorted_desc = -np.sort(-x, axis=1)
    cumsum = np.cumsum(sorted_desc, axis=1) - 1
    k = np.arange(1, x.shape[1] + 1)
    support = sorted_desc - cumsum / k > 0
    rho = support.shape[1] - 1 - np.argmax(support[:, ::-1], axis=1)
    theta = cumsum[np.arange(x.shape[0]), rho] / (rho + 1)
    return np.maximum(x - theta[:, None], 0)


class PaletteSampler:
    """Draws realistic class-proportion vectors ("palettes").

    Build it with :meth:`fit`, or from saved parameters with :meth:`from_state_dict`.

    Args:
        gmm: a fitted scikit-learn ``GaussianMixture`` over (N, C) proportion vectors.
        projection: ``approx`` (clip, renormalise: the official default) or ``simplex``.
        min_proportions: {class: p}: a sampled proportion below p is raised to p before renormalising
            (the official ``estimator_force_min_class_p``).
        excluded: classes always set to 0 (the official ``estimator_filter_idx``).
        aic: {component count: AIC} of the selection, when it was fitted here.
    """

    def __init__(
        self,
        gmm,
        projection: str = "approx",
        min_proportions: Mapping[int, float] | None = None,
        excluded: Sequence[int] = (),
        aic: Mapping[int, float] | None = None,
    ):
        if projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {projection!r}; choose one of {', '.join(PROJECTIONS)}")
        self.gmm = gmm
        self.projection = projection
        self.min_proportions = dict(min_proportions or {})
        self.excluded = list(excluded)
        self.aic = dict(aic or {})
        c = self.num_classes
        for k in [*self.min_proportions, *self.excluded]:
            if not 0 <= k < c:
                raise ValueError(f"class {k} is outside 0..{c - 1}")

    @property
    def num_classes(self) -> int:
        return int(self.gmm.means_.shape[1])

    @property
    def n_components(self) -> int:
        return int(self.gmm.n_components)

    @classmethod
    def fit(
        cls,
        proportions: np.ndarray | torch.Tensor,
        min_components: int = 1,
        max_components: int = 30,
        n_components: int | None = None,
        n_init: int = 1,
        seed: int = 0,
        projection: str = "approx",
        min_proportions: Mapping[int, float] | None = None,
        excluded: Sequence[int] = (),
    ) -> "PaletteSampler":
        """Fit to (N, C) proportion vectors; the component count is the AIC minimiser over
        ``min_components..max_components`` (capped at N) unless ``n_components`` forces it."""
        x = np.asarray(proportions.detach().cpu() if isinstance(proportions, torch.Tensor) else proportions, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise ValueError(f"need a (N, C) array of proportion vectors with N >= 2, got shape {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("proportion vectors contain NaN or infinite values")
        GaussianMixture = _gaussian_mixture()
        aic: dict[int, float] = {}
        if n_components is None:
            top = min(max_components, x.shape[0])
            if min_components < 1 or top < min_components:
                raise ValueError(f"no component count to try in {min_components}..{max_components} with {x.shape[0]} vectors")
            for n in range(min_components, top + 1):
                model = GaussianMixture(n, covariance_type="full", random_state=seed).fit(x)
                aic[n] = float(model.aic(x))
            n_components = min(aic, key=aic.get)
        gmm = GaussianMixture(n_components, covariance_type="full", n_init=n_init, random_state=seed).fit(x)
        return cls(gmm, projection, min_proportions, excluded, aic)

    def project(self, x: np.ndarray) -> np.ndarray:
        """Raw mixture samples (N, C) → proportion vectors (N, C) (rows with nothing left are NaN)."""
        x = np.array(x, dtype=np.float64)
        if self.projection == "simplex":
            x = project_to_simplex(x)
        x = np.clip(x, 0.0, 1.0)
        for k, p in self.min_proportions.items():
            x[x[:, k] < p, k] = p
        x[:, self.excluded] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            return x / x.sum(axis=1, keepdims=True)

    def sample(self, n: int, seed: int | np.random.Generator | None = None, max_tries: int = 100) -> torch.Tensor:
        """``n`` palettes (n, C) float32, each non-negative and summing to one. A draw whose every
        proportion clips to zero is drawn again."""
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        out = np.empty((0, self.num_classes))
        for _ in range(max_tries):
            # scikit-learn draws from the estimator's random_state: hand it a fresh one each call.
            self.gmm.random_state = np.random.RandomState(rng.integers(2**31 - 1))
            raw, _ = self.gmm.sample(max(n - len(out), 1))
            palettes = self.project(raw)
            out = np.concatenate([out, palettes[np.isfinite(palettes).all(axis=1)]])[:n]
            if len(out) == n:
                return torch.from_numpy(out).float()
        raise RuntimeError(f"the mixture kept producing palettes with nothing left after {max_tries} tries")

    def log_likelihood(self, palettes: np.ndarray | torch.Tensor) -> np.ndarray:
        """Per-palette log density under the mixture (the paper's likelihood metric). (N, C) → (N,)."""
        x = np.asarray(palettes.detach().cpu() if isinstance(palettes, torch.Tensor) else palettes, dtype=np.float64)
        return self.gmm.score_samples(x)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The mixture's parameters and the sampling options as tensors (safetensors-friendly;
        no pickling)."""
        min_keys = sorted(self.min_proportions)
        return {
            "weights": torch.from_numpy(np.asarray(self.gmm.weights_, dtype=np.float64)),
            "means": torch.from_numpy(np.asarray(self.gmm.means_, dtype=np.float64)),
            "covariances": torch.from_numpy(np.asarray(self.gmm.covariances_, dtype=np.float64)),
            "projection": torch.tensor(PROJECTIONS.index(self.projection)),
            "min_classes": torch.tensor(min_keys, dtype=torch.long),
            "min_values": torch.tensor([self.min_proportions[k] for k in min_keys], dtype=torch.float64),
            "excluded": torch.tensor(self.excluded, dtype=torch.long),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> "PaletteSampler":
        """Rebuild a sampler from :meth:`state_dict` (a usable ``GaussianMixture`` without refitting)."""
        from scipy.linalg import cholesky, solve_triangular

        GaussianMixture = _gaussian_mixture()
        weights = state["weights"].double().numpy()
        means = state["means"].double().numpy()
        covariances = state["covariances"].double().numpy()
        k, c = means.shape
        if weights.shape != (k,) or covariances.shape != (k, c, c):
            raise ValueError(f"inconsistent mixture shapes: weights {weights.shape}, means {means.shape}, covariances {covariances.shape}")
        gmm = GaussianMixture(k, covariance_type="full")
        gmm.weights_, gmm.means_, gmm.covariances_ = weights, means, covariances
        # What scikit-learn derives from the covariances after fitting (needed for densities).
        gmm.precisions_cholesky_ = np.stack(
            [solve_triangular(cholesky(cov, lower=True), np.eye(c), lower=True).T for cov in covariances]
        )
        gmm.precisions_ = np.stack([p @ p.T for p in gmm.precisions_cholesky_])
        gmm.converged_, gmm.n_iter_, gmm.n_features_in_ = True, 0, c
        min_values = state["min_values"].tolist()
        return cls(
            gmm,
            projection=PROJECTIONS[int(state["projection"])],
            min_proportions=dict(zip(state["min_classes"].tolist(), min_values)),
            excluded=state["excluded"].tolist(),
        )
