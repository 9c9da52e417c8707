"""Toy diversity against the real spread, with stand-in pipelines: one that returns the real photos
(ratio 1), one that ignores its seed (ratio 0)."""

from __future__ import annotations

import pytest
import torch

from spadekit.data.toy import render_scene, scene_seed
from spadekit.evaluation.toy_diversity import toy_diversity
from spadekit.evaluation.toy_segmenter import load_toy_segmenter, to_unit_range


class RealPhotos:
    """Answers a layout with its real toy photos in style seeds 0..K-1 (it looks the layout up)."""

    size = (64, 64)

    def __init__(self, layouts: int, collapse: bool = False):
        self.collapse = collapse
        self.seeds = {render_scene(scene_seed(0, i, "val"), 64, style_seed=0).label.tobytes(): scene_seed(0, i, "val")
                      for i in range(layouts)}

    def __call__(self, label, instance, seed=0, num_samples=1, output="tensor"):
        layout_seed = self.seeds[label.tobytes()]
        styles = [0] * num_samples if self.collapse else range(num_samples)
        photos = torch.stack([torch.from_numpy(render_scene(layout_seed, 64, style_seed=k).image).permute(2, 0, 1)
                              for k in styles])
        return to_unit_range(photos)


@pytest.fixture(scope="module")
def segmenter():
    return load_toy_segmenter()


def test_the_real_photos_match_the_real_spread(segmenter):
    result = toy_diversity(RealPhotos(3), segmenter, layouts=3, samples=3)
    assert result["real"] > 0.05  # photos of one layout in other styles do differ
    assert result["model"] == pytest.approx(result["real"], rel=1e-5) and result["ratio"] == pytest.approx(1.0, rel=1e-5)


def test_a_model_that_ignores_its_seed_has_no_diversity(segmenter):
    result = toy_diversity(RealPhotos(3, collapse=True), segmenter, layouts=3, samples=3)
    assert result["model"] == pytest.approx(0.0, abs=1e-6) and result["ratio"] < 1e-5
