"""The paper's proportion metrics through ``spadekit evaluate`` (a generic evaluation hook): MAE and KL
between requested and achieved proportions, Fréchet distances on proportion vectors, and the toy
FID / mIoU of the photos of generated layouts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.data import open_dataset
from spadekit.errors import ConfigError
from spadekit.evaluation.evaluate import evaluate, sample_seed
from spadekit.methods import get_method
from spadekit.methods.palette.evaluation import label_proportions, proportion_errors, proportion_fd
from spadekit.methods.palette.pipeline import PalettePipeline
from spadekit.training.setup import build_trainer

TINY = list(get_method("palette").tiny_overrides) + ["palette.phase_steps=[1]"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("palette-eval")
    made = {}
    for name, extra in (("photos", []), ("layouts", ["palette.image_model=null"])):
        torch.manual_seed(0)
        config = load_config("palette-toy", TINY + extra)
        build_trainer(config, root / name, steps=8, progress=False, tensorboard=False, log=lambda _: None).fit()
        made[name] = root / name / "model"
    return made


def test_errors_by_hand():
    p = np.array([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    q = np.array([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    scores = proportion_errors(p, q)
    assert scores["proportion-mae"] == pytest.approx((1 / 3 + 0) / 2)
    kl_first = 0.5 * math.log(0.5 / (1 + 1e-5)) + 0.5 * math.log(0.5 / 1e-5)
    kl_second = math.log(1 / (1 + 1e-5))
    assert scores["proportion-kl"] == pytest.approx((kl_first + kl_second) / 2)


def test_frechet_distance_on_proportions():
    rng = np.random.default_rng(0)
    a = rng.dirichlet(np.ones(4), size=500)
    assert proportion_fd(a, a) == pytest.approx(0, abs=1e-9)
    shift = np.array([0.1, -0.1, 0.0, 0.0])
    # Same covariance, means apart by `shift`: the distance is |shift|².
    assert proportion_fd(a, a + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    with pytest.raises(ConfigError, match="at least 2"):
        proportion_fd(a[:1], a)


def test_evaluate_measures_proportions_and_photos(runs: dict[str, Path], tmp_path: Path):
    report = evaluate(runs["photos"], out=tmp_path / "r.json", max_images=6, batch_size=4, seed=3, progress=False,
                      overrides=["data.toy_scenes=6"], cache_dir=tmp_path / "cache")
    metrics = report["metrics"]
    for name in ("fid", "miou", "accuracy", "proportion-mae", "proportion-kl", "proportion-fd", "proportion-fd-sampled",
                 "palette-fd"):
        assert metrics[name] is not None and math.isfinite(metrics[name]), name
    assert report["protocol"]["toy_protocol"] and "requested" in report["protocol"]["method"]
    assert report["model"]["method"] == "palette" and report["model"]["image_model"]["preset"] == "toy"
    assert report["data"]["resolution"] == [128, 128]
    assert json.loads((tmp_path / "r.json").read_text())["metrics"] == metrics
    # The same numbers from the pipeline directly: requested = each val layout's proportions,
    # layout noise of image i from sample_seed(seed, i, 0), achieved = the argmax at the photo size.
    config = load_config("palette-toy", ["data.toy_scenes=6", "data.crop_size=128", "data.load_size=128"])
    dataset = open_dataset(None, preset="palette-toy", split="val", train=False, data=config.data, model=config.model)
    labels = torch.stack([dataset[i]["label"] for i in range(6)])
    requested = label_proportions(labels, 12)
    pipe = PalettePipeline.from_pretrained(runs["photos"])
    soft = pipe.layouts(torch.from_numpy(requested).float(), [sample_seed(3, i, 0) for i in range(6)])
    achieved = label_proportions(pipe.label_maps(soft, (128, 128)), 12)
    assert metrics["proportion-mae"] == pytest.approx(np.abs(requested - achieved).mean(), rel=1e-9)


def test_a_layouts_only_model_gets_its_own_metrics(runs: dict[str, Path], tmp_path: Path, capsys):
    report = evaluate(runs["layouts"], max_images=5, progress=False, overrides=["data.toy_scenes=5"])
    assert set(report["metrics"]) == {"proportion-mae", "proportion-kl", "proportion-fd", "proportion-fd-sampled", "palette-fd"}
    with pytest.raises(ConfigError, match="makes no photos"):
        evaluate(runs["layouts"], metrics="fid", max_images=5, progress=False, overrides=["data.toy_scenes=5"])
    assert main(["evaluate", "--model", str(runs["layouts"]), "--out", str(tmp_path / "x.json"), "--max-images", "4",
                 "--metrics", "proportion-mae,proportion-kl", "--set", "data.toy_scenes=4", "--no-progress"]) == 0
    assert "proportion-mae" in capsys.readouterr().out


def test_evaluate_has_no_method_name_branch():
    from spadekit.methods import list_methods

    source = (Path(__file__).parents[1] / "src" / "spadekit" / "evaluation" / "evaluate.py").read_text()
    for name in list_methods():
        assert f'"{name}"' not in source and f"'{name}'" not in source, f"evaluate.py names method {name!r}"
    assert "proportion-" not in source, "the palette metrics belong to the method's hook"
