"""The bundled ASAPNet toy model (the studio's fast choice) keeps the layout quality its model card
states: mIoU and pixel accuracy of the toy protocol on a small fixed set of validation scenes stay
at or above the card's "Regression floor" (written by scripts/bundle_asapnet_toy.py from the same
measurement on the bundled weights)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import pytest
import torch

from spadekit.evaluation.evaluate import evaluate
from spadekit.inference import Pipeline

CARD = Path(str(resources.files("spadekit"))) / "bundled" / "toy-asapnet" / "MODEL_CARD.md"
SCENES = 16  # scripts/bundle_asapnet_toy.py measures the floor on the same scenes


@pytest.fixture(scope="module")
def floors() -> dict[str, float]:
    section = CARD.read_text().split("## Regression floor", 1)[1]
    rows = re.findall(r"^\| (\w+) \| ([0-9.]+) \| ([0-9.]+) \|$", section, flags=re.MULTILINE)
    values = {name: float(floor) for name, _, floor in rows}
    assert set(values) == {"miou", "accuracy"}, values
    return values


def test_floors_are_not_trivial(floors):
    # A floor near 0 would pass a model that ignores the layout.
    assert floors["miou"] > 0.5 and floors["accuracy"] > 0.8


def test_layout_scores_stay_above_the_floor(floors):
    torch.set_num_threads(1)
    report = evaluate("toy-asapnet", preset="asapnet-toy", metrics="miou,accuracy", max_images=SCENES, progress=False)
    assert report["data"]["images"] == SCENES
    assert report["metrics"]["miou"] >= floors["miou"]
    assert report["metrics"]["accuracy"] >= floors["accuracy"]


def test_it_loads_by_name_and_paints_at_its_size():
    pipe = Pipeline.from_pretrained("toy-asapnet")
    assert pipe.model.config.method == "asapnet" and tuple(pipe.size) == (128, 128)
    labels = torch.zeros(128, 128, dtype=torch.long)
    labels[64:] = 5  # grass under sky
    image = pipe(labels, seed=0, output="tensor")[0]
    sky, grass = image[:, :56].mean((1, 2)), image[:, 72:].mean((1, 2))
    assert image.std() > 0.1 and (image.abs() > 0.98).float().mean() < 0.2, "flat or saturated output"
    assert sky[2] > grass[2] and grass[1] > grass[2], f"sky {sky.tolist()} / grass {grass.tolist()} colours are not theirs"
