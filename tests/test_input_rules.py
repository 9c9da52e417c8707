"""One set of input rules for ``spadekit synthesize`` and the studio's HTTP API: every rule is
exercised through both, and both must refuse with the same reason (the CLI: exit 2, one ``error:``
message, no traceback; the API: a 4xx JSON body). Also: sizes are refused before any work, and a
folder with several bad files reports them all at once."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.data.inputs import MAX_SEED
from spadekit.errors import ConfigError
from spadekit.inference import Pipeline
from spadekit.models import build_networks
from spadekit.release import SpadeModel
from spadekit.studio import background_server, create_app

COLORS = [[110, 170, 240], [60, 170, 60], [30, 80, 200], [20, 100, 30]]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    config = load_config("custom", ["model.label_nc=4", "model.ngf=4", "model.ndf=4", "model.width=64",
                                    "model.use_vae=true", "model.norm_G=instance"])
    config.data.class_names = ["sky", "grass", "water", "tree"]
    config.data.colors = COLORS
    torch.manual_seed(0)
    g, d, e = build_networks(config.model)
    return SpadeModel(config, g, d, e).save(tmp_path_factory.mktemp("rules") / "model")


@pytest.fixture(scope="module")
def api(model_dir):
    app = create_app(Pipeline.from_pretrained(model_dir), model_name="tiny")
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def picture(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def layout(height: int = 64, width: int = 64) -> np.ndarray:
    """uint8 ids drawn here: sky over grass, a water pond."""
    ids = np.zeros((height, width), np.uint8)
    ids[height // 2 :] = 1
    ids[height * 3 // 4 :, : width // 2] = 2
    return ids


def coloured(ids: np.ndarray) -> np.ndarray:
    return np.array(COLORS, np.uint8)[ids]


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """Exit status and stderr of ``spadekit ARGS`` (argparse's usage errors included)."""
    try:
        code = main(args)
    except SystemExit as exc:  # argparse refuses malformed options itself, with status 2
        code = exc.code
    return code, capsys.readouterr().err


# name, label file name, label bytes, seed, API status, words both messages must hold
RULES = [
    ("jpeg-label-map", "scene.jpg", picture(coloured(layout()), "JPEG"), None, 415, ["JPEG", "lossy"]),
    ("webp-label-map", "scene.webp", picture(coloured(layout()), "WEBP"), None, 415, ["WEBP", "lossy"]),
    ("not-an-image", "scene.png", b"this is text, not a picture", None, 415, ["not a readable image"]),
    ("unknown-id", "scene.png", picture(np.full((64, 64), 9, np.uint8)), None, 422, ["label id(s) 9"]),
    ("unknown-colour", "scene.png", picture(np.full((64, 64, 3), 7, np.uint8)), None, 422, ["not in the palette"]),
    ("too-large", "scene.png", picture(np.zeros((10, 5000), np.uint8)), None, 413, ["5000x10", "4096"]),
    ("one-pixel", "scene.png", picture(np.zeros((1, 1), np.uint8)), None, 422, ["1x1", "smaller than"]),
    ("too-thin", "scene.png", picture(np.zeros((10, 1000), np.uint8)), None, 422, ["1000x10", "aspect ratio"]),
    ("negative-seed", "scene.png", picture(layout()), "-1", 400, ["0..2**63-1"]),
    ("huge-seed", "scene.png", picture(layout()), "99999999999999999999", 400, ["0..2**63-1"]),
    ("seed-text", "scene.png", picture(layout()), "abc", 400, ["not an integer"]),
]


@pytest.mark.parametrize("name, filename, data, seed, status, words", RULES, ids=[r[0] for r in RULES])
def test_each_rule_is_enforced_by_the_cli_and_the_api_alike(
    model_dir, api, tmp_path, capsys, name, filename, data, seed, status, words
):
    label = tmp_path / filename
    label.write_bytes(data)
    out = tmp_path / "out"
    args = ["synthesize", "--model", str(model_dir), "--labels", str(label), "--out", str(out), "--device", "cpu"]
    code, err = run_cli(args + (["--seed", seed] if seed is not None else []), capsys)
    assert code == 2, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    assert not out.exists()

    form = {"seed": seed} if seed is not None else {}
    r = api.post("/api/synthesize", files={"labels": (filename, data, "application/octet-stream")}, data=form)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["field"] == ("seed" if seed is not None else "labels")
    for word in words:
        assert word in body["error"], body


def test_good_inputs_pass_both_and_the_cli_names_its_device(model_dir, api, tmp_path, capsys):
    label = tmp_path / "scene.png"
    label.write_bytes(picture(coloured(layout(48, 96))))  # 2:1, colour-coded: within every limit
    code = main(["synthesize", "--model", str(model_dir), "--labels", str(label), "--out", str(tmp_path / "o"),
                 "--seed", str(MAX_SEED)])
    assert code == 0
    assert "device: cpu" in capsys.readouterr().out  # --device defaults to auto, which resolves to cpu here
    r = api.post("/api/synthesize", files={"labels": ("s.png", label.read_bytes(), "image/png")}, data={"seed": str(MAX_SEED)})
    assert r.status_code == 200, r.text
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content))), np.asarray(Image.open(tmp_path / "o" / "scene.png")))


def test_the_pipeline_refuses_seeds_outside_the_range(model_dir):
    pipe = Pipeline.from_pretrained(model_dir)
    for bad in (-1, MAX_SEED + 1, 10**20):
        with pytest.raises(ConfigError, match="2\\*\\*63-1"):
            pipe(layout(), seed=bad)
    with pytest.raises(ConfigError, match="seed \\+ k"):  # sample k uses seed + k, which must stay in range
        pipe(layout(), seed=MAX_SEED, num_samples=2)


@pytest.mark.parametrize("size, words", [
    ("100000x100000", ["100000x100000", "larger than the limit"]),
    ("1x1", ["smaller than"]),
    ("4000x100", ["aspect ratio"]),
])
def test_output_size_is_refused_before_any_work(tmp_path, capsys, size, words):
    # The model does not exist: the size is judged first, so the message is about the size.
    code, err = run_cli(["synthesize", "--model", str(tmp_path / "no-model"), "--labels", str(tmp_path / "none.png"),
                         "--out", str(tmp_path / "o"), "--size", size], capsys)
    assert code == 2
    for word in words:
        assert word in err, err


@pytest.mark.parametrize("command", [
    ["bench", "--preset", "toy", "--size", "100000x100000"],
    ["export", "MODEL", "--format", "onnx", "--out", "x.onnx", "--size", "100000x100000"],
])
def test_other_commands_apply_the_same_size_limits(tmp_path, capsys, command):
    code, err = run_cli([str(tmp_path / "nope") if c == "MODEL" else c for c in command], capsys)
    assert code == 2 and "larger than the limit" in err, err


def test_toy_sizes_and_seeds_are_checked_by_the_parser(tmp_path, capsys):
    for args in (["toy", "make", str(tmp_path / "t"), "--size", "100000"], ["toy", "make", str(tmp_path / "t"), "--seed", "-1"],
                 ["demo", "--out", str(tmp_path / "d"), "--seed", "-5"], ["evaluate", "--model", "toy", "--out", "r.json",
                                                                         "--seed", "99999999999999999999"]):
        code, err = run_cli(args, capsys)
        assert code == 2 and "Traceback" not in err, (args, err)
        assert ("4096" in err) or ("2**63-1" in err), err
    assert not (tmp_path / "t").exists() and not (tmp_path / "d").exists()


def test_a_folder_with_several_bad_files_reports_them_all_at_once(model_dir, tmp_path, capsys):
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "a_good.png").write_bytes(picture(layout()))
    (folder / "b_unknown.png").write_bytes(picture(np.full((64, 64), 9, np.uint8)))
    (folder / "c_lossy.jpg").write_bytes(picture(coloured(layout()), "JPEG"))
    (folder / "d_tiny.png").write_bytes(picture(np.zeros((2, 2), np.uint8)))
    out = tmp_path / "out"
    code, err = run_cli(["synthesize", "--model", str(model_dir), "--labels", str(folder), "--out", str(out)], capsys)
    assert code == 2
    assert "3 input files are unusable" in err
    for name in ("b_unknown.png", "c_lossy.jpg", "d_tiny.png"):
        assert name in err, err
    assert "a_good.png" not in err
    assert not out.exists()


# refine steps, style labels' size, API status, words both messages hold
REFINE_RULES = [
    ("refine-without-style-labels", "5", None, 400, ["refining a style needs the style photo's label map"]),
    ("style-labels-without-refining", None, (64, 64), 400, ["only used to refine"]),
    ("refine-steps-out-of-range", "10001", (64, 64), 400, ["0..10000"]),
    ("refine-steps-text", "many", (64, 64), 400, ["not an integer"]),
    ("style-labels-of-another-size", "5", (32, 32), 422, ["32x32 label map", "64x64 style photo", "same size"]),
]


@pytest.mark.parametrize("name, steps, labels_size, status, words", REFINE_RULES, ids=[r[0] for r in REFINE_RULES])
def test_refinement_rules_are_enforced_by_the_cli_and_the_api_alike(
    model_dir, api, tmp_path, capsys, name, steps, labels_size, status, words
):
    label, style, style_labels = tmp_path / "scene.png", tmp_path / "style.png", tmp_path / "style_labels.png"
    label.write_bytes(picture(layout()))
    style.write_bytes(picture(np.full((64, 64, 3), 90, np.uint8)))
    files = {"labels": ("scene.png", label.read_bytes(), "image/png"), "style": ("style.png", style.read_bytes(), "image/png")}
    out = tmp_path / "out"
    args = ["synthesize", "--model", str(model_dir), "--labels", str(label), "--style", str(style), "--out", str(out)]
    if steps is not None:
        args += ["--refine-steps", steps]
    if labels_size is not None:
        style_labels.write_bytes(picture(layout(*labels_size)))
        args += ["--style-labels", str(style_labels)]
        files["style_labels"] = ("style_labels.png", style_labels.read_bytes(), "image/png")
    code, err = run_cli(args, capsys)
    assert code == 2, err
    assert "Traceback" not in err and not out.exists()
    r = api.post("/api/synthesize", files=files, data={"refine_steps": steps} if steps is not None else {})
    assert r.status_code == status, r.text
    for word in words:
        assert word in err, err
        assert word in r.json()["error"], r.json()


def test_the_api_refines_a_style_when_asked(model_dir, api):
    photo = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    style_ids = np.flipud(layout()).copy()  # the style photo's own map, not the one being drawn
    files = {"labels": ("scene.png", picture(layout()), "image/png"), "style": ("style.png", picture(photo), "image/png")}
    plain = api.post("/api/synthesize", files=files, data={"seed": "1"})
    refined = api.post("/api/synthesize", files={**files, "style_labels": ("l.png", picture(style_ids), "image/png")},
                       data={"seed": "1", "refine_steps": "10"})
    assert plain.status_code == 200 and refined.status_code == 200, refined.text
    a = np.asarray(Image.open(io.BytesIO(plain.content)), np.int16)
    b = np.asarray(Image.open(io.BytesIO(refined.content)), np.int16)
    assert np.abs(a - b).mean() > 0.1
    # Exactly what the Pipeline draws with that style refined against that label map.
    pipe = Pipeline.from_pretrained(model_dir)
    expected = pipe(layout(), style=photo, seed=1, style_labels=style_ids, refine_steps=10)[0]
    assert np.array_equal(b, np.asarray(expected, np.int16))
