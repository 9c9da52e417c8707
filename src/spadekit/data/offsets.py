"""Intra-class offset maps (CLADE-ICPE's positional input): every pixel's offset from the centre of
its class region.

For each label value except ``ignore_value`` (0 in the paper's preprocessing, ADE20K's "unknown" and
Cityscapes' "unlabeled"), the value's mask is split into 8-connected components; every pixel gets
``(row − cy, col − cx)`` relative to its component's centroid, divided (``normalize``) by that
component's largest absolute offset + 1e-5. Ignored pixels and single-pixel components get 0.
The data pipeline computes this on the raw annotation, before any label remapping, at its full
resolution; :func:`transform_offsets` then resizes, crops and flips the map with the label map.

Flipping: a horizontally flipped image needs the map flipped along the width with the column
offsets negated (:func:`flip_offsets`), which gives the map of the flipped annotation. The paper's
data loader flips the map along the height instead and keeps the sign, a bug; it only affects
training with random flips (test-time outputs are unaffected).

Resizing follows the paper's loader: ``F.interpolate(mode="nearest")`` (source pixel
``floor(i · in / out)``), while label maps are resized by PIL's nearest rule (pixel centres), so
where a resize happens the two can disagree by one source pixel, exactly as in the paper's code.
(The paper's loader does not resize the map at all for the ``scale_width``/``scale_shortside``
modes, where it then no longer matches the label map; here every mode resizes it.)

At inference, when no map is given, :func:`offsets_of_index` computes it from the class-index map
a generator receives (at the model size): the same rule, applied after the resize instead of
before it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

# OpenCV's connectedComponentsWithStats default (the paper's preprocessing): 8-connectivity.
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def intra_class_offsets(label: np.ndarray | torch.Tensor, normalize: bool = True, ignore_value: int | None = 0) -> np.ndarray:
    """The (row, column) offset map of a raw label map.

    Args:
        label: (H, W) integer label values as stored in the annotation file.
        normalize: divide each component's offsets by its largest |offset| + 1e-5 (the paper's
            default ``norm`` mode); False keeps raw pixel offsets.
        ignore_value: the label value that gets no offsets (None: every value gets them).

    Returns:
        (2, H, W) float32: row offsets, then column offsets.
    """
    label = label.cpu().numpy() if isinstance(label, torch.Tensor) else np.asarray(label)
    if label.ndim != 2:
        raise ValueError(f"intra_class_offsets takes one (H, W) label map, got shape {label.shape}")
    height, width = label.shape
    # One id per connected component of every class, 0 for ignored pixels.
    component = np.zeros((height, width), dtype=np.int64)
    count = 0
    for value in np.unique(label):
        if ignore_value is not None and value == ignore_value:
            continue
        parts, found = ndimage.label(label == value, structure=_EIGHT_CONNECTED)
        inside = parts > 0
        component[inside] = parts[inside] + count
        count += found
    ids = component.ravel()
    rows, cols = np.indices((height, width), dtype=np.float64)
    # Centroids as sums / area in float64, as OpenCV computes them (integer sums are exact).
    area = np.bincount(ids, minlength=count + 1).astype(np.float64)
    area[0] = 1.0
    centre_row = np.bincount(ids, weights=rows.ravel(), minlength=count + 1) / area
    centre_col = np.bincount(ids, weights=cols.ravel(), minlength=count + 1) / area
    offsets = np.stack([rows - centre_row[component], cols - centre_col[component]])
    offsets[:, component == 0] = 0.0
    if normalize and count:
        index = np.arange(1, count + 1)
        for channel in offsets:
            largest = np.zeros(count + 1)
            largest[1:] = ndimage.maximum(np.abs(channel), labels=component, index=index)
            channel /= largest[component] + 1e-5
    return offsets.astype(np.float32)


def flip_offsets(dist: torch.Tensor) -> torch.Tensor:
    """The offset map of the horizontally flipped annotation: flip along the width, negate the column offsets.

    Shapes: (..., 2, H, W) → (..., 2, H, W).
    """
    flipped = dist.flip(-1)
    return torch.stack([flipped[..., 0, :, :], -flipped[..., 1, :, :]], dim=-3)


def offsets_of_index(index: torch.Tensor, normalize: bool = True, ignore_index: int | None = 0) -> torch.Tensor:
    """:func:`intra_class_offsets` of every map of a batch of class indices.

    Shapes: (N, H, W) int → (N, 2, H, W) float32 on ``index``'s device (computed on the CPU).
    """
    maps = [torch.from_numpy(intra_class_offsets(item, normalize, ignore_index)) for item in index.detach().cpu()]
    return torch.stack(maps).to(index.device)


def transform_offsets(offsets: np.ndarray, preprocess, params) -> torch.Tensor:
    """Resize (nearest, the paper's rule), crop and flip a (2, H, W) raw-annotation offset map like
    the label map of the same sample (``preprocess``: :class:`spadekit.data.transforms.Preprocess`,
    ``params`` its draw for the sample). Crops past the border pad with 0, as the label's do.

    Returns (2, h, w) float32.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(offsets, dtype=np.float32))[None]
    height, width = tensor.shape[-2:]
    new_w, new_h = preprocess.resized_size(width, height)
    if (new_w, new_h) != (width, height):
        tensor = F.interpolate(tensor, size=(new_h, new_w), mode="nearest")
    if preprocess.crops:
        x, y = params.crop_pos
        size = preprocess.crop_size
        crop = torch.zeros(1, 2, size, size)
        part = tensor[:, :, y : y + size, x : x + size]
        crop[:, :, : part.shape[-2], : part.shape[-1]] = part
        tensor = crop
    if params.flip:
        tensor = flip_offsets(tensor)
    return tensor[0].contiguous()
