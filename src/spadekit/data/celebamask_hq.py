"""CelebAMask-HQ face parsing: 19 classes stored as one binary mask PNG per face part per image.

Layout of the dataset as released::

    CelebA-HQ-img/<k>.jpg                                      photo k (1024 × 1024), k = 0 … 29999
    CelebAMask-HQ-mask-anno/<k // 2000>/<k:05d>_<part>.png     binary mask of one part (512 × 512)

A part absent from a face has no file. The label map of image k is background (0) where no mask is
set and ``1 + PARTS.index(part)`` where ``part``'s mask is non-zero, the parts applied in the
dataset's documented order (``PARTS``) so that a later part overwrites an earlier one (e.g. hair over
skin), as the dataset's own preparation script and Semantic Palette's do. Only channel 0 of a mask is
read. The split follows the usual convention of the face-editing papers: the last 2,000 faces
(k ≥ 28000) are ``val``, the rest ``train``.

:func:`scan_celebamask_hq` returns :class:`spadekit.data.formats.Scan` samples whose label "path" is
the per-face key ``CelebAMask-HQ-mask-anno/<k // 2000>/<k:05d>`` (no such file exists);
:func:`read_label` turns it into the merged map. :func:`write_merged_labels` writes the merged maps as
PNGs for the plain ``folder`` format instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from spadekit.data.formats import Sample, Scan
from spadekit.errors import DataError
from spadekit.io import atomic_write

PARTS = (
    "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
    "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth",
)  # fmt: skip
CLASS_NAMES = ("background", *PARTS)
"""The 19 classes, id = index (the official code names class 0 ``null``)."""
ANNO_DIR = "CelebAMask-HQ-mask-anno"
IMAGE_DIR = "CelebA-HQ-img"
FOLDER_SIZE = 2000
VAL_FROM = 28000
MASK_SIZE = 512
_MASK_NAME = re.compile(r"^(\d{5})_(" + "|".join(PARTS) + r")\.png$")


def is_celebamask_hq(root: str | Path) -> bool:
    """Whether ``root`` looks like the released CelebAMask-HQ folder."""
    return (Path(root) / ANNO_DIR).is_dir()


def label_key(root: str | Path, index: int) -> Path:
    """The per-face key :func:`read_label` reads: ``<root>/CelebAMask-HQ-mask-anno/<k // 2000>/<k:05d>``."""
    return Path(root) / ANNO_DIR / str(index // FOLDER_SIZE) / f"{index:05d}"


def part_paths(key: Path) -> dict[str, Path]:
    """{part: mask file} of the parts present for the face at ``key``."""
    return {part: key.parent / f"{key.name}_{part}.png" for part in PARTS if (key.parent / f"{key.name}_{part}.png").is_file()}


def merge_part_masks(masks: Mapping[str, np.ndarray], size: tuple[int, int] | None = None) -> np.ndarray:
    """Binary part masks {part: (H, W) or (H, W, channels)} → a uint8 label map (H, W) in the
    documented order (later parts overwrite earlier ones). ``size`` (H, W) is needed only when no
    mask is given."""
    unknown = sorted(set(masks) - set(PARTS))
    if unknown:
        raise DataError(f"CelebAMask-HQ: unknown part(s) {', '.join(unknown)}; the parts are {', '.join(PARTS)}")
    shapes = {np.asarray(m).shape[:2] for m in masks.values()}
    if len(shapes) > 1:
        raise DataError(f"CelebAMask-HQ: part masks of different sizes {sorted(shapes)}")
    shape = shapes.pop() if shapes else size
    if shape is None:
        raise DataError("CelebAMask-HQ: no part mask and no size given")
    label = np.zeros(shape, dtype=np.uint8)
    for class_id, part in enumerate(PARTS, start=1):
        if part in masks:
            mask = np.asarray(masks[part])
            label[(mask[..., 0] if mask.ndim == 3 else mask) != 0] = class_id
    return label


def read_label(key: str | Path) -> np.ndarray:
    """The merged (H, W) uint8 label map of the face at ``key`` (see :func:`label_key`)."""
    key = Path(key)
    paths = part_paths(key)
    if not paths:
        raise DataError(f"{key.parent}: no part mask {key.name}_<part>.png for face {key.name}")
    masks = {}
    for part, path in paths.items():
        try:
            with Image.open(path) as img:
                masks[part] = np.asarray(img)
        except (OSError, SyntaxError) as exc:
            raise DataError(f"{path}: unreadable mask ({exc})") from None
    try:
        return merge_part_masks(masks)
    except DataError as exc:
        raise DataError(f"{key}: {exc}") from None


def face_indices(root: str | Path) -> list[int]:
    """Indices k of the faces that have at least one part mask, sorted."""
    anno = Path(root) / ANNO_DIR
    if not anno.is_dir():
        raise DataError(f"{root}: not CelebAMask-HQ (no {ANNO_DIR}/ folder)")
    found = set()
    for path in anno.glob("*/*.png"):
        match = _MASK_NAME.match(path.name)
        if match and path.parent.name == str(int(match[1]) // FOLDER_SIZE):
            found.add(int(match[1]))
    return sorted(found)


def scan_celebamask_hq(root: str | Path, split: str, use_instance: bool = False, train: bool = True) -> Scan:
    """The faces of ``split`` (``train``: k < 28000, ``val``: k ≥ 28000) paired with their photos;
    faces without a photo are reported as problems. ``use_instance`` must be False (there are none);
    ``train`` is accepted for the common scan signature."""
    if use_instance:
        raise DataError("CelebAMask-HQ has no instance maps (use_instance must be off)")
    if split not in ("train", "val"):
        raise DataError(f"unknown split {split!r} (train or val)")
    root = Path(root)
    scan = Scan(where=f"{split} faces of {root / ANNO_DIR}, {root / IMAGE_DIR}")
    for k in face_indices(root):
        if (k >= VAL_FROM) != (split == "val"):
            continue
        key = label_key(root, k)
        image = next((root / IMAGE_DIR / f"{k}{ext}" for ext in (".jpg", ".png") if (root / IMAGE_DIR / f"{k}{ext}").is_file()), None)
        if image is None:
            scan.problems.append((key, f"no photo {IMAGE_DIR}/{k}.jpg"))
            continue
        scan.samples.append(Sample(label=key, image=image))
    return scan


def write_merged_labels(root: str | Path, out_dir: str | Path, indices: Iterable[int] | None = None) -> list[Path]:
    """Write ``<out_dir>/<k>.png`` (mode L, class ids) for each face (default: all), atomically."""
    out_dir = Path(out_dir)
    written = []
    for k in face_indices(root) if indices is None else indices:
        label = read_label(label_key(root, k))
        target = out_dir / f"{k}.png"
        atomic_write(target, lambda tmp, label=label: Image.fromarray(label).save(tmp, format="PNG"))
        written.append(target)
    return written
