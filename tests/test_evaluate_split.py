"""``spadekit evaluate`` says what it measured: the split it really read (a folder without train/
and val/ subfolders is "all", not "val") and how many images the FID came from, with a warning
below the protocol's minimum (one image per feature dimension)."""

from __future__ import annotations

import json

import pytest
import torch

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.evaluation.toy_segmenter import ToySegNet, save_toy_segmenter
from spadekit.models import build_networks
from spadekit.release import SpadeModel, save_model

TINY = ["model.width=32", "model.ngf=4", "model.ndf=4", "model.spade_hidden=8", "model.use_vae=false",
        "data.crop_size=32", "data.load_size=32"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("split")
    config = load_config("toy", TINY)
    torch.manual_seed(1)
    g, _, _ = build_networks(config.model)
    save_model(SpadeModel(config=config, generator=g), root / "model")
    save_toy_segmenter(ToySegNet(12, width=4, depth=2, size=32), root / "seg", [f"c{i}" for i in range(12)])
    save_toy_segmenter(ToySegNet(12, width=1, depth=2, size=32), root / "seg3", [f"c{i}" for i in range(12)])
    flat = root / "flat"
    assert main(["toy", "make", str(flat), "--n", "4", "--size", "32", "--quiet"]) == 0
    split = root / "split"
    assert main(["toy", "make", str(split / "val"), "--n", "3", "--size", "32", "--split", "val", "--quiet"]) == 0
    assert main(["toy", "make", str(split / "train"), "--n", "3", "--size", "32", "--quiet"]) == 0
    return root


def evaluate(files, data, tmp_path, capsys, segmenter: str = "seg") -> tuple[dict, str]:
    out = tmp_path / "report.json"
    code = main(["evaluate", "--model", str(files / "model"), "--preset", "toy", "--data", str(data),
                 "--segmenter-weights", str(files / segmenter), "--cache-dir", str(tmp_path / "cache"),
                 "--out", str(out), "--no-progress", "--device", "cpu"])
    assert code == 0
    return json.loads(out.read_text()), capsys.readouterr()


def test_a_flat_folder_is_reported_as_split_all(files, tmp_path, capsys):
    report, printed = evaluate(files, files / "flat", tmp_path, capsys)
    assert report["data"]["split"] == "all" and report["protocol"]["split"] == "all"
    assert "no train/ or val/ subfolder" in report["data"]["split_note"]
    assert "toy all:" in printed.out and "toy val" not in printed.out


def test_a_folder_with_a_val_subfolder_is_reported_as_val(files, tmp_path, capsys):
    report, _ = evaluate(files, files / "split", tmp_path, capsys)
    assert report["data"]["split"] == "val" and report["data"]["images"] == 3
    assert "split_note" not in report["data"]


def test_fid_below_the_protocol_minimum_is_flagged_and_counted(files, tmp_path, capsys):
    report, printed = evaluate(files, files / "flat", tmp_path, capsys)
    fid = report["protocol"]["fid"]
    # The toy FID's features: penultimate width 4 + bottleneck 4 * 2 = 12 dimensions.
    assert fid["minimum_images"] == 12 and fid["below_minimum"] is True
    assert report["protocol"]["counts"]["fid_images"] == 4
    assert any("FID from 4 images, fewer than the protocol's minimum of 12" in w for w in report["warnings"])
    assert "warning: FID from 4 images" in printed.err  # said while it runs
    assert "warning: FID from 4 images" in printed.out  # and in the summary


def test_fid_at_or_above_the_minimum_is_not_flagged(files, tmp_path, capsys):
    report, printed = evaluate(files, files / "flat", tmp_path, capsys, segmenter="seg3")  # 1 + 2 = 3 features
    assert report["protocol"]["fid"]["minimum_images"] == 3 and report["protocol"]["fid"]["below_minimum"] is False
    assert report["warnings"] == [] and "warning" not in printed.err
