"""The paper's proportion measures for ``spadekit evaluate`` (the palette method's evaluation hook).

For every validation label map, the requested palette is that layout's own class proportions; the
model generates a layout from it (noise seeded per image), whose argmax at the photo size is what
the image stage synthesizes (so FID and mIoU measure photos of generated layouts). Measures:

* ``proportion-mae``: mean over layouts and classes of |requested − achieved| (achieved: the
  proportions of the argmax layout);
* ``proportion-kl``: mean over layouts of KL(requested ‖ achieved) = Σ_c p log(p / (q + 1e-5)),
  with 0·log 0 = 0;
* ``proportion-fd``: Fréchet distance between the Gaussians of the real proportion vectors and of
  the achieved ones (the paper's FSD; float64, unbiased covariances);
* ``proportion-fd-sampled``: the same with layouts from palettes drawn from the model's mixture
  (as many as there are real layouts), i.e. the realism of unguided generation;
* ``palette-fd``: the Fréchet distance of the mixture's raw palette draws themselves.
"""

from __future__ import annotations

import numpy as np
import torch

from spadekit.errors import ConfigError

METRICS = ("proportion-mae", "proportion-kl", "proportion-fd", "proportion-fd-sampled", "palette-fd")
KL_EPS = 1e-5


def proportion_errors(requested: np.ndarray, achieved: np.ndarray) -> dict[str, float]:
    """MAE and KL between (N, C) requested and achieved proportions (see the module docstring)."""
    p, q = np.asarray(requested, np.float64), np.asarray(achieved, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q + KL_EPS)), 0.0)
    return {"proportion-mae": float(np.abs(p - q).mean()), "proportion-kl": float(terms.sum(axis=1).mean())}


def proportion_fd(real: np.ndarray, generated: np.ndarray) -> float:
    """Fréchet distance between the Gaussians fitted to two sets of (N, C) proportion vectors."""
    from spadekit.evaluation.fid import frechet_distance

    a, b = np.asarray(real, np.float64), np.asarray(generated, np.float64)
    if len(a) < 2 or len(b) < 2:
        raise ConfigError("the Fréchet distance on proportions needs at least 2 layouts on each side")
    return float(frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))


def label_proportions(labels: torch.Tensor, num_classes: int) -> np.ndarray:
    """(N, H, W) or (N, 1, H, W) class ids → (N, C) proportions (ids outside the classes ignored)."""
    ids = labels.reshape(labels.shape[0], -1).long().cpu()
    rows = [torch.bincount(row[(row >= 0) & (row < num_classes)], minlength=num_classes)[:num_classes] for row in ids]
    counts = torch.stack(rows).double().numpy()
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)


class PaletteEvaluation:
    """The evaluation hook of a palette model (the interface of
    :class:`spadekit.evaluation.evaluate.EvaluationHook`)."""

    metrics = METRICS

    def __init__(self, model):
        from spadekit.methods.palette.pipeline import PalettePipeline

        self.pipeline = PalettePipeline(model)
        self.image_model = self.pipeline.image.model if self.pipeline.image is not None else None
        self.num_classes = self.pipeline.num_classes
        self.requested: list[np.ndarray] = []
        self.achieved: list[np.ndarray] = []
        self.seed = 0

    def to(self, device: torch.device | str) -> "PaletteEvaluation":
        self.pipeline.generator.to(device)
        self.pipeline.device = torch.device(device)
        return self

    def layouts(self, batch: dict, seeds: list[int]) -> torch.Tensor:
        """Requested = each real label map's proportions → generated label maps (N, 1, H, W) at the
        batch's size (the layout noise of image i from ``seeds[i]``)."""
        label = batch["label"]
        requested = label_proportions(label, self.num_classes)
        height, width = label.shape[-2:]
        soft = self.pipeline.layouts(torch.from_numpy(requested).float(), seeds)
        generated = self.pipeline.label_maps(soft, (width, height))
        self.requested.append(requested)
        self.achieved.append(label_proportions(generated, self.num_classes))
        self.seed = seeds[0] if len(self.requested) == 1 else self.seed
        return generated[:, None].to(label.device)

    def compute(self) -> dict[str, float]:
        requested, achieved = np.concatenate(self.requested), np.concatenate(self.achieved)
        scores = proportion_errors(requested, achieved)
        scores["proportion-fd"] = proportion_fd(requested, achieved)
        if self.pipeline.has_mixture:
            count = len(requested)
            palettes = self.pipeline.sample_palettes(count, seed=self.seed)
            size = self.pipeline.layout_size
            sampled = []
            for start in range(0, count, 64):
                chunk = palettes[start : start + 64]
                seeds = [self.seed + 1_000_003 + start + k for k in range(len(chunk))]
                sampled.append(label_proportions(self.pipeline.label_maps(self.pipeline.layouts(chunk, seeds), size), self.num_classes))
            scores["proportion-fd-sampled"] = proportion_fd(requested, np.concatenate(sampled))
            scores["palette-fd"] = proportion_fd(requested, palettes.double().numpy())
        return scores

    def protocol(self) -> dict:
        return {
            "requested": "each validation label map's own class proportions (at the photo size)",
            "layouts": f"generated at {self.pipeline.layout_size[0]}x{self.pipeline.layout_size[1]}, bilinear to the "
            "photo size, argmax; noise seeded per image",
            "achieved": "class proportions of the argmax layout",
            "mae": "mean over layouts and classes of |requested - achieved|",
            "kl": "mean over layouts of sum_c p log(p / (q + 1e-5)), 0 log 0 = 0",
            "fd": "Frechet distance between Gaussians of real and achieved proportion vectors (float64, unbiased)",
            "fd_sampled": "as fd, layouts from palettes drawn from the model's mixture" if self.pipeline.has_mixture
            else "not measured (no fitted mixture)",
            "photos": "the image stage on the generated label maps (FID against the real photos; mIoU of the "
            "photos against the generated layouts)" if self.image_model is not None else "none (no image model)",
        }
