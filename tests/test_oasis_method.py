"""OASIS through the method-agnostic layers: convert (CLI) → release → Pipeline/synthesize with
injected noise → to-oasis, export, per-region noise, and the config rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import fixture_cases
from spadekit.cli import main
from spadekit.config import load_config
from spadekit.errors import ConfigError
from spadekit.inference import Pipeline
from spadekit.io import safe_torch_load
from spadekit.release import load_model

CASES = fixture_cases("peers", "oasis")


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.float() - expected).norm() / expected.norm())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_convert_cli_release_reproduces_the_official_eval_output(case: Path, tmp_path: Path, capsys) -> None:
    opt = json.loads((case / "opt.json").read_text())
    io = safe_torch_load(case / "io.pt")
    width = opt["crop_size"]
    out = tmp_path / "model"
    args = ["convert", "oasis", str(case), "--out", str(out), "--set", f"model.width={width}",
            f"model.aspect_ratio={opt['aspect_ratio']}"]
    assert main(args) == 0
    assert "oasis" in capsys.readouterr().out
    model = load_model(out)
    assert model.config.method == "oasis" and model.config.model.label_nc == opt["semantic_nc"]
    assert model.output_size == tuple(io["G_eval_out"].shape[-1:-3:-1])
    with torch.no_grad():
        z = io["z_eval"] if not opt["no_3dnoise"] else None
        fake = model.generator(io["input_semantics"], z)
    assert rel_error(fake, io["G_eval_out"]) <= 1e-5
    # Pipeline: label ids in, the same image out when the same noise goes in.
    pipe = Pipeline(model, fast=False)
    index = io["input_semantics"].argmax(1)
    images = pipe.generate(index, None, z)
    assert rel_error(images, io["G_eval_out"]) <= 1e-5
    # Back to the official format: same keys and tensors as the official file.
    back = tmp_path / "back"
    assert main(["convert", "to-oasis", str(out), "--out", str(back)]) == 0
    official = safe_torch_load(case / "G.pth")
    written = safe_torch_load(back / "latest_EMA.pth")
    assert list(written) == list(official)
    assert all(torch.equal(written[k], official[k]) for k in official)
    assert (back / "latest_D.pth").is_file() and (back / "latest_G.pth").is_file()


def tiny_oasis():
    from spadekit.methods import build_networks
    from spadekit.release import SpadeModel

    config = load_config("oasis-toy", ["model.ngf=4", "model.spade_hidden=8", "model.width=64", "oasis.z_dim=8",
                                       "oasis.d_widths=[4,4,8,8,8,8]", "oasis.d_last_width=4"])
    torch.manual_seed(0)
    parts = build_networks(config, init=False)  # PyTorch's default init: outputs are not ~0
    generator = parts["generator"]
    generator.train()
    with torch.no_grad():  # calibrate batch-norm statistics
        generator(torch.nn.functional.one_hot(torch.randint(0, 12, (4, 64, 64)), 12).permute(0, 3, 1, 2).float())
    return SpadeModel(config, generator.eval())


def test_seeds_select_noise_and_region_resampling_stays_in_the_region() -> None:
    pipe = Pipeline(tiny_oasis())
    assert pipe.uses_latent and pipe.spatial_latent and pipe.latent_dim == 8
    label = torch.zeros(64, 64, dtype=torch.long)
    label[32:, :] = 5
    a = pipe(label, seed=1, output="tensor")
    assert 0.05 < float(a.std()) and float(a.abs().max()) < 0.999, "random model output must be neither flat nor saturated"
    assert torch.equal(a, pipe(label, seed=1, output="tensor"))
    b = pipe(label, seed=2, output="tensor")
    assert float((a - b).abs().mean()) > 1e-3, "another seed must give another sample"
    region = (label == 5).to(torch.uint8)
    c = pipe(label, seed=1, region=region, region_seed=9, output="tensor")
    inside = (c - a).abs()[..., 32:, :].mean()
    outside = (c - a).abs()[..., :32, :].mean()
    assert inside > 2 * outside, f"resampling the lower region changed the rest too much ({inside:.4f} vs {outside:.4f})"
    # The same seeds give the same region sample.
    assert torch.equal(c, pipe(label, seed=1, region=region, region_seed=9, output="tensor"))


def test_spade_models_refuse_region_resampling() -> None:
    pipe = Pipeline(load_model("toy"))
    with pytest.raises(Exception, match="region"):
        pipe(torch.zeros(128, 128, dtype=torch.long), seed=0, region=torch.ones(128, 128, dtype=torch.uint8))


def test_export_takes_the_noise_as_an_input(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from spadekit.export import check_export, describe, export_model

    model = tiny_oasis()
    path = export_model(model, "onnx", tmp_path / "oasis.onnx")
    assert describe(model, model.output_size)["inputs"]["z"] == ["N", 8]
    assert check_export(model, "onnx", path) < 1e-4


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.width=96"], "multiples of 64"),
        (["model.use_instance=true"], "one-hot labels only"),
        (["model.generator=spade"], "model.generator=oasis"),
        (["oasis.z_dim=0"], "z_dim"),
    ],
)
def test_config_rules_name_the_field(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("oasis-toy", overrides)


def test_full_presets_have_the_official_parameter_counts() -> None:
    from spadekit.methods import build_networks

    expected = {"oasis-ade20k": (74_314_691, 22_258_904), "oasis-cityscapes": (71_107_523, 22_251_364),
                "oasis-coco": (75_199_427, 22_260_984)}
    for preset, (g_count, d_count) in expected.items():
        with torch.device("meta"):
            parts = build_networks(load_config(preset), init=False)
        assert sum(p.numel() for p in parts["generator"].parameters()) == g_count, preset
        assert sum(p.numel() for p in parts["discriminator"].parameters()) == d_count, preset
