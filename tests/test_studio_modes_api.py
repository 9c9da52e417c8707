"""The studio's boxes and palette modes through the HTTP API (a real uvicorn server on a thread).

Models (tests/studio_models.py): a tiny ``bachgan-toy`` model with lively random weights and a bank of
8 toy scenes; a ``palette-toy`` layout GAN trained a few steps, drawing photos with the bundled toy model.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from spadekit.errors import SpadekitError
from spadekit.inference import Pipeline
from spadekit.methods.bachgan.retrieval import MemoryBank
from spadekit.methods.palette.pipeline import PalettePipeline
from spadekit.release import load_model
from spadekit.studio import background_server, create_app, open_studio_model

from helpers import assert_lively, lively_model
from studio_models import box_model, palette_model

SCENE = {"width": 640, "height": 640, "boxes": [
    {"class": "building", "box": [20, 100, 300, 420]},
    {"class": "tree", "box": [380, 150, 520, 470]},
    {"class": "car", "box": [120, 420, 330, 540]},
]}  # fmt: skip


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url_bytes(url: str) -> bytes:
    head, _, body = url.partition(",")
    assert head == "data:image/png;base64"
    return base64.b64decode(body)


def ids_of(png: bytes, colors: list[list[int]]) -> np.ndarray:
    """A colour-coded PNG → class ids, by the model's own colour list (every pixel must be a class colour)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    match = (rgb[:, :, None, :] == np.asarray(colors)[None, None]).all(-1)
    assert match.any(-1).all(), "a pixel with no class colour"
    return match.argmax(-1)


@pytest.fixture(scope="module")
def box_dir(tmp_path_factory) -> Path:
    return box_model(tmp_path_factory.mktemp("studio-boxes") / "model")


@pytest.fixture(scope="module")
def box_server(box_dir):
    pipeline, palette = open_studio_model(box_dir)
    assert palette is None
    with background_server(create_app(pipeline, model_name="boxes")) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def palette_dir(tmp_path_factory) -> Path:
    return palette_model(tmp_path_factory.mktemp("studio-palette") / "run")


@pytest.fixture(scope="module")
def palette_server(palette_dir):
    pipeline, palette = open_studio_model(palette_dir)
    assert palette is not None and palette.image is pipeline
    app = create_app(pipeline, model_name="palette", palette_pipeline=palette)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def post_boxes(client: httpx.Client, body) -> httpx.Response:
    return client.post("/api/boxes", json=body)


# ------------------------------------------------------------------------------ modes


def test_modes_follow_the_models_capabilities(box_server, palette_server, tmp_path):
    boxes = box_server.get("/api/model").json()
    assert boxes["modes"] == ["boxes", "layout"]
    info = boxes["mode_info"]["boxes"]
    assert info["classes"] == [{"id": 7, "name": "building"}, {"id": 9, "name": "tree"}, {"id": 10, "name": "car"}, {"id": 11, "name": "person"}]
    assert (info["num_retrieved"], info["bank_size"]) == (3, 8)
    palette = palette_server.get("/api/model").json()
    assert palette["modes"] == ["palette", "layout"]
    assert palette["mode_info"]["palette"]["classes"] == palette["classes"][:12] and palette["mode_info"]["palette"]["sample"] is True
    assert {"/api/boxes", "/api/bank/{index}.png"} <= set(box_server.get("/api/openapi.json").json()["paths"])
    assert "/api/palette" in palette_server.get("/api/openapi.json").json()["paths"]
    # A plain layout->image model paints only: the other modes' routes do not exist.
    plain = lively_model("custom", {"label_nc": 4, "ngf": 4, "width": 64, "norm_G": "instance"}).save(tmp_path / "plain")
    with background_server(create_app(Pipeline.from_pretrained(plain))) as url, httpx.Client(base_url=url, timeout=60) as c:
        described = c.get("/api/model").json()
        assert described["modes"] == ["layout"] and described["mode_info"] == {}
        assert c.post("/api/boxes", json={"boxes": []}).status_code == 404
        assert c.post("/api/palette", json={}).status_code == 404


def test_a_box_model_without_a_bank_is_refused_at_start(box_dir, tmp_path):
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(box_dir, bare)
    (bare / "bank.safetensors").unlink()
    config = json.loads((bare / "config.json").read_text())
    config.pop("assets", None)
    (bare / "config.json").write_text(json.dumps(config))
    with pytest.raises(SpadekitError, match="boxes mode needs the model's own memory bank.*carries no memory bank"):
        create_app(Pipeline.from_pretrained(bare))


# ------------------------------------------------------------------------------ boxes


def test_boxes_answer_is_the_pipelines_output(box_server, box_dir):
    reference = Pipeline.from_pretrained(box_dir)
    r = post_boxes(box_server, {**SCENE, "seed": 4})
    assert r.status_code == 200, r.text
    answer = r.json()
    expected = reference.from_boxes(SCENE, seed=4, candidates=8)
    assert data_url_bytes(answer["image"]) == png_bytes(expected.images[0])
    assert answer["seed"] == 4 and answer["size"] == [64, 64] and answer["chosen"] is False
    assert [e["index"] for e in answer["used"]] == [m.index for m in expected.used[0]]
    assert [e["index"] for e in answer["candidates"]] == [m.index for m in expected.candidates]
    assert [e["score"] for e in answer["candidates"]] == pytest.approx([m.score for m in expected.candidates])
    # The boxes as drawn, at the model's size (640 -> 64).
    assert answer["boxes"][0] == {"class": "building", "class_id": 7, "box": [2, 10, 30, 42]}
    # The comparison means something: the images follow the boxes.
    assert_lively(reference.from_boxes(SCENE, seed=4, output="tensor").images, "box model images")
    moved = json.loads(json.dumps(SCENE))
    moved["boxes"][2]["box"] = [320, 420, 530, 540]  # the car, 20 model pixels to the right
    other = post_boxes(box_server, moved).json()
    a = np.asarray(Image.open(io.BytesIO(data_url_bytes(answer["image"])))).astype(float)
    b = np.asarray(Image.open(io.BytesIO(data_url_bytes(other["image"])))).astype(float)
    assert np.abs(a - b).mean() > 5, "moving a box should change the photo"


def test_choosing_other_retrieved_layouts(box_server, box_dir):
    reference = Pipeline.from_pretrained(box_dir)
    best = post_boxes(box_server, {**SCENE, "seed": 0}).json()
    ranked = [e["index"] for e in best["candidates"]]
    choose = [ranked[0], ranked[1], ranked[5]]
    r = post_boxes(box_server, {**SCENE, "seed": 0, "choose": choose})
    assert r.status_code == 200, r.text
    chosen = r.json()
    assert [e["index"] for e in chosen["used"]] == choose and chosen["chosen"] is True
    expected = reference.from_boxes(SCENE, seed=0, choose=choose, candidates=8)
    assert data_url_bytes(chosen["image"]) == png_bytes(expected.images[0])
    assert chosen["image"] != best["image"], "another background layout, another photo"
    # Fewer than k: the best-ranked others complete them, as in the Pipeline.
    short = post_boxes(box_server, {**SCENE, "choose": [ranked[6]], "candidates": 3}).json()
    assert [e["index"] for e in short["used"]] == [ranked[6], ranked[0], ranked[1]] and len(short["candidates"]) == 3


def test_bank_layouts_are_the_banks_entries(box_server, box_dir):
    model = load_model(box_dir)
    bank = MemoryBank.load(model.assets["bank.safetensors"])
    answer = post_boxes(box_server, SCENE).json()
    for entry in answer["used"]:
        r = box_server.get(entry["url"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        np.testing.assert_array_equal(ids_of(r.content, model.colors), bank.labels[entry["index"]].numpy())
    missing = box_server.get("/api/bank/8.png")
    assert missing.status_code == 404 and "no bank entry 8 (the bank has entries 0..7)" in missing.json()["error"]


BAD_BOXES = [
    ({"boxes": [{"class": "sky", "box": [0, 0, 5, 5]}]}, 422, "boxes", "class 'sky' is not drawn from boxes by this model"),
    ({"boxes": [{"class": "boat", "box": [0, 0, 5, 5]}]}, 422, "boxes", "unknown class 'boat'"),
    ({"boxes": [{"class": 42, "box": [0, 0, 5, 5]}]}, 422, "boxes", "unknown class id 42"),
    ({"boxes": [{"class": "car", "box": [0, 0, 80, 5]}]}, 422, "boxes", "box 0: [0, 0, 80, 5] lies outside the 64x64 image"),
    ({"boxes": [{"class": "car", "box": [0, 0, 5, 5]}, {"class": "car", "box": [5, 5, 5, 9]}]}, 422, "boxes", "box 1: empty box"),
    ({"boxes": [{"class": "car", "box": [0, 0, 5]}]}, 422, "boxes", "'box' must be four numbers"),
    ({"boxes": [{"class": "car"}]}, 422, "boxes", "expected an object with 'class' and 'box'"),
    ({"boxes": "car"}, 422, "boxes", "'boxes' must be a list"),
    ({"boxes": [], "width": -3}, 422, "boxes", "'width' must be a positive integer"),
    ({"boxes": [{"class": "car", "box": [0, 0, 600, 5]}], "width": 500}, 422, "boxes", "lies outside the 500x64 image"),
    ({}, 400, "boxes", "boxes: missing"),
    ({"boxes": [{"class": "car", "box": [0, 0, 1, 1]}] * 257}, 400, "boxes", "257 boxes; at most 256"),
    ({"boxes": [], "choose": [99]}, 422, "choose", "choose: bank entry 99 does not exist (the bank has entries 0..7)"),
    ({"boxes": [], "choose": [1, 1]}, 422, "choose", "give at most 3 different bank entries"),
    ({"boxes": [], "choose": [1, 2, 3, 4]}, 400, "choose", "4 entries; at most 3"),
    ({"boxes": [], "choose": "1,2"}, 400, "choose", "must be a list of bank entry numbers"),
    ({"boxes": [], "choose": [True]}, 400, "choose", "must be a list of bank entry numbers"),
    ({"boxes": [], "seed": -1}, 400, "seed", "seeds lie in 0..2**63-1"),
    ({"boxes": [], "seed": "abc"}, 400, "seed", "'abc' is not an integer"),
    ({"boxes": [], "seed": 1.5}, 400, "seed", "must be an integer"),
    ({"boxes": [], "candidates": 0}, 400, "candidates", "must be an integer in 1..64"),
    ({"boxes": [], "labels": 3}, 400, "labels", "labels: unknown field"),
]


@pytest.mark.parametrize("body, status, field, message", BAD_BOXES, ids=[f"{c[2]}-{i}" for i, c in enumerate(BAD_BOXES)])
def test_bad_boxes_are_precise_errors(box_server, body, status, field, message):
    r = post_boxes(box_server, body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and message in r.json()["error"]


def test_box_errors_are_the_box_parsers(box_server, box_dir):
    pipe = Pipeline.from_pretrained(box_dir)
    for body in ({"boxes": [{"class": "boat", "box": [0, 0, 5, 5]}]}, {"boxes": [{"class": "car", "box": [0, 0, 80, 5]}]}):
        with pytest.raises(SpadekitError) as raised:
            pipe.from_boxes(body)
        assert post_boxes(box_server, body).json()["error"] == str(raised.value)


def test_malformed_json_requests(box_server):
    assert box_server.post("/api/boxes", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    wrong = box_server.post("/api/boxes", content=b"{}", headers={"content-type": "text/plain"})
    assert wrong.status_code == 415 and "application/json" in wrong.json()["error"]
    listed = box_server.post("/api/boxes", json=[1, 2])
    assert listed.status_code == 400 and "JSON object" in listed.json()["error"]


# ------------------------------------------------------------------------------ palette


def test_palette_answer_is_the_palette_pipelines_output(palette_server, palette_dir):
    reference = PalettePipeline.from_pretrained(palette_dir)
    colors = reference.model.colors
    proportions = {"sky": 0.5, "road": 0.3, "grass": 0.2}
    r = palette_server.post("/api/palette", json={"proportions": proportions, "seed": 7})
    assert r.status_code == 200, r.text
    answer = r.json()
    expected = reference(proportions, seed=7)
    labels = data_url_bytes(answer["labels"])
    np.testing.assert_array_equal(ids_of(labels, colors), expected.labels[0].numpy())
    assert data_url_bytes(answer["image"]) == png_bytes(expected.images[0])
    assert answer["proportions"] == pytest.approx(expected.palettes[0].tolist())
    assert answer["achieved"] == pytest.approx(expected.achieved[0].tolist())
    assert (answer["seed"], answer["size"], answer["sampled"], answer["notice"]) == (7, [128, 128], False, None)
    # The page paints on that layout and synthesizes it: the same photo for the same seed.
    again = palette_server.post("/api/synthesize", files={"labels": ("l.png", labels, "image/png")}, data={"seed": "7"})
    assert again.status_code == 200 and again.content == data_url_bytes(answer["image"])
    # The same palette as a full vector or as text gives the same layout; another palette another one.
    vector = [0.0] * 12
    vector[0], vector[6], vector[5] = 0.5, 0.3, 0.2
    for form in (vector, "sky=50%,road=30%,grass=20%"):
        same = palette_server.post("/api/palette", json={"proportions": form, "seed": 7, "photo": False}).json()
        assert same["labels"] == answer["labels"] and same["image"] is None
    road = palette_server.post("/api/palette", json={"proportions": {"road": 1}, "seed": 7}).json()
    sky = palette_server.post("/api/palette", json={"proportions": {"sky": 1}, "seed": 7}).json()
    assert (ids_of(data_url_bytes(road["labels"]), colors) == 6).mean() > 0.9
    assert (ids_of(data_url_bytes(sky["labels"]), colors) == 0).mean() > 0.9
    assert_lively(reference(proportions, seed=7, output="tensor").images, "palette photos")


def test_sampled_palettes_and_notices(palette_server, palette_dir):
    reference = PalettePipeline.from_pretrained(palette_dir)
    answer = palette_server.post("/api/palette", json={"seed": 3}).json()
    assert answer["sampled"] is True
    assert answer["proportions"] == pytest.approx(reference.sample_palettes(1, seed=3)[0].tolist())
    np.testing.assert_array_equal(ids_of(data_url_bytes(answer["labels"]), reference.model.colors), reference(seed=3).labels[0].numpy())
    assert palette_server.post("/api/palette", json={"seed": 4}).json()["proportions"] != answer["proportions"]
    near = palette_server.post("/api/palette", json={"proportions": {"sky": 0.55, "road": 0.5}, "seed": 1, "photo": False}).json()
    assert "rescaled" in near["notice"] and near["proportions"][0] == pytest.approx(0.55 / 1.05)


BAD_PALETTES = [
    ({"proportions": {"sky": 0.5, "rood": 0.5}}, 422, "proportions", "unknown class 'rood'; did you mean 'road'?"),
    ({"proportions": {"sky": 1.2, "road": -0.2}}, 422, "proportions", "negative values (road=-0.2)"),
    ({"proportions": {"sky": 0.3}}, 422, "proportions", "they sum to 0.3, too far from 1"),
    ({"proportions": [0.5, 0.5]}, 422, "proportions", "2 values for 12 classes"),
    ({"proportions": "sky=lots"}, 422, "proportions", "'lots' (for 'sky') is not a number"),
    ({"proportions": {"sky": "0.5"}}, 400, "proportions", 'expected {"class name": share'),
    ({"proportions": [0.5, None]}, 400, "proportions", "a list of shares"),
    ({"proportions": 1}, 400, "proportions", "got 1"),
    ({"seed": 2**63}, 400, "seed", "seeds lie in 0..2**63-1"),
    ({"photo": "yes"}, 400, "photo", "must be true or false"),
    ({"palette": {}}, 400, "palette", "palette: unknown field"),
]


@pytest.mark.parametrize("body, status, field, message", BAD_PALETTES, ids=[f"{c[2]}-{i}" for i, c in enumerate(BAD_PALETTES)])
def test_bad_palettes_are_precise_errors(palette_server, body, status, field, message):
    r = palette_server.post("/api/palette", json=body)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and message in r.json()["error"]


def test_palette_errors_are_the_palette_checkers(palette_server, palette_dir):
    pipe = PalettePipeline.from_pretrained(palette_dir)
    for proportions in ({"sky": 0.5, "rood": 0.5}, "sky=0.3"):
        with pytest.raises(SpadekitError) as raised:
            pipe.check(proportions)
        assert palette_server.post("/api/palette", json={"proportions": proportions}).json()["error"] == str(raised.value)


def test_sampling_needs_a_mixture(palette_dir):
    pipeline, palette = open_studio_model(palette_dir)
    palette.model.extras.pop("mixture")
    with background_server(create_app(pipeline, palette_pipeline=palette)) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert c.get("/api/model").json()["mode_info"]["palette"]["sample"] is False
        r = c.post("/api/palette", json={"seed": 1})
        assert r.status_code == 422 and r.json()["field"] == "proportions" and "no fitted palette mixture" in r.json()["error"]
        assert c.post("/api/palette", json={"proportions": {"sky": 1}}).status_code == 200
    torch.manual_seed(0)  # leave no trace in the global generator's use by later tests
