"""Style fidelity: does an image synthesized with a style photo take that photo's colours?

For pairs of independent toy scenes (a *layout* scene and a *style* scene), the model draws the
layout's label map with the style photo encoded into its latent (exactly what
``Pipeline(labels, style=photo)`` does). For every class present in both scenes, two colours are
compared: the mean RGB of the result inside the class's region of the layout, and the mean RGB of
the style photo inside the class's region of the style scene. Over the pairs, the Pearson
correlation of the two (per channel, then averaged over R, G and B) says how well the style is
followed: 1 = the result's colour of that class moves with the style photo's (up to a linear map),
0 = unrelated. Without a style photo (a random latent instead) it is near 0 whatever the model,
which makes that the control.

Because the two scenes are independent, a correlation can only come through the style encoder: the
layout alone says nothing about the style photo's colours.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from spadekit.data.toy import ToyScene

MIN_PIXELS = 64
"""A class counts in a scene when it covers at least this many pixels (0.4 % of a 128² image)."""


def toy_pairs(count: int, size: int = 128, seed: int = 0) -> list[tuple[ToyScene, ToyScene]]:
    """The benchmark's pairs: layout ``i`` is toy ``val`` scene ``i``, its style photo toy ``test``
    scene ``i`` (another seed stream, so the two are independent)."""
    from spadekit.data.toy import render_scene, scene_seed

    return [(render_scene(scene_seed(seed, i, "val"), size), render_scene(scene_seed(seed, i, "test"), size))
            for i in range(count)]


def region_means(image: np.ndarray, label: np.ndarray, num_classes: int, min_pixels: int = MIN_PIXELS) -> np.ndarray:
    """Mean colour per class: ``image`` (H, W, 3) float, ``label`` (H, W) ids → (num_classes, 3),
    NaN for classes covering fewer than ``min_pixels`` pixels."""
    means = np.full((num_classes, 3), np.nan)
    flat_label = label.reshape(-1)
    flat_image = image.reshape(-1, 3).astype(np.float64)
    counts = np.bincount(flat_label, minlength=num_classes)[:num_classes]
    for channel in range(3):
        sums = np.bincount(flat_label, weights=flat_image[:, channel], minlength=num_classes)[:num_classes]
        with np.errstate(invalid="ignore", divide="ignore"):
            means[:, channel] = np.where(counts >= min_pixels, sums / np.maximum(counts, 1), np.nan)
    return means


def pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    """Pearson's r of two 1-D arrays; None with fewer than 3 points or a constant array."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 3 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def style_fidelity(
    pipeline,
    pairs: Sequence[tuple[ToyScene, ToyScene]],
    class_names: Sequence[str],
    use_style: bool = True,
    seed: int = 0,
    min_pixels: int = MIN_PIXELS,
    refine_steps: int = 0,
) -> dict:
    """Per-class correlation between the style photos' and the results' mean colours.

    Args:
        pipeline: a :class:`~spadekit.inference.Pipeline` whose model has a style encoder (when
            ``use_style``); scenes are resized to its size.
        pairs: ``(layout scene, style scene)``; the result draws the first's label and instance
            maps with the second's photo.
        use_style: False draws each layout with the latent of its seed only (the control).
        seed: pair ``i`` uses ``seed + i`` (the posterior sample around the style's encoding).
        refine_steps: refine each style photo's latent against the style scene's own label and
            instance maps first (:meth:`~spadekit.inference.Pipeline.refine_style`); 0: the encoder's.
    Returns:
        ``{"pairs": n, "use_style": bool, "refine_steps": k, "classes": {name: {"pairs": m, "r": r, "r_rgb": [rR, rG, rB]}}}``
        with ``r`` the mean of the channels' r (None where fewer than 3 pairs hold the class in
        both scenes or a colour never varies).
    """
    num_classes = len(class_names)
    style_means, result_means = [], []
    for i, (layout, style) in enumerate(pairs):
        refine = {"refine_steps": refine_steps, "style_labels": style.label, "style_instances": style.instance} \
            if use_style and refine_steps else {}
        out = pipeline(layout.label, layout.instance, style=style.image if use_style else None, seed=seed + i,
                       output="tensor", **refine)[0]
        result = ((out.float().cpu().clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy()
        h, w = result.shape[:2]
        label = layout.label
        if label.shape != (h, w):
            label = np.asarray(torch.nn.functional.interpolate(
                torch.from_numpy(label)[None, None].float(), size=(h, w), mode="nearest")[0, 0].to(torch.uint8))
        result_means.append(region_means(result, label, num_classes, min_pixels))
        style_means.append(region_means(style.image.astype(np.float64) / 255.0, style.label, num_classes, min_pixels))
    classes = correlate(np.stack(style_means), np.stack(result_means), class_names)
    return {"pairs": len(pairs), "use_style": use_style, "refine_steps": refine_steps if use_style else 0,
            "classes": classes}


def correlate(style_means: np.ndarray, result_means: np.ndarray, class_names: Sequence[str]) -> dict:
    """Per class, Pearson r between two (pairs, classes, 3) arrays of region mean colours (NaN where a
    class is missing), over the pairs holding the class in both: ``{name: {"pairs", "r", "r_rgb"}}``."""
    classes = {}
    for c, name in enumerate(class_names):
        both = ~np.isnan(style_means[:, c, 0]) & ~np.isnan(result_means[:, c, 0])
        per_channel = [pearson(style_means[both, c, k], result_means[both, c, k]) for k in range(3)]
        valid = [r for r in per_channel if r is not None]
        classes[name] = {
            "pairs": int(both.sum()),
            "r": float(np.mean(valid)) if len(valid) == 3 else None,
            "r_rgb": per_channel,
        }
    return classes


def real_style_fidelity(count: int, class_names: Sequence[str], size: int = 128, seed: int = 0,
                        min_pixels: int = MIN_PIXELS) -> dict:
    """What real toy photos score on the same measure: layout ``i`` (toy ``val`` scene ``i``) and
    the style scene (toy ``test`` scene ``i``) are both drawn with one style seed, so the "result" is
    a real photo of the layout in the style photo's look. Its r is the measure's ceiling (below 1
    where a class's colour also depends on the layout: lighting, texture, haze)."""
    from spadekit.data.toy import render_scene, scene_seed

    num_classes = len(class_names)
    style_means, result_means = [], []
    for i in range(count):
        look = 1_000_003 * (seed + 1) + i
        layout = render_scene(scene_seed(seed, i, "val"), size, style_seed=look)
        style = render_scene(scene_seed(seed, i, "test"), size, style_seed=look)
        result_means.append(region_means(layout.image.astype(np.float64) / 255.0, layout.label, num_classes, min_pixels))
        style_means.append(region_means(style.image.astype(np.float64) / 255.0, style.label, num_classes, min_pixels))
    return {"pairs": count, "use_style": True,
            "classes": correlate(np.stack(style_means), np.stack(result_means), class_names)}


def format_table(with_style: dict, without_style: dict | None = None, real: dict | None = None) -> str:
    """A plain-text table of :func:`style_fidelity` results (optionally beside the control and
    :func:`real_style_fidelity`'s real photos)."""

    def cell(value: float | None) -> str:
        return "   -  " if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:6.3f}"

    header = f"{'class':<10} {'pairs':>5}  {'r':>6}  {'r(R)':>6} {'r(G)':>6} {'r(B)':>6}"
    if without_style is not None:
        header += f"  {'r no style':>10}"
    if real is not None:
        header += f"  {'r real':>7}"
    lines = [header]
    for name, entry in with_style["classes"].items():
        line = f"{name:<10} {entry['pairs']:>5}  {cell(entry['r'])}  " + " ".join(cell(v) for v in entry["r_rgb"])
        if without_style is not None:
            line += f"  {cell(without_style['classes'][name]['r']):>10}"
        if real is not None:
            line += f"  {cell(real['classes'][name]['r']):>7}"
        lines.append(line)
    return "\n".join(lines)
