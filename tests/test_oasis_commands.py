"""OASIS models through the method-agnostic commands: `spadekit evaluate --preset toy` (seeded noise
per image, so the numbers are reproducible and independent of batching) and `spadekit bench`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from spadekit.bench import bench_inputs
from spadekit.cli import main
from spadekit.config import load_config
from spadekit.evaluation.evaluate import evaluate
from spadekit.evaluation.toy_segmenter import ToySegNet, save_toy_segmenter
from spadekit.inference import one_hot
from spadekit.methods import build_networks, get_method
from spadekit.release import SpadeModel, load_model


def tiny_oasis_model(path: Path) -> Path:
    """The oasis-toy preset shrunk by the method's own tiny overrides, PyTorch's default init and
    batch-norm statistics from one pass, so that images vary with the noise."""
    config = load_config("oasis-toy", list(get_method("oasis").tiny_overrides) + ["model.ngf=4", "oasis.z_dim=8"])
    torch.manual_seed(0)
    generator = build_networks(config, init=False)["generator"].train()
    with torch.no_grad():
        index = torch.randint(0, 12, (4, 8, 8)).repeat_interleave(8, 1).repeat_interleave(8, 2)
        generator(one_hot(index, 12, None, torch.float32))
    return SpadeModel(config, generator.eval()).save(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("oasis-commands")
    torch.manual_seed(2)
    save_toy_segmenter(ToySegNet(12, width=4, depth=2, size=32), root / "seg", [f"c{i}" for i in range(12)],
                       {"val": {"miou": 0.9, "pixel_accuracy": 0.95}})
    return {"model": tiny_oasis_model(root / "model"), "seg": root / "seg"}


def test_evaluate_toy_on_an_oasis_model(files, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    args = ["evaluate", "--model", str(files["model"]), "--preset", "toy", "--segmenter-weights", str(files["seg"]),
            "--max-images", "4", "--num-samples", "2", "--batch-size", "4", "--metrics", "fid,miou,accuracy,feature-diversity",
            "--cache-dir", str(tmp_path / "cache"), "--out", str(report_path), "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    assert "toy FID" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert report["model"]["generator"] == "oasis"
    assert report["data"]["preset"] == "toy" and report["data"]["resolution"] == [64, 64]
    for key in ("fid", "miou", "accuracy"):
        assert math.isfinite(report["metrics"][key])
    # The noise makes the two samples of a label map differ (a deterministic generator scores 0).
    assert report["metrics"]["feature-diversity"] > 0
    assert report["protocol"]["counts"]["samples_per_label_map"] == 2

    # Seeded per image and sample: the same numbers in other batch sizes, others with another seed.
    common = dict(preset="toy", segmenter_weights=files["seg"], max_images=4, num_samples=2,
                  metrics="fid,miou,accuracy,feature-diversity", cache_dir=tmp_path / "cache", progress=False)
    first = evaluate(files["model"], batch_size=1, seed=0, **common)
    for key in ("fid", "miou", "accuracy", "feature-diversity"):
        assert first["metrics"][key] == pytest.approx(report["metrics"][key], rel=1e-6, abs=1e-9), key
    other = evaluate(files["model"], batch_size=4, seed=1, **common)
    assert other["metrics"]["fid"] != pytest.approx(report["metrics"]["fid"], rel=1e-9)


def conv_flops(generator: torch.nn.Module, *inputs) -> int:
    """2·MACs of every Conv2d, counted from the output shapes."""
    total = 0

    def hook(module, args, output):
        nonlocal total
        total += 2 * output.numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in generator.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        generator(*inputs)
    for handle in handles:
        handle.remove()
    return total


def test_bench_on_an_oasis_model(files, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(files["model"]), "--iters", "2", "--batch", "2", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["method"] == "oasis" and report["latent_dim"] == 8 and report["size"] == [64, 64]
    # OASIS has no fast path: the plain one is timed alone, with the noise as an input.
    assert list(report["paths"]) == ["plain"] and "speedup" not in report
    plain = report["paths"]["plain"]
    assert len(plain["seconds_per_batch"]) == 2
    assert abs(plain["images_per_second"] - 2 / plain["median_seconds_per_batch"]) < 1e-9
    model = load_model(files["model"])
    index, _, z = bench_inputs(model, 1)
    assert z is not None and z.shape == (1, 8)
    assert plain["flops_per_image"] == conv_flops(model.generator.eval(), one_hot(index, 12, None, torch.float32), z)
    assert "oasis" in capsys.readouterr().out
