"""Proportions → layout → photo: :class:`PalettePipeline` and ``spadekit palette sample`` / ``fit``
(checked input, seeds, mixture palettes, the image stage, what is written and what is not)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.errors import ConfigError
from spadekit.inference import Pipeline
from spadekit.methods import get_method
from spadekit.methods.palette.pipeline import PalettePipeline, contact_sheet
from spadekit.release import load_model
from spadekit.training.setup import build_trainer

TINY = list(get_method("palette").tiny_overrides) + ["palette.phase_steps=[1]"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    run = tmp_path_factory.mktemp("palette") / "run"
    build_trainer(load_config("palette-toy", TINY), run, steps=8, progress=False, tensorboard=False, log=lambda _: None).fit()
    return run / "model"


@pytest.fixture
def pipe(model_dir: Path) -> PalettePipeline:
    return PalettePipeline.from_pretrained(model_dir)


def test_proportions_give_layouts_and_photos(pipe: PalettePipeline):
    result = pipe("sky=0.5,grass=0.3,road=0.2", num_samples=3, seed=7)
    c = len(pipe.class_names)
    assert result.notice is None and pipe.size == (128, 128) and pipe.layout_size == (32, 32)
    expected = torch.zeros(c)
    expected[[0, 5, 6]] = torch.tensor([0.5, 0.3, 0.2])
    assert torch.allclose(result.palettes, expected.expand(3, c))
    assert result.layouts.shape == (3, c, 32, 32) and result.labels.shape == (3, 128, 128)
    assert torch.allclose(result.layouts.sum(1), torch.ones(3, 32, 32), atol=1e-4)
    assert torch.allclose(result.achieved.sum(1), torch.ones(3))
    assert [im.size for im in result.images] == [(128, 128)] * 3
    # The photos are the image stage's pictures of those label maps (sample k seeded by seed + k).
    toy = Pipeline.from_pretrained("toy")
    for k in range(3):
        assert np.array_equal(np.asarray(result.images[k]), np.asarray(toy(result.labels[k], seed=7 + k)[0]))
    # Samples differ (their noise), the same seed repeats.
    assert not torch.equal(result.layouts[0], result.layouts[1])
    again = pipe("sky=0.5,grass=0.3,road=0.2", num_samples=3, seed=7, output="tensor")
    assert torch.equal(again.layouts, result.layouts) and torch.equal(again.labels, result.labels)
    assert again.images.shape == (3, 3, 128, 128)


def test_the_palette_reaches_the_generator(pipe: PalettePipeline):
    a = pipe("sky=1", images=False, seed=1).layouts
    b = pipe("road=1", images=False, seed=1).layouts
    # The proportion-aware activation spreads a class over the image in proportion to its share.
    assert a[:, 0].mean() > 0.9 and b[:, 6].mean() > 0.9


def test_palettes_from_the_mixture(pipe: PalettePipeline):
    result = pipe(num_samples=4, seed=3, images=False)
    assert result.images is None and result.labels.shape == (4, 128, 128)  # the size the image model takes
    assert torch.allclose(result.palettes.sum(1), torch.ones(4)) and (result.palettes >= 0).all()
    assert not torch.equal(result.palettes[0], result.palettes[1])
    assert torch.equal(pipe.sample_palettes(4, seed=3), result.palettes)


def test_bad_proportions_are_clear_errors(pipe: PalettePipeline):
    with pytest.raises(ConfigError, match="unknown class 'rood'; did you mean 'road'"):
        pipe("sky=0.5,rood=0.5")
    with pytest.raises(ConfigError, match="negative"):
        pipe("sky=1.2,road=-0.2")
    with pytest.raises(ConfigError, match="sum to 0.3"):
        pipe("sky=0.3")
    near = pipe("sky=0.55,road=0.5", images=False, seed=0)
    assert near.notice and "rescaled" in near.notice
    assert torch.allclose(near.palettes[0, [0, 6]], torch.tensor([0.55, 0.5]) / 1.05)


def test_another_image_model_and_a_refused_one(model_dir: Path):
    pipe = PalettePipeline(load_model(model_dir), image_model="toy")
    assert pipe.image is not None
    converted = Path(__file__).parent / "assets" / "peers" / "semantic_palette" / "p1_celeba_like_res64_affine_joints2_img"
    from spadekit.methods.palette.official import read_official

    with pytest.raises(ConfigError, match="19 classes but the layouts have 12"):
        PalettePipeline(load_model(model_dir), image_model=read_official(converted, None, []).method.image_stage(
            read_official(converted, None, [])))
    with pytest.raises(ConfigError, match="no palette capability"):
        PalettePipeline(load_model("toy"))


def test_contact_sheet_rows(pipe: PalettePipeline):
    result = pipe("sky=0.6,grass=0.4", num_samples=2, seed=0)
    sheet = contact_sheet(result)
    assert sheet.size[1] == 2 * 128 + 3 * 4 and sheet.size[0] > 2 * 128


def test_cli_sample_writes_layouts_photos_and_a_sheet(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "out"
    code = main(["palette", "sample", "--model", str(model_dir), "--proportions", "sky=0.4,road=0.3,tree=0.1,grass=0.19",
                 "--num-samples", "2", "--seed", "5", "--out", str(out), "--device", "cpu"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "notice: proportions summed to 0.99; rescaled" in printed
    names = sorted(p.name for p in out.iterdir())
    assert names == ["contact_sheet.png", "labels_0.png", "labels_1.png", "layout_0.png", "layout_1.png", "palettes.json",
                     "photo_0.png", "photo_1.png"]
    record = json.loads((out / "palettes.json").read_text())
    assert record["seed"] == 5 and record["samples"][0]["requested"]["sky"] == pytest.approx(0.4 / 0.99)
    ids = np.asarray(Image.open(out / "labels_1.png"))
    achieved = np.bincount(ids.ravel(), minlength=12) / ids.size
    assert np.allclose(list(record["samples"][1]["achieved"].values()), achieved)
    # The same call through the API gives the same layouts and photos.
    api = PalettePipeline.from_pretrained(model_dir)("sky=0.4,road=0.3,tree=0.1,grass=0.19", num_samples=2, seed=5)
    assert np.array_equal(np.asarray(api.label_maps()[1]), ids)
    assert np.array_equal(np.asarray(api.images[0]), np.asarray(Image.open(out / "photo_0.png")))


@pytest.mark.parametrize("proportions, message", [
    ("sky=0.4,rood=0.6", "unknown class 'rood'"),
    ("sky=1.3,road=-0.3", "negative values"),
    ("sky=0.4", "too far from 1"),
    ("sky", "is not NAME=VALUE"),
])
def test_cli_errors_write_nothing(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, proportions: str, message: str):
    out = tmp_path / "out"
    code = main(["palette", "sample", "--model", str(model_dir), "--proportions", proportions, "--out", str(out), "--device", "cpu"])
    assert code == 2 and message in capsys.readouterr().err
    assert not out.exists()


def test_cli_fit_refits_the_mixture(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    out = tmp_path / "refit"
    assert main(["palette", "fit", "--model", str(model_dir), "--out", str(out), "--set", "data.toy_scenes=40",
                 "--max-components", "2"]) == 0
    before, after = load_model(model_dir).extras["mixture"], load_model(out).extras["mixture"]
    assert after.fitted and not torch.equal(before.means, after.means)
    assert torch.equal(load_model(out).generator.blocks[0].fc1.weight, load_model(model_dir).generator.blocks[0].fc1.weight)
    assert main(["palette", "fit", "--model", "toy", "--out", str(tmp_path / "x")]) == 2
    assert "not a palette model" in capsys.readouterr().err
