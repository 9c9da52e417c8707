"""Outputs are as readable as any file the user creates: spadekit writes through temporary files
and folders (private by default: 0600 / 0700) but gives them the umask's mode, as ``open()`` and
``mkdir()`` would. Checked under two umasks for every kind of output."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.demo import save_images
from spadekit.evaluation.toy_segmenter import ToySegNet, save_toy_segmenter
from spadekit.io import atomic_torch_save, atomic_write_text, current_umask
from spadekit.models import build_networks
from spadekit.release import SpadeModel
from spadekit.training.setup import build_trainer


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_modes(root: Path, mask: int) -> int:
    """Every file under ``root`` has 0666 & ~mask, every folder (root included) 0777 & ~mask."""
    checked = 0
    for path in [root, *root.rglob("*")]:
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert mode(path) == want, f"{path}: {oct(mode(path))}, expected {oct(want)}"
        checked += 1
    return checked


def test_current_umask_reads_without_changing_it(umask):
    assert current_umask() == umask
    assert current_umask() == umask


def test_single_file_writers(tmp_path, umask):
    atomic_write_text(tmp_path / "eval.json", "{}\n")
    atomic_torch_save({"x": torch.zeros(2)}, tmp_path / "step.pt")
    save_images({tmp_path / "a.png": Image.new("RGB", (8, 8))})
    save_toy_segmenter(ToySegNet(12, width=4, depth=2, size=16), tmp_path / "seg", [f"c{i}" for i in range(12)])
    for name in ("eval.json", "step.pt", "a.png", "seg/segmenter.safetensors", "seg/segmenter.json"):
        assert mode(tmp_path / name) == 0o666 & ~umask, name


def test_release_model_folder_and_files(tmp_path, umask):
    config = load_config("custom", ["model.label_nc=3", "model.ngf=4", "model.ndf=4", "model.width=32"])
    g, d, _ = build_networks(config.model)
    out = SpadeModel(config, g, d).save(tmp_path / "model")
    assert assert_modes(out, umask) == 4  # the folder, config.json, generator and discriminator


def test_toy_make_folder(tmp_path, umask):
    assert main(["toy", "make", str(tmp_path / "toy"), "--n", "2", "--size", "16", "--quiet"]) == 0
    assert assert_modes(tmp_path / "toy", umask) > 8


def test_synthesize_outputs(tmp_path, umask):
    label = tmp_path / "scene.png"
    Image.fromarray(np.tile(np.arange(12, dtype=np.uint8), (32, 3))).save(label)
    out = tmp_path / "out"
    assert main(["synthesize", "--model", "toy", "--labels", str(label), "--out", str(out)]) == 0
    assert assert_modes(out, umask) >= 5  # out/, scene.png, index.html, sheet/, sheet/scene_label.png


def test_training_run_directory(tmp_path, umask):
    config = load_config("toy", ["model.ngf=4", "model.ndf=4", "model.width=32", "model.spade_hidden=8", "model.use_vae=false",
                                 "data.crop_size=32", "data.load_size=32", "data.toy_scenes=4", "train.batch_size=2",
                                 "train.ema_decay=0.9", "train.log_every=1"])
    run = tmp_path / "run"
    build_trainer(config, run, steps=1, progress=False, tensorboard=False, log=lambda _: None).fit()
    # config.json, metrics.jsonl, the checkpoint, the gallery and the release model
    for path in (run / "config.json", run / "metrics.jsonl", run / "checkpoints" / "step-00000001.pt",
                 run / "gallery" / "index.html", run / "model" / "generator.safetensors"):
        assert mode(path) == 0o666 & ~umask, path
    assert mode(run / "model") == 0o777 & ~umask
