"""``spadekit demo``: the gallery from toy label maps (with a tiny random model passed by --model)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from spadekit.cli import main
from spadekit.data.toy import TOY_CLASSES, TOY_COLORS, render_scene, scene_seed
from spadekit.inference import Pipeline
from spadekit.release import bundled_models

from helpers import lively_model


def tiny_toy_model(tmp_path, **options):
    model = lively_model("toy", {"ngf": 8, "width": 64, "spade_hidden": 16, **options})
    model.config.data.class_names = list(TOY_CLASSES)
    model.config.data.colors = [list(c) for c in TOY_COLORS]
    return model.save(tmp_path / "model")


def test_demo_writes_a_gallery_with_style_and_sample_rows(tmp_path):
    model = tiny_toy_model(tmp_path)
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(model), "--out", str(out), "--scenes", "2", "--samples", "3"]) == 0
    html = (out / "index.html").read_text()
    sources = re.findall(r'src="([^"]+)"', html)
    assert sources and all((out / s).is_file() for s in sources)
    assert "Style-guided" in html and "Multiple samples" in html
    for name in ["scene0_label.png", "scene1_result.png", "style2_result.png", "sample2.png"]:
        assert name in sources
    # The label pictures are the toy layouts at fixed seeds, in the toy colours.
    layout = render_scene(scene_seed(0, 1, "test"), 64)
    assert np.array_equal(np.asarray(Image.open(out / "scene1_label.png")), np.asarray(TOY_COLORS, np.uint8)[layout.label])
    samples = {(out / f"sample{k}.png").read_bytes() for k in range(3)}
    assert len(samples) == 3
    styled = {(out / f"style{k}_result.png").read_bytes() for k in range(3)}
    assert len(styled) == 3
    # The refined row: the same styles, each latent refined first, so other images.
    assert "Style-guided, refined" in html and "style2_refined.png" in sources
    for k in range(3):
        refined = np.asarray(Image.open(out / f"style{k}_refined.png"), np.int16)
        assert np.abs(refined - np.asarray(Image.open(out / f"style{k}_result.png"), np.int16)).mean() > 0.1
    # Each style is refined against its own toy label map (style k is toy test scene 2 + k here).
    pipe = Pipeline.from_pretrained(model)
    style_scene, first = render_scene(scene_seed(0, 2, "test"), 64), render_scene(scene_seed(0, 0, "test"), 64)
    code = pipe.refine_style(style_scene.image, style_scene.label, style_scene.instance, 100)
    expected = pipe(first.label, first.instance, style=code, seed=0)[0]
    assert np.array_equal(np.asarray(Image.open(out / "style0_refined.png")), np.asarray(expected))


def test_demo_leaves_the_refined_row_out_with_zero_steps(tmp_path):
    model = tiny_toy_model(tmp_path)
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(model), "--out", str(out), "--scenes", "1", "--samples", "2", "--refine-steps", "0"]) == 0
    html = (out / "index.html").read_text()
    assert "Style-guided" in html and "refined" not in html and not (out / "style0_refined.png").exists()


def test_demo_without_vae_has_no_style_or_sample_rows(tmp_path):
    model = tiny_toy_model(tmp_path, use_vae=False)
    out = tmp_path / "demo"
    assert main(["demo", "--model", str(model), "--out", str(out), "--scenes", "1"]) == 0
    html = (out / "index.html").read_text()
    assert "Style-guided" not in html and "Multiple samples" not in html
    assert (out / "scene0_result.png").is_file()


def test_demo_runs_on_the_bundled_toy_model(tmp_path):
    # The README's first command: works right after install, no download, no --model.
    assert "toy" in bundled_models()
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--scenes", "2", "--samples", "2"]) == 0
    html = (out / "index.html").read_text()
    assert "Style-guided" in html and "Multiple samples" in html
    results = [np.asarray(Image.open(out / f"scene{i}_result.png")) for i in range(2)]
    assert results[0].shape == (128, 128, 3) and results[0].std() > 10  # a picture, not a flat fill
    assert not np.array_equal(results[0], results[1])


def test_demo_without_the_bundled_model_says_what_to_do(tmp_path, capsys, monkeypatch):
    import spadekit.release

    monkeypatch.setattr(spadekit.release, "bundled_models", lambda: [])
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 2
    assert "spadekit train --preset toy" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()
