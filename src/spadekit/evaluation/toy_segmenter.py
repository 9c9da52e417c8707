"""The toy protocol's evaluator: a compact U-Net trained on real toy scenes (photo → label map).

It stands in for the paper's pretrained segmenters on the built-in toy world, so the whole
evaluation (mIoU, pixel accuracy and an FID) runs offline:

* **mIoU / accuracy**: generated images are segmented and compared with the label maps they were
  generated from, exactly as with DRN-D-105 / UperNet / DeepLabV2 on the real datasets.
* **toy FID**: the Fréchet distance between Gaussian fits of the network's pooled features
  (:meth:`ToySegmenter.features`: the spatial mean of the penultimate layer, the one feeding the
  classifier, and of the bottleneck) for real and generated images. It is *not* comparable with
  Inception FID numbers; it only ranks models on toy scenes.
* **toy feature diversity** (a documented fallback, not LPIPS): the LPIPS recipe with this
  network's encoder features and uniform layer weights, :meth:`ToySegmenter.feature_distance`.

The network always runs at the size it was trained at (``size``, square): inputs of another size
are resized to it (bilinear, antialiased) and the logits are resized back (bilinear).

Saved as a folder: ``segmenter.safetensors`` (the network's weights) + ``segmenter.json`` (its
architecture, class names, how it was trained and its own validation scores on real toy images).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spadekit.errors import CheckpointError, MissingWeightsError
from spadekit.evaluation.segmentation import ConfusionMatrix
from spadekit.evaluation.segmenters import Segmenter
from spadekit.io import read_format_json

FORMAT_NAME = "spadekit-toy-segmenter"
FORMAT_VERSION = 1
WEIGHTS_FILE = "segmenter.safetensors"
CONFIG_FILE = "segmenter.json"
NAME = "toy-unet"
BUNDLED_FOLDER = "toy_segmenter"
"""Folder name of the trained segmenter shipped inside the package (``spadekit/bundled/toy_segmenter``)."""


# ----------------------------------------------------------------------------- network


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class ToySegNet(nn.Module):
    """A compact U-Net.

    ``depth`` levels of two 3×3 conv-BN-ReLU (widths ``width · 2**level``) with 2×2 max pooling
    between them; a decoder of bilinear ×2 upsampling, concatenation with the skip and two 3×3
    conv-BN-ReLU per level; a 1×1 classifier. Input ``(N, 3, H, W)`` normalised to [-1, 1] with
    ``H``, ``W`` multiples of ``2**(depth-1)``; output logits ``(N, num_classes, H, W)``.
    ``size`` records the (square) resolution it is trained and run at.
    """

    def __init__(self, num_classes: int = 12, width: int = 16, depth: int = 4, size: int = 64):
        super().__init__()
        if depth < 2:
            raise ValueError(f"depth must be >= 2, got {depth}")
        if size % 2 ** (depth - 1):
            raise ValueError(f"size {size} must be a multiple of {2 ** (depth - 1)} for depth {depth}")
        self.num_classes, self.width, self.depth, self.size = num_classes, width, depth, size
        widths = [width * 2**i for i in range(depth)]
        self.down = nn.ModuleList(_double_conv(3 if i == 0 else widths[i - 1], widths[i]) for i in range(depth))
        self.up = nn.ModuleList(_double_conv(widths[i + 1] + widths[i], widths[i]) for i in reversed(range(depth - 1)))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    @property
    def feature_dim(self) -> int:
        """Size of :meth:`pooled_features`: penultimate width + bottleneck width."""
        return self.width + self.width * 2 ** (self.depth - 1)

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """``(logits, encoder feature maps (finest first, the last is the bottleneck), penultimate map)``."""
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.classifier(x), skips, x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]

    def pooled_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, feature_dim)``: spatial means of the penultimate map and of the bottleneck."""
        _, skips, penultimate = self.forward_all(x)
        return torch.cat([penultimate.mean(dim=(2, 3)), skips[-1].mean(dim=(2, 3))], dim=1)


# ----------------------------------------------------------------------------- evaluator


class ToySegmenter(Segmenter):
    """:class:`ToySegNet` as a frozen evaluator (the :class:`Segmenter` interface).

    ``forward(images)``: ``(N, 3, H, W)`` in [-1, 1] → logits ``(N, C, H, W)``; ``predict`` → class
    map ``(N, H, W)``; ``features`` → ``(N, feature_dim)`` for the toy FID;
    ``feature_distance(a, b)`` → ``(P,)`` for the fallback diversity score.
    """

    def __init__(self, net: ToySegNet, class_names: Sequence[str] | None = None, meta: dict | None = None):
        super().__init__(net, net.num_classes, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), pixel_scale=1.0, bgr=False, name=NAME)
        self.class_names = list(class_names) if class_names else [f"class {i}" for i in range(net.num_classes)]
        self.meta = dict(meta or {})

    @property
    def size(self) -> int:
        return self.net.size

    def native(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised network input at the training size (bilinear, antialiased when shrinking)."""
        x = self.normalize(images)
        h, w = x.shape[-2:]
        step = 2 ** (self.net.depth - 1)
        target_h = self.net.size
        target_w = max(step, int(round(self.net.size * w / h / step)) * step)
        if (h, w) != (target_h, target_w):
            x = F.interpolate(x, size=(target_h, target_w), mode="bilinear", align_corners=False, antialias=True)
        return x

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.net(self.native(images))
        if logits.shape[-2:] != images.shape[-2:]:
            logits = F.interpolate(logits, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return logits

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` in [-1, 1] → ``(N, feature_dim)`` float32 (the toy FID features)."""
        return self.net.pooled_features(self.native(images)).float()

    @torch.no_grad()
    def feature_distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """LPIPS-style distance with uniform weights on this network's encoder levels: per level,
        unit-normalise every pixel's feature vector, take the squared difference summed over
        channels and averaged over pixels; sum over levels. ``(P, 3, H, W)`` ×2 → ``(P,)``.
        Not LPIPS: it is uncalibrated and only meaningful between toy-scene models."""
        _, feats_a, _ = self.net.forward_all(self.native(a))
        _, feats_b, _ = self.net.forward_all(self.native(b))
        total = torch.zeros(a.shape[0], device=a.device)
        for fa, fb in zip(feats_a, feats_b):
            fa = fa / (fa.norm(dim=1, keepdim=True) + 1e-10)
            fb = fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
            total += (fa - fb).pow(2).sum(dim=1).mean(dim=(1, 2))
        return total


class ToyFeatures(nn.Module):
    """The toy FID extractor: images ``(N, 3, H, W)`` in [-1, 1] → ``(N, feature_dim)``."""

    def __init__(self, segmenter: ToySegmenter):
        super().__init__()
        self.segmenter = segmenter

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.segmenter.features(images)


# ----------------------------------------------------------------------------- files


def bundled_toy_segmenter() -> Path | None:
    """The segmenter folder shipped with the package, or None when this install has none."""
    folder = resources.files("spadekit") / "bundled" / BUNDLED_FOLDER
    path = Path(str(folder))
    return path if (path / WEIGHTS_FILE).is_file() else None


def find_toy_segmenter(path: str | Path | None = None) -> Path:
    """The folder of a saved toy segmenter: ``path`` (the folder or either of its files), else the
    bundled one. Raises MissingWeightsError saying how to make one; never downloads."""
    if path is not None:
        candidate = Path(path)
        folder = candidate.parent if candidate.is_file() else candidate
        if (folder / WEIGHTS_FILE).is_file():
            return folder
        raise MissingWeightsError(
            f"{folder / WEIGHTS_FILE}: toy segmenter weights not found; train one with "
            "`spadekit toy segmenter --out DIR` and pass DIR"
        )
    bundled = bundled_toy_segmenter()
    if bundled is not None:
        return bundled
    where = Path(str(resources.files("spadekit"))) / "bundled" / BUNDLED_FOLDER / WEIGHTS_FILE
    raise MissingWeightsError(
        f"the toy protocol needs a toy segmenter ({WEIGHTS_FILE} + {CONFIG_FILE}); none is bundled at {where}: "
        "train one with `spadekit toy segmenter --out DIR` (a few minutes on a CPU) and pass --segmenter-weights DIR"
    )


def save_toy_segmenter(net: ToySegNet, directory: str | Path, class_names: Sequence[str], meta: dict | None = None) -> Path:
    """Write ``segmenter.safetensors`` + ``segmenter.json`` into ``directory``, each atomically."""
    from safetensors.torch import save_file

    from spadekit.io import atomic_write, atomic_write_text

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in net.state_dict().items()}
    config = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "name": NAME,
        "num_classes": net.num_classes,
        "class_names": list(class_names),
        "width": net.width,
        "depth": net.depth,
        "size": net.size,
        "feature_dim": net.feature_dim,
        **(meta or {}),
    }
    # Each file is written atomically, weights first; the config names the weights' hash, so a pair
    # mixed up by an interrupted overwrite is detected when loading.
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    config["weights_sha256"] = _sha256(directory / WEIGHTS_FILE)
    atomic_write_text(directory / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return directory


def read_toy_config(directory: Path) -> dict:
    path = directory / CONFIG_FILE
    config = read_format_json(path, FORMAT_NAME, FORMAT_VERSION, f"toy segmenter ({CONFIG_FILE} beside {WEIGHTS_FILE})")
    for key in ("num_classes", "width", "depth", "size"):
        if not isinstance(config.get(key), int) or config[key] < 1:
            raise CheckpointError(f"{path}: {key!r} must be a positive integer")
    return config


def load_toy_segmenter(path: str | Path | None = None, device: str | torch.device = "cpu") -> ToySegmenter:
    """Load a saved toy segmenter (see :func:`find_toy_segmenter` for ``path``) as a frozen evaluator."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from spadekit.release import load_state_into

    directory = find_toy_segmenter(path)
    config = read_toy_config(directory)
    try:
        net = ToySegNet(config["num_classes"], config["width"], config["depth"], config["size"])
    except ValueError as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE}: {exc}") from None
    weights = directory / WEIGHTS_FILE
    expected = config.get("weights_sha256")
    if expected is not None and _sha256(weights) != expected:
        raise CheckpointError(f"{weights}: does not match {CONFIG_FILE} beside it (sha256 differs): the folder holds "
                              "files of two different segmenters")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{weights}: corrupt or truncated safetensors file ({first})") from None
    load_state_into(net, state, weights)
    meta = {k: v for k, v in config.items() if k not in ("class_names",)}
    meta["directory"] = str(directory)
    return ToySegmenter(net, config.get("class_names"), meta).to(device)


# ----------------------------------------------------------------------------- data


def render_toy_set(
    num_scenes: int, size: int, split: str = "train", seed: int = 0, first: int = 0, progress: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Real toy scenes ``first .. first+num_scenes-1`` of a split (the scenes the toy preset's
    dataset generates), as ``(images (N, 3, S, S) uint8, labels (N, S, S) uint8)``."""
    from tqdm import tqdm

    from spadekit.data.toy import render_scene, scene_seed

    images = torch.empty(num_scenes, 3, size, size, dtype=torch.uint8)
    labels = torch.empty(num_scenes, size, size, dtype=torch.uint8)
    for i in tqdm(range(num_scenes), desc=f"render {split} scenes", unit="scene", disable=not progress):
        scene = render_scene(scene_seed(seed, first + i, split), size)
        images[i] = torch.from_numpy(scene.image).permute(2, 0, 1)
        labels[i] = torch.from_numpy(scene.label)
    return images, labels


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(N, 3, H, W)`` → float32 in [-1, 1] (the dataset's photo convention)."""
    return images.float() / 127.5 - 1.0


# ----------------------------------------------------------------------------- training


def training_step(
    net: ToySegNet, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor
) -> float:
    """One cross-entropy step. ``images`` ``(N, 3, S, S)`` in [-1, 1], ``labels`` ``(N, S, S)`` int64.
    Returns the loss before the update."""
    net.train()
    logits = net(images)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


@torch.no_grad()
def score_segmenter(
    segmenter: Segmenter, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 64, class_names: Sequence[str] | None = None
) -> dict:
    """mIoU / pixel accuracy of ``segmenter`` on ``images`` (uint8 or [-1, 1] float ``(N, 3, H, W)``)
    against ``labels`` ``(N, H, W)``; per-class IoU keyed by class name (None where undefined)."""
    matrix = ConfusionMatrix(segmenter.num_classes)
    device = next(segmenter.parameters()).device
    for start in range(0, images.shape[0], batch_size):
        batch = images[start : start + batch_size]
        batch = to_unit_range(batch) if batch.dtype == torch.uint8 else batch.float()
        matrix.update(segmenter.predict(batch.to(device)).cpu(), labels[start : start + batch_size].long())
    scores = matrix.compute()
    names = list(class_names) if class_names else [f"class {i}" for i in range(segmenter.num_classes)]
    return {
        "miou": scores["miou"],
        "pixel_accuracy": scores["pixel_accuracy"],
        "mean_accuracy": scores["mean_accuracy"],
        "per_class_iou": {n: (None if math.isnan(v) else v) for n, v in zip(names, scores["per_class_iou"])},
        "images": int(images.shape[0]),
    }


@dataclass
class ToySegmenterResult:
    """What :func:`train_toy_segmenter` produced."""

    directory: Path
    val: dict
    losses: list[float] = field(default_factory=list)
    """Mean training loss of each logging window (every ``log_every`` steps)."""
    seconds: float = 0.0


def train_toy_segmenter(
    out: str | Path,
    steps: int = 1500,
    size: int = 64,
    batch_size: int = 8,
    width: int = 16,
    depth: int = 4,
    lr: float = 3e-3,
    train_scenes: int = 1000,
    val_scenes: int = 200,
    seed: int = 0,
    scales: Sequence[int] = (1, 2),
    device: str | torch.device = "cpu",
    progress: bool = True,
    log_every: int = 50,
    log: Callable[[str], None] | None = print,
) -> ToySegmenterResult:
    """Train a :class:`ToySegNet` on real toy scenes and save it (with its val scores) to ``out``.

    Training scenes come from the toy ``train`` split (seed ``seed``): for each ``scale`` in
    ``scales``, ``train_scenes`` scenes rendered at ``size · scale`` and brought to ``size`` the way
    the evaluator brings larger images to it (bilinear, antialiased; labels nearest), so one
    segmenter reads both ``size`` and ``2 · size`` models. They are rendered once and kept in
    memory; each step draws a random batch and flips it horizontally at random. AdamW with a
    one-cycle learning-rate schedule peaking at ``lr``. Validation: scenes ``0 .. val_scenes-1``
    of the ``val`` split (the toy preset's evaluation set) at every rendered size, scored at that
    size exactly as ``spadekit evaluate`` scores generated images; ``val`` in the result is the
    first scale's.
    """
    from tqdm import tqdm

    from spadekit.data.toy import TOY_CLASSES

    if steps < 1 or batch_size < 1 or train_scenes < 1 or val_scenes < 1:
        raise ValueError("steps, batch_size, train_scenes and val_scenes must be >= 1")
    begin = time.perf_counter()
    torch.manual_seed(seed)
    device = torch.device(device)
    if not scales or any(int(k) < 1 for k in scales):
        raise ValueError(f"scales must be positive integers, got {scales}")
    parts = []
    for i, scale in enumerate(scales):  # each scale gets its own scenes: more variety
        images, labels = render_toy_set(train_scenes, size * scale, "train", seed, first=i * train_scenes, progress=progress)
        if scale != 1:
            images = F.interpolate(images.float(), size=(size, size), mode="bilinear", align_corners=False,
                                   antialias=True).round().clamp(0, 255).to(torch.uint8)
            labels = F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest")[:, 0].to(torch.uint8)
        parts.append((images, labels))
    train_images = torch.cat([p[0] for p in parts])
    train_labels = torch.cat([p[1] for p in parts])
    train_total = train_images.shape[0]

    net = ToySegNet(len(TOY_CLASSES), width, depth, size).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.15)
    generator = torch.Generator().manual_seed(seed)
    losses, window = [], []
    bar = tqdm(range(steps), desc="toy segmenter", unit="step", disable=not progress)
    for step in bar:
        index = torch.randint(0, train_total, (batch_size,), generator=generator)
        images = to_unit_range(train_images[index])
        labels = train_labels[index].long()
        flip = torch.rand(batch_size, generator=generator) < 0.5
        images[flip] = images[flip].flip(-1)
        labels[flip] = labels[flip].flip(-1)
        window.append(training_step(net, optimizer, images.to(device), labels.to(device)))
        schedule.step()
        if len(window) == log_every or step == steps - 1:
            losses.append(sum(window) / len(window))
            window = []
            bar.set_postfix(loss=f"{losses[-1]:.3f}")

    segmenter = ToySegmenter(net.eval(), TOY_CLASSES).to(device)  # its normalisation buffers too
    val_by_size = {}
    for scale in scales:
        val_images, val_labels = render_toy_set(val_scenes, size * scale, "val", seed, progress=progress)
        scores = score_segmenter(segmenter, val_images, val_labels, class_names=TOY_CLASSES)
        val_by_size[str(size * scale)] = {**scores, "split": "val", "size": size * scale}
    val = val_by_size[str(size * scales[0])]
    seconds = time.perf_counter() - begin
    meta = {
        "training": {
            "steps": steps, "batch_size": batch_size, "lr": lr, "optimizer": "AdamW + one-cycle",
            "train_scenes": train_scenes, "render_sizes": [size * k for k in scales], "seed": seed,
            "augmentation": "random horizontal flip", "seconds": round(seconds, 1),
            "final_loss": losses[-1] if losses else None,
        },
        "val": val,
        "val_by_size": val_by_size,
    }
    directory = save_toy_segmenter(net.cpu(), out, TOY_CLASSES, meta)
    if log:
        scores = ", ".join(f"{k}px mIoU {v['miou']:.3f} (pixel accuracy {v['pixel_accuracy']:.3f})"
                           for k, v in val_by_size.items())
        log(f"toy segmenter on {val_scenes} real val scenes: {scores} ({seconds:.0f} s); saved to {directory}")
    return ToySegmenterResult(directory, val, losses, seconds)


# ----------------------------------------------------------------------------- protocol


def _sha256(path: Path) -> str:
    from spadekit.evaluation.fid import file_sha256

    return file_sha256(path)


def toy_segmentation_protocol(segmenter: ToySegmenter) -> dict:
    """The mIoU / accuracy part of the toy protocol (same keys as the paper segmenters')."""
    directory = Path(segmenter.meta.get("directory", "."))
    val = segmenter.meta.get("val", {})
    return {
        "segmenter": NAME,
        "description": f"toy U-Net (width {segmenter.net.width}, depth {segmenter.net.depth}) trained on real toy "
        f"scenes at {segmenter.size}x{segmenter.size}",
        "num_classes": segmenter.num_classes,
        "weights_files": [WEIGHTS_FILE],
        "weights_sha256": [_sha256(directory / WEIGHTS_FILE)] if (directory / WEIGHTS_FILE).is_file() else None,
        "segmenter_real_val_miou": val.get("miou"),
        "segmenter_real_val_pixel_accuracy": val.get("pixel_accuracy"),
        "segmenter_real_val_miou_by_size": {k: v.get("miou") for k, v in segmenter.meta.get("val_by_size", {}).items()},
        "input": f"generated images resized to {segmenter.size}x{segmenter.size} (bilinear, antialiased), "
        "logits bilinear-resized back to the generated resolution",
        "labels": "toy class ids (identity mapping) at the generated resolution",
        "ignore_index": 255,
        "miou": "mean IoU over classes whose union (TP+FP+FN) over the whole set is non-zero",
        "pixel_accuracy": "correct pixels / pixels not ignored",
    }


def toy_fid_protocol(segmenter: ToySegmenter) -> dict:
    """The FID part of the toy protocol (same keys as the Inception one)."""
    directory = Path(segmenter.meta.get("directory", "."))
    weights = directory / WEIGHTS_FILE
    return {
        "extractor": f"{NAME}-features",
        "feature_dim": segmenter.net.feature_dim,
        "weights_file": WEIGHTS_FILE,
        "weights_source": str(directory),
        "weights_sha256": _sha256(weights) if weights.is_file() else None,
        "input": "RGB in [-1, 1] as generated (not quantised)",
        "preprocessing": "toy",
        "resize": f"bilinear (antialiased) to {segmenter.size}x{segmenter.size}, the toy segmenter's size",
        "features": "spatial means of the toy U-Net's penultimate layer and bottleneck, concatenated",
        "statistics": "float64 mean and unbiased covariance",
        "distance": "Frechet distance in float64 (not comparable with Inception FID)",
    }


__all__ = [
    "ToyFeatures", "ToySegNet", "ToySegmenter", "ToySegmenterResult", "bundled_toy_segmenter", "find_toy_segmenter",
    "load_toy_segmenter", "render_toy_set", "save_toy_segmenter", "score_segmenter",
    "toy_fid_protocol", "toy_segmentation_protocol", "train_toy_segmenter", "training_step",
]
