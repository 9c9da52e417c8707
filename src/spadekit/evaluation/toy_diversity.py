"""Toy diversity against the real spread: how much a model's samples of one layout vary, next to how
much real toy photos of that layout vary.

Real reference: a toy layout photographed in several styles (``render_scene(seed, size,
style_seed=k)``: the same label and instance maps, another look each). Model: the same maps drawn
with as many latent seeds through a :class:`~spadekit.inference.Pipeline` (no style photo, so
z ~ N(0, I)). Both are scored with the toy protocol's feature diversity: the mean pairwise
:meth:`~spadekit.evaluation.toy_segmenter.ToySegmenter.feature_distance` of the K images of a
layout, averaged over layouts (what ``spadekit evaluate --metrics feature-diversity`` reports).
"""

from __future__ import annotations

import torch

from spadekit.evaluation.diversity import Diversity


def toy_diversity(pipeline, segmenter, layouts: int = 20, samples: int = 4, seed: int = 0) -> dict:
    """``{"real", "model", "ratio", "layouts", "samples"}``: feature diversity of real toy photos
    (style seeds ``0 .. samples-1``) and of the model (latent seeds ``1000·i + k``) on layouts
    ``i = 0 .. layouts-1`` (toy ``val`` scene seeds), and model / real."""
    from spadekit.data.toy import render_scene, scene_seed
    from spadekit.evaluation.toy_segmenter import to_unit_range

    width, _ = pipeline.size
    real, model = Diversity(segmenter.feature_distance), Diversity(segmenter.feature_distance)
    for i in range(layouts):
        layout_seed = scene_seed(seed, i, "val")
        scenes = [render_scene(layout_seed, width, style_seed=k) for k in range(samples)]
        photos = torch.stack([torch.from_numpy(s.image).permute(2, 0, 1) for s in scenes])
        real.update(to_unit_range(photos))
        images = pipeline(scenes[0].label, scenes[0].instance, seed=1000 * i, num_samples=samples, output="tensor")
        model.update(images.float().cpu())
    real_value, model_value = real.compute(), model.compute()
    return {"real": real_value, "model": model_value, "ratio": model_value / real_value, "layouts": layouts,
            "samples": samples}
