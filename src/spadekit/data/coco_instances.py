"""COCO-Stuff instance maps from COCO's instance annotations (the SPADE data preparation step).

For every image of the annotation JSON an 8-bit PNG ``<stem>.png`` is written: each annotation's
polygon mask is painted, in annotation order, with its index. As in the official preparation:

* with ``label_dir`` (the COCO-Stuff label maps) the canvas starts as the image's label map, so stuff
  regions keep their class ids and their borders still show up as instance edges; indices count
  from 0. Without it the canvas is 0 and indices count from 1 (so the first object is not background).
* crowd annotations (RLE masks) are skipped unless ``include_crowd``; they take no index.
* indices wrap modulo 256 (8-bit PNGs); a wrapped id only matters where two equal ids touch.

Masks are rasterised with pycocotools (``annToMask``); the official script used scikit-image polygons
shifted by one pixel, so a few boundary pixels can differ from the released files.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from spadekit.errors import DataError, SpadekitError
from spadekit.io import atomic_write


def _load_coco(annotations: Path):
    try:
        from pycocotools.coco import COCO
    except ImportError:
        raise SpadekitError(
            "building COCO instance maps needs pycocotools: pip install 'spadekit[coco]'"
        ) from None
    if not annotations.is_file():
        raise DataError(f"{annotations}: annotation file not found")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress to stdout
            coco = COCO(str(annotations))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{annotations}: not a valid JSON file ({exc})") from None
    except (KeyError, TypeError, AssertionError) as exc:
        raise DataError(f"{annotations}: not a COCO instance annotation file (missing or malformed {exc})") from None
    return coco


def _mask(coco, ann: dict, annotations: Path) -> np.ndarray:
    """(H, W) bool mask of one annotation."""
    try:
        with warnings.catch_warnings():  # pycocotools' numpy-2 copy-keyword deprecation, not ours
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="pycocotools")
            return coco.annToMask(ann).astype(bool)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        raise DataError(f"{annotations}: annotation {ann.get('id')} has a malformed segmentation ({exc})") from None


def build_coco_instance_maps(
    annotations: str | Path,
    out_dir: str | Path,
    label_dir: str | Path | None = None,
    include_crowd: bool = False,
    progress: bool = True,
) -> int:
    """Write one instance PNG per image of ``annotations`` into ``out_dir``; returns how many were written.

    Args:
        annotations: COCO ``instances_{train,val}2017.json`` (or any file in that format).
        out_dir: created if needed; files are written atomically.
        label_dir: COCO-Stuff label maps (``<stem>.png``) to start each canvas from (official recipe).
        include_crowd: also paint crowd (RLE) annotations.
    """
    from tqdm import tqdm

    annotations, out_dir = Path(annotations), Path(out_dir)
    coco = _load_coco(annotations)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = 0
    for image_id in tqdm(sorted(coco.getImgIds()), desc="instance maps", unit="img", disable=not progress):
        info = coco.imgs[image_id]
        try:
            height, width, name = int(info["height"]), int(info["width"]), Path(info["file_name"]).stem + ".png"
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{annotations}: image entry {image_id} lacks file_name/height/width") from None
        if label_dir is not None:
            label_path = Path(label_dir) / name
            from spadekit.data.dataset import open_picture

            label = open_picture(label_path, "label map")
            if label.mode not in ("L", "P"):
                raise DataError(f"{label_path}: expected an 8-bit label map, got mode {label.mode!r}")
            if label.size != (width, height):
                raise DataError(
                    f"{label_path}: size {label.size[0]}x{label.size[1]} differs from the annotation's {width}x{height}"
                )
            canvas = np.array(label, dtype=np.uint8)
            index = 0
        else:
            canvas = np.zeros((height, width), np.uint8)
            index = 1
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id, iscrowd=None)):
            segmentation = ann.get("segmentation")
            if isinstance(segmentation, list):
                polygons = [p for p in segmentation if len(p) >= 6]
                if polygons:
                    canvas[_mask(coco, {**ann, "segmentation": polygons}, annotations)] = index % 256
                index += 1
            elif include_crowd and segmentation:
                canvas[_mask(coco, ann, annotations)] = index % 256
                index += 1
        atomic_write(out_dir / name, lambda tmp, array=canvas: Image.fromarray(array, mode="L").save(tmp, format="PNG"))
        written += 1
    return written
