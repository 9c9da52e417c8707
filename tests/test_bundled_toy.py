"""The bundled toy model keeps the quality its model card states: mIoU and pixel accuracy (the toy
protocol), style fidelity and sample diversity on a small fixed set of scenes stay at or above the
floors in the card's "Regression floor" table (written by scripts/bundle_toy.py from the same
measurements on the bundled weights)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
import torch

from spadekit.evaluation.evaluate import evaluate
from spadekit.evaluation.style_fidelity import style_fidelity, toy_pairs
from spadekit.evaluation.toy_diversity import toy_diversity
from spadekit.evaluation.toy_segmenter import load_toy_segmenter
from spadekit.inference import Pipeline

CARD = Path(str(resources.files("spadekit"))) / "bundled" / "toy" / "MODEL_CARD.md"
# The regression set (scripts/bundle_toy.py measures the card's values on the same one).
SCENES, PAIRS, LAYOUTS, SAMPLES = 16, 20, 4, 3


def card_floors() -> dict[str, float]:
    text = CARD.read_text()
    section = text.split("## Regression floor", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\w+) \| ([0-9.]+) \| ([0-9.]+) \|$", section, flags=re.MULTILINE)
    return {name: float(floor) for name, _, floor in rows}


@pytest.fixture(scope="module")
def floors() -> dict[str, float]:
    values = card_floors()
    assert set(values) == {"miou", "accuracy", "style_r_sky", "style_r_grass", "diversity"}, values
    return values


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    torch.set_num_threads(1)
    return Pipeline.from_pretrained("toy")


def test_card_floors_are_not_trivial(floors):
    # A floor of 0 would pass any model: the card must hold the model to real numbers.
    assert floors["miou"] > 0.5 and floors["accuracy"] > 0.8
    assert floors["style_r_sky"] > 0.5 and floors["diversity"] > 0.1


def test_layout_scores_stay_above_the_floor(floors):
    report = evaluate("toy", preset="toy", metrics="miou,accuracy", max_images=SCENES, progress=False)
    assert report["data"]["images"] == SCENES
    assert report["metrics"]["miou"] >= floors["miou"]
    assert report["metrics"]["accuracy"] >= floors["accuracy"]


def test_style_photos_are_followed(floors, pipe):
    classes = style_fidelity(pipe, toy_pairs(PAIRS, pipe.size[0]), pipe.class_names)["classes"]
    assert classes["sky"]["r"] >= floors["style_r_sky"]
    assert classes["grass"]["r"] >= floors["style_r_grass"]


def test_seeds_give_diverse_samples(floors, pipe):
    result = toy_diversity(pipe, load_toy_segmenter(), LAYOUTS, SAMPLES)
    assert result["model"] >= floors["diversity"]
