"""Bad inputs: a one-line DataError naming the file and the problem; `spadekit data check` finds each one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.data import make_loader, open_dataset
from spadekit.errors import DataError

COLORS = [[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]


def _config(**data):
    config = load_config("custom", overrides=["model.label_nc=4", "data.crop_size=16", "data.load_size=16"])
    for key, value in data.items():
        setattr(config.data, key, value)
    return config


def _good(root: Path, stem: str, label: np.ndarray | None = None, size=(16, 16)) -> None:
    for sub in ("labels", "images"):
        (root / sub).mkdir(exist_ok=True)
    w, h = size
    ids = label if label is not None else (np.arange(w)[None, :].repeat(h, 0) * 4 // w).astype(np.uint8)
    Image.fromarray(ids).save(root / "labels" / f"{stem}.png")
    Image.fromarray(np.full((h, w, 3), 128, np.uint8)).save(root / "images" / f"{stem}.png")


def _open(root: Path, config=None):
    config = config or _config()
    return open_dataset(root, "custom", "train", train=False, data=config.data, model=config.model)


def _raises(fn, *needles: str) -> str:
    with pytest.raises(DataError) as info:
        fn()
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    for needle in needles:
        assert needle in message, message
    return message


def test_corrupt_image(tmp_path):
    _good(tmp_path, "a")
    (tmp_path / "images" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    _raises(lambda: _open(tmp_path)[0], "a.png", "cannot read image")


def test_truncated_jpeg(tmp_path):
    _good(tmp_path, "a")
    (tmp_path / "images" / "a.png").unlink()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "images" / "a.jpg")
    data = (tmp_path / "images" / "a.jpg").read_bytes()
    (tmp_path / "images" / "a.jpg").write_bytes(data[: len(data) // 2])
    _raises(lambda: _open(tmp_path)[0], "a.jpg", "cannot read image")


def test_corrupt_label(tmp_path):
    _good(tmp_path, "a")
    (tmp_path / "labels" / "a.png").write_bytes(b"garbage")
    _raises(lambda: _open(tmp_path)[0], str(tmp_path / "labels" / "a.png"), "cannot read label map")


def test_missing_partners(tmp_path):
    _good(tmp_path, "a")
    _good(tmp_path, "b")
    (tmp_path / "images" / "b.png").unlink()
    _raises(lambda: _open(tmp_path), str(tmp_path / "labels" / "b.png"), "no matching image")
    _good(tmp_path, "b")
    (tmp_path / "labels" / "a.png").unlink()
    _raises(lambda: _open(tmp_path), str(tmp_path / "images" / "a.png"), "no matching label map")


def test_missing_instance_partner(tmp_path):
    _good(tmp_path, "a")
    _good(tmp_path, "b")
    (tmp_path / "instances").mkdir()
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "instances" / "a.png")
    config = _config()
    config.model.use_instance = True
    _raises(lambda: _open(tmp_path, config), str(tmp_path / "labels" / "b.png"), "no matching instance map")


def test_size_mismatch(tmp_path):
    _good(tmp_path, "a")
    Image.fromarray(np.zeros((20, 24, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    _raises(lambda: _open(tmp_path)[0], "a.png", "24x20", "16x16", "differs")


def test_ids_out_of_range(tmp_path):
    label = np.zeros((16, 16), np.uint8)
    label[0, 0], label[1, 1] = 9, 7
    _good(tmp_path, "a", label)
    _raises(lambda: _open(tmp_path)[0], str(tmp_path / "labels" / "a.png"), "7, 9", "out of range", "label_nc=4")


def test_dontcare_without_channel_and_with_it(tmp_path):
    label = np.zeros((16, 16), np.uint8)
    label[:4] = 255
    _good(tmp_path, "a", label)
    _raises(lambda: _open(tmp_path)[0], "a.png", "255", "contain_dontcare")
    config = _config()
    config.model.contain_dontcare = True
    item = _open(tmp_path, config)[0]
    assert int((item["label"] == 4).sum()) == 64 and int(item["label"].max()) == 4


def test_unknown_palette_colour(tmp_path):
    palette = tmp_path / "palette.json"
    palette.write_text(json.dumps({"names": ["a", "b", "c", "d"], "colors": COLORS}))
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:, 8:] = (10, 20, 30)
    Image.fromarray(rgb).save(tmp_path / "labels" / "a.png")
    Image.fromarray(rgb).save(tmp_path / "images" / "a.png")
    _raises(lambda: _open(tmp_path, _config(palette=str(palette)))[0], "a.png", "not in the palette", "(10, 20, 30)")


def test_colour_coded_labels_without_palette(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    Image.fromarray(np.asarray(COLORS, np.uint8)[np.arange(16)[None, :].repeat(16, 0) % 4]).save(tmp_path / "labels" / "a.png")
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    _raises(lambda: _open(tmp_path)[0], "a.png", "colour-coded", "4 colours", "data.palette")


def test_bad_palette_file(tmp_path):
    _good(tmp_path, "a")
    palette = tmp_path / "p.json"
    palette.write_text("{not json")
    _raises(lambda: _open(tmp_path, _config(palette=str(palette))), "p.json", "palette")


def test_missing_root_and_empty_tree(tmp_path):
    _raises(lambda: _open(tmp_path / "nowhere"), "nowhere", "not found")
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    _raises(lambda: _open(tmp_path), "no train samples")
    (tmp_path / "images").rmdir()
    _raises(lambda: _open(tmp_path), "images/")


def test_worker_errors_stay_one_line(tmp_path):
    _good(tmp_path, "a")
    _good(tmp_path, "b")
    (tmp_path / "images" / "b.png").write_bytes(b"broken")
    config = _config(num_workers=1)
    ds = _open(tmp_path, config)
    loader = make_loader(ds, 1, shuffle=False, data=config.data)
    message = _raises(lambda: list(loader), str(tmp_path / "images" / "b.png"), "cannot read image")
    assert not message.startswith("Caught")


# ------------------------------------------------------------------------------ spadekit data check


def _plant_everything(root: Path) -> dict[str, str]:
    """A folder dataset with one file per problem kind; returns {kind: file name}."""
    _good(root, "clean")
    _good(root, "orphan")
    (root / "images" / "orphan.png").unlink()
    _good(root, "corrupt")
    (root / "images" / "corrupt.png").write_bytes(b"nope")
    _good(root, "bigger")
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / "images" / "bigger.png")
    high = np.zeros((16, 16), np.uint8)
    high[0, :3] = (6, 11, 4)
    _good(root, "high", high)
    dc = np.zeros((16, 16), np.uint8)
    dc[5] = 255
    _good(root, "dontcare", dc)
    _good(root, "coloured")
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = np.arange(16)[None, :] * 16
    rgb[..., 1] = np.arange(16)[:, None] * 16
    Image.fromarray(rgb).save(root / "labels" / "coloured.png")
    return {
        "missing partner": "orphan.png",
        "unreadable file": "corrupt.png",
        "size mismatch": "bigger.png",
        "label ids out of range": "high.png",
        "don't-care without channel": "dontcare.png",
        "colour-coded label map": "coloured.png",
    }


def _section(output: str, kind: str) -> str:
    """The lines the report lists under one problem kind."""
    lines = output.split("class histogram")[0].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {kind} ("))
    body = []
    for line in lines[start + 1 :]:
        if not line.startswith("    "):
            break
        body.append(line)
    return "\n".join(body)


def test_data_check_finds_every_planted_problem(tmp_path, capsys):
    planted = _plant_everything(tmp_path)
    code = main(["data", "check", str(tmp_path), "--preset", "custom", "--set", "model.label_nc=4", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1
    for kind, name in planted.items():
        section = _section(out, kind)
        assert name in section, (kind, section)
    assert "ids 4, 6, 11 (allowed 0..3)" in _section(out, "label ids out of range")
    assert "clean.png" not in out.split("class histogram")[0]
    assert "suggested: model.label_nc=12" in out  # highest id seen is 11


def test_data_check_unknown_palette_colour(tmp_path, capsys):
    (tmp_path / "palette.json").write_text(json.dumps({"colors": COLORS}))
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "labels" / "x.png")
    Image.fromarray(rgb).save(tmp_path / "images" / "x.png")
    assert main(["data", "check", str(tmp_path), "--set", "model.label_nc=4", "--quiet"]) == 1
    section = _section(capsys.readouterr().out, "unknown palette colour")
    assert "x.png" in section and "(1, 2, 3)" in section


def test_data_check_clean_dataset_and_usage_errors(tmp_path, capsys):
    _good(tmp_path, "a")
    label = np.zeros((16, 16), np.uint8)
    label[:, 8:] = 255
    _good(tmp_path, "b", label)
    assert main(["data", "check", str(tmp_path), "--set", "model.label_nc=4", "model.contain_dontcare=true", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "don't-care" in out
    assert "suggested: model.label_nc=4 model.contain_dontcare=true" in out
    assert main(["data", "check", str(tmp_path / "missing"), "--quiet"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["data", "check", str(tmp_path), "--preset", "no-such-preset"]) == 2


def test_data_check_real_coco_samples_are_clean(coco_samples, capsys):
    assert main(["data", "check", str(coco_samples), "--preset", "coco", "--quiet", "--quick"]) == 0
    out = capsys.readouterr().out
    assert "13 train samples, 8 val samples" in out and "no problems found" in out


def test_open_dataset_names_unknown_split_and_format(tmp_path):
    from spadekit.errors import ConfigError

    _good(tmp_path, "a")
    with pytest.raises(ConfigError, match="split"):
        open_dataset(tmp_path, "custom", "test")
    config = _config()
    config.data.format = "nope"
    _raises(lambda: _open(tmp_path, config), "nope", "data.format")
    assert torch.is_tensor(_open(tmp_path)[0]["label"])
