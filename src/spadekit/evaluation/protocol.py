"""The pinned evaluation protocol: a JSON-able description of exactly how a number was measured
(extractor and its weights hash, resolution, resize methods, split, counts, segmenter, rules),
to be printed and stored next to every FID / mIoU / diversity result."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from spadekit.errors import MissingWeightsError

PROTOCOL_VERSION = 1


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def fid_protocol(weights_path: str | Path | None = None, strict: bool = False, preprocessing: str = "tf") -> dict:
    """The FID half of the protocol. Without the weights (and ``strict=False``) the hash is None
    and ``missing`` says why."""
    from spadekit.evaluation import fid

    entry = {
        "extractor": fid.INCEPTION_NAME,
        "feature_dim": 2048,
        "weights_file": fid.INCEPTION_FILE if weights_path is None else Path(weights_path).name,
        "weights_source": f"{fid.INCEPTION_PACKAGE} {_version(fid.INCEPTION_PACKAGE) or '(not installed)'}"
        if weights_path is None else "user path",
        "weights_sha256": None,
        "input": "RGB in [-1, 1] -> 8-bit pixels (x + 1) * 127.5, rounded",
        "preprocessing": preprocessing,
        "resize": fid.PREPROCESSING[preprocessing],
        "statistics": "float64 mean and unbiased covariance",
        "distance": "Frechet distance in float64, scipy.linalg.sqrtm, 1e-6 diagonal offset if the product is singular",
    }
    try:
        path = fid.find_inception_weights(weights_path)
        entry["weights_sha256"] = fid.file_sha256(path)
    except MissingWeightsError as exc:
        if strict:
            raise
        entry["missing"] = str(exc)
    return entry


def segmentation_protocol(name: str, weights_path: str | Path | None = None, strict: bool = False) -> dict:
    """The mIoU / accuracy half of the protocol for the named segmenter."""
    from spadekit.evaluation import fid, segmenters

    spec = segmenters.segmenter_spec(name)
    entry = {
        "segmenter": spec.name,
        "description": spec.description,
        "num_classes": spec.num_classes,
        "weights_files": list(spec.files),
        "weights_sha256": None,
        "input": "generated images at the generated resolution, single scale; logits bilinear-upsampled to it",
        "labels": "dataset label ids mapped to the segmenter's classes, nearest-resized to the generated resolution",
        "ignore_index": 255,
        "miou": "mean IoU over classes whose union (TP+FP+FN) over the whole set is non-zero",
        "pixel_accuracy": "correct pixels / pixels not ignored",
    }
    try:
        files = segmenters.find_segmenter_weights(name, weights_path)
        entry["weights_files"] = [p.name for p in files]
        entry["weights_sha256"] = [fid.file_sha256(p) for p in files]
    except MissingWeightsError as exc:
        if strict:
            raise
        entry["missing"] = str(exc)
    return entry


def evaluation_protocol(
    dataset: str,
    resolution: Sequence[int],
    split: str = "val",
    num_images: int | None = None,
    real_resize: str = "bicubic",
    fid_weights: str | Path | None = None,
    segmenter: str | None = None,
    segmenter_weights: str | Path | None = None,
    samples_per_label_map: int | None = None,
    lpips_net: str = "alex",
    fid_preprocessing: str = "tf",
    strict: bool = False,
) -> dict:
    """The full protocol description for one evaluation run.

    ``resolution`` is the generated images' ``(H, W)``; the real reference images for FID are
    resized to it with ``real_resize``. ``segmenter`` defaults to the paper's segmenter for
    ``dataset`` (none for datasets without one, e.g. custom data); pass ``""`` to leave mIoU out.
    ``samples_per_label_map`` > 1 adds the diversity entry. ``strict`` raises MissingWeightsError
    when a weight file is absent instead of recording it as missing.
    """
    from spadekit.evaluation.diversity import BACKBONE_FILES
    from spadekit.evaluation.segmenters import DATASET_SEGMENTERS

    height, width = (int(v) for v in resolution)
    protocol: dict = {
        "protocol_version": PROTOCOL_VERSION,
        "spadekit_version": _version("spadekit"),
        "dataset": dataset,
        "split": split,
        "resolution": [height, width],
        "counts": {"images": num_images},
        "fid": fid_protocol(fid_weights, strict, fid_preprocessing),
    }
    protocol["fid"]["reference"] = f"real {split} images resized to {height}x{width} ({real_resize})"
    name = DATASET_SEGMENTERS.get(dataset) if segmenter is None else segmenter
    if name:
        protocol["segmentation"] = segmentation_protocol(name, segmenter_weights, strict)
    if samples_per_label_map is not None and samples_per_label_map > 1:
        protocol["counts"]["samples_per_label_map"] = samples_per_label_map
        protocol["diversity"] = {
            "distance": f"LPIPS v0.1 ({lpips_net}), lpips package {_version('lpips') or '(not installed)'}",
            "backbone_file": BACKBONE_FILES.get(lpips_net),
            "aggregate": "mean over all unordered sample pairs of a label map, then mean over label maps",
        }
    return protocol


def format_protocol(protocol: dict) -> str:
    """A short human-readable block of the protocol (for logs and the terminal)."""
    lines = [
        f"protocol v{protocol['protocol_version']}: {protocol['dataset']} {protocol['split']}, "
        f"{protocol['resolution'][0]}x{protocol['resolution'][1]}, images={protocol['counts'].get('images')}"
    ]
    if "fid" in protocol:  # absent when a report leaves FID out
        fid = protocol["fid"]
        sha = (fid["weights_sha256"] or "MISSING")[:12]
        lines.append(f"  FID: {fid['extractor']} ({fid['weights_file']} sha256 {sha}), {fid['resize']}")
    if "segmentation" in protocol:
        seg = protocol["segmentation"]
        shas = ", ".join(s[:12] for s in seg["weights_sha256"]) if seg["weights_sha256"] else "MISSING"
        lines.append(f"  mIoU: {seg['segmenter']} ({', '.join(seg['weights_files'])} sha256 {shas})")
    if "diversity" in protocol:
        lines.append(f"  diversity: {protocol['diversity']['distance']}, "
                     f"{protocol['counts']['samples_per_label_map']} samples per label map")
    return "\n".join(lines)
