"""The style-fidelity measurement on constructed cases: stand-in pipelines whose outputs follow the
style photo exactly, inversely or not at all."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spadekit.data.toy import TOY_CLASSES, ToyScene, render_scene, scene_seed
from spadekit.evaluation.style_fidelity import (
    correlate,
    format_table,
    pearson,
    real_style_fidelity,
    region_means,
    style_fidelity,
    toy_pairs,
)


def test_region_means_and_the_pixel_floor():
    label = np.zeros((8, 8), np.uint8)
    label[:, 4:] = 2
    label[0, 0] = 1
    image = np.zeros((8, 8, 3))
    image[:, 4:] = [0.2, 0.4, 0.6]
    image[0, 0] = 1.0
    means = region_means(image, label, 4, min_pixels=2)
    np.testing.assert_allclose(means[0], [0, 0, 0])  # the bright pixel is class 1, not 0
    np.testing.assert_allclose(means[2], [0.2, 0.4, 0.6])
    assert np.isnan(means[1]).all() and np.isnan(means[3]).all()  # one pixel, none


def test_pearson_known_values():
    assert pearson(np.array([1, 2, 3, 4]), np.array([2, 4, 6, 8])) == pytest.approx(1.0)
    assert pearson(np.array([1, 2, 3, 4]), np.array([4, 3, 2, 1])) == pytest.approx(-1.0)
    assert pearson(np.array([1, 2, 3]), np.array([1, 0, 1])) == pytest.approx(0.0, abs=1e-12)
    assert pearson(np.array([1, 2]), np.array([1, 2])) is None
    assert pearson(np.array([1, 1, 1]), np.array([1, 2, 3])) is None


class StylePainter:
    """Stands in for a Pipeline: paints each class of the layout with the style photo's mean colour
    of that class (``sign`` -1: its negative), or a constant grey without a style."""

    def __init__(self, sign: float = 1.0):
        self.sign = sign

    def __call__(self, label, instance, style=None, seed=0, output="tensor"):
        assert output == "tensor" and instance is not None
        h, w = label.shape
        out = torch.zeros(1, 3, h, w)
        if style is None:
            return out
        # The stand-in needs the style scene's labels; the photo itself carries them here (see pairs()).
        style_label = self.labels[id(style)]
        for c in np.unique(label):
            region = style_label == c
            if region.any():
                colour = style[region].astype(np.float64).mean(axis=0) / 127.5 - 1.0
                out[0, :, torch.from_numpy(label == c)] = torch.tensor(self.sign * colour, dtype=torch.float32)[:, None]
        return out


def pairs_with_labels(painter: StylePainter, count: int = 12):
    pairs = toy_pairs(count, 64)
    painter.labels = {id(style.image): style.label for _, style in pairs}
    return pairs


def test_a_model_that_copies_the_style_colours_scores_one_and_the_control_zero():
    painter = StylePainter()
    pairs = pairs_with_labels(painter)
    result = style_fidelity(painter, pairs, TOY_CLASSES, min_pixels=16)
    sky, grass = result["classes"]["sky"], result["classes"]["grass"]
    assert sky["pairs"] >= 10 and sky["r"] == pytest.approx(1.0, abs=1e-6)
    assert grass["pairs"] >= 3 and grass["r"] == pytest.approx(1.0, abs=1e-6)
    control = style_fidelity(painter, pairs, TOY_CLASSES, use_style=False, min_pixels=16)
    assert control["classes"]["sky"]["r"] is None  # a constant output has no correlation
    assert "sky" in format_table(result, control)


def test_inverted_colours_score_minus_one_and_mismatched_pairs_do_not_score():
    painter = StylePainter(sign=-1.0)
    pairs = pairs_with_labels(painter)
    assert style_fidelity(painter, pairs, TOY_CLASSES, min_pixels=16)["classes"]["sky"]["r"] == pytest.approx(-1.0, abs=1e-6)
    # Each layout painted with another pair's style: the correlation must collapse (the metric
    # pairs every result with its own style photo).
    shuffled = [(layout, pairs[(i + 1) % len(pairs)][1]) for i, (layout, _) in enumerate(pairs)]
    honest = StylePainter()
    honest.labels = painter.labels

    class Mismatched:
        def __call__(self, label, instance, style=None, seed=0, output="tensor"):
            return honest(label, instance, style=shuffled[seed][1].image, seed=seed, output=output)

    r = style_fidelity(Mismatched(), pairs, TOY_CLASSES, min_pixels=16)["classes"]["sky"]["r"]
    assert abs(r) < 0.6


def test_results_of_another_size_are_compared_at_their_own_size():
    painter = StylePainter()
    pairs = pairs_with_labels(painter, 6)

    class Half:
        def __call__(self, label, instance, style=None, seed=0, output="tensor"):
            full = painter(label, instance, style=style, seed=seed, output=output)
            return full[..., ::2, ::2]

    result = style_fidelity(Half(), pairs, TOY_CLASSES, min_pixels=4)
    assert result["classes"]["sky"]["r"] > 0.95
    assert isinstance(pairs[0][0], ToyScene)


def test_real_photos_score_the_ceiling_and_need_the_shared_style_seed():
    report = real_style_fidelity(30, TOY_CLASSES, size=64, min_pixels=16)
    real = report["classes"]
    # One style seed draws both scenes: sky and grass colours follow the style photo closely.
    assert real["sky"]["r"] > 0.8 and real["grass"]["r"] > 0.9
    # ...but two different layouts: things placed by the layout (trees) do not share a colour exactly,
    # as they would if one scene were compared with itself.
    assert real["tree"]["r"] < 0.9
    # The same measure on independent looks (what a model without style control would give) is near 0,
    # so the ceiling is not produced by the layouts or by the measure itself.
    means = [], []
    for i in range(30):
        for k, split in enumerate(("val", "test")):
            scene = render_scene(scene_seed(0, i, split), 64, style_seed=10 * i + k)
            means[k].append(region_means(scene.image / 255.0, scene.label, len(TOY_CLASSES), 16))
    independent = correlate(np.stack(means[1]), np.stack(means[0]), TOY_CLASSES)
    assert abs(independent["grass"]["r"]) < 0.5
    table = format_table(report, None, report).splitlines()
    assert table[0].split()[-2:] == ["r", "real"]
