"""ASAPNet through the method-agnostic layers: convert (CLI) → release → Pipeline (plain and fast) →
to-asapnet, format detection, the size rules (with a model run at another size), the objective's
extra terms, export and the full-size presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import fixture_cases
from spadekit.bench import bench_inputs, random_model
from spadekit.cli import main
from spadekit.config import load_config
from spadekit.conversion import detect_format
from spadekit.errors import ConfigError
from spadekit.inference import Pipeline, model_at_size, one_hot
from spadekit.io import safe_torch_load
from spadekit.methods import get_method
from spadekit.methods.base import Batch
from spadekit.release import load_model

CASES = fixture_cases("peers", "asapnet")
TINY = list(get_method("asapnet").tiny_overrides)


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected.double()).norm() / expected.double().norm())


def one_hot_case(opt: dict) -> bool:
    return not opt.get("no_one_hot", False) and opt.get("no_instance_dist", True)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_convert_cli_release_reproduces_the_official_eval_output(case: Path, tmp_path: Path, capsys) -> None:
    opt = json.loads((case / "opt.json").read_text())
    if not one_hot_case(opt):
        pytest.skip("the asapnet method feeds one-hot labels + instance edges; this case's input is another")
    io = safe_torch_load(case / "io.pt")
    out = tmp_path / "model"
    assert main(["convert", "asapnet", str(case), "--out", str(out)]) == 0  # opt.json gives the layout
    assert "asapnet" in capsys.readouterr().out
    model = load_model(out)
    m = model.config.model
    assert model.config.method == "asapnet" and m.label_nc == opt["label_nc"]
    assert model.output_size == tuple(io["G_eval"].shape[-1:-3:-1])
    assert set(model.networks()) == {"generator", "discriminator"}
    semantics = io["input_semantics"].float()
    with torch.no_grad():
        fake, params = model.generator(semantics, return_parameters=True)
    assert rel_error(fake, io["G_eval"]) <= 1e-5
    assert rel_error(params, io["lr_features_eval"]) <= 1e-5
    classes = m.label_nc + int(m.contain_dontcare)
    index = semantics[:, :classes].argmax(1)
    edges = semantics[:, classes:] if m.use_instance else None
    assert rel_error(Pipeline(model, fast=False).generate(index, edges, None), io["G_eval"]) <= 1e-5
    fast = Pipeline(model, fast=True)
    assert fast.fast and float((fast.generate(index, edges, None) - io["G_eval"]).abs().max()) < 1e-4
    # Back to the official format: the official files' keys and tensors, in order.
    back = tmp_path / "back"
    assert main(["convert", "to-asapnet", str(out), "--out", str(back)]) == 0
    for name in ("latest_net_G.pth", "latest_net_D.pth"):
        official, written = safe_torch_load(case / name), safe_torch_load(back / name)
        assert list(written) == list(official), name
        assert all(torch.equal(written[k], official[k]) for k in official), name
    assert detect_format(back).name == "asapnet"
    again = load_model(back)
    assert again.config.model == model.config.model and again.config.section("asapnet") == model.config.section("asapnet")


def test_detection_and_round_trip_of_a_trained_layout(tmp_path: Path) -> None:
    model = random_model("asapnet-toy", TINY + ["asapnet.reflection_pad=true", "asapnet.norm=batch"])
    model.save(tmp_path / "release")
    assert main(["convert", "to-asapnet", str(tmp_path / "release"), "--out", str(tmp_path / "official")]) == 0
    assert detect_format(tmp_path / "official").name == "asapnet"
    again = load_model(tmp_path / "official", preset="asapnet-toy")
    options = again.config.section("asapnet")
    assert options.reflection_pad and options.norm == "batch" and options.hr_width == 4
    index, edges, _ = bench_inputs(model, 1)
    assert torch.equal(Pipeline(again).generate(index, edges, None), Pipeline(model).generate(index, edges, None))


# -- sizes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.width=500", "model.aspect_ratio=2.0"], r"500 // \(16·2.0\) = 15.*allowed widths: 128, 136, 144"),
        (["model.width=32"], r"= 2, which must be a power of two ≥ the learned factor 4"),
        (["model.use_vae=true"], "no latent input"),
        (["model.discriminator=multiscale"], "model.discriminator=asapnet"),
        (["asapnet.norm=group"], "asapnet.norm"),
        (["asapnet.tile=6"], "power of two"),
    ],
)
def test_size_and_config_rules_name_the_field(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("asapnet-toy", overrides)


def test_a_model_runs_at_other_sizes_with_its_tile_size() -> None:
    model = random_model("asapnet-toy", TINY)  # 64x64: tile 4 by the paper's rule
    assert model.generator.downsampling == 4
    big = model_at_size(model, (128, 96))  # the paper's rule would give 128 // (16 · 4/3) = 6: no such model
    assert big.output_size == (128, 96) and big.generator.downsampling == 4
    assert big.config.section("asapnet").tile == 4
    state, again = model.generator.state_dict(), big.generator.state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)
    index, edges, _ = bench_inputs(big, 1)
    plain = Pipeline(big, fast=False).generate(index, edges, None)
    fast = Pipeline(big, fast=True).generate(index, edges, None)
    assert plain.shape[-2:] == (96, 128) and plain.std() > 0.1
    assert float((plain - fast).abs().max()) < 1e-4
    with pytest.raises(ConfigError, match="multiples of 4"):
        model_at_size(model, (66, 64))


# -- objective -------------------------------------------------------------------------------------


def test_objective_adds_weight_decay_mse_and_l1_and_can_drop_the_gan_term() -> None:
    from spadekit.methods import build_networks
    from spadekit.methods.asapnet.method import AsapnetObjective

    config = load_config("asapnet-toy", TINY + ["asapnet.lambda_wd=1e-3", "asapnet.lambda_mse=10", "asapnet.lambda_l1=100",
                                                 "asapnet.adversarial=false"])
    torch.manual_seed(0)
    parts = build_networks(config, init=False)
    model = random_model("asapnet-toy", TINY)
    index, edges, _ = bench_inputs(model, 2)
    semantics = one_hot(index, 12, edges, torch.float32)
    image = torch.rand(2, 3, 64, 64) * 2 - 1
    objective = AsapnetObjective(parts["generator"], parts["discriminator"], config, None)
    total, terms, fake = objective.generator_losses(Batch(semantics, image))
    assert set(terms) == {"G_feat", "G_MSE", "G_L1", "G_WD"}
    with torch.no_grad():
        image_again, params = parts["generator"](semantics, return_parameters=True)
    assert torch.allclose(terms["G_WD"], 1e-3 * (params.double() ** 2).sum().float(), rtol=1e-4)
    assert torch.allclose(terms["G_MSE"], 10 * ((image_again - image) ** 2).mean(), rtol=1e-5)
    assert torch.allclose(terms["G_L1"], 100 * (image_again - image).abs().mean(), rtol=1e-5)
    assert torch.allclose(total, sum(terms.values()))
    total.backward()
    assert parts["generator"].lowres_stream.model[-1].weight.grad.abs().sum() > 0
    default = AsapnetObjective(parts["generator"], parts["discriminator"], load_config("asapnet-toy", TINY[:1]), None)
    assert set(default.generator_losses(Batch(semantics, image))[1]) == {"G_GAN", "G_feat"}


# -- export, presets -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_reproduces_pytorch(fmt: str, tmp_path: Path) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    from spadekit.export import check_export, example_inputs, export_model

    model = random_model("asapnet-toy", TINY + ["asapnet.hr_width=8", "asapnet.hr_depth=3"])
    inputs = example_inputs(model, model.output_size, batch=2, seed=1)
    with torch.no_grad():
        reference = model.generator(*inputs)
    assert reference.std() > 0.1 and (reference.abs() > 0.999).float().mean() < 0.3
    path = export_model(model, fmt, tmp_path / f"asapnet.{fmt}")
    assert check_export(model, fmt, path) < 1e-4


def test_full_presets_have_the_official_sizes() -> None:
    from spadekit.methods import build_networks

    # Facts sheet §1.8 (official define_G): parameters per cell and G parameters (M).
    expected = {"asapnet-cityscapes": (16003, 83.20, 16), "asapnet-facades": (14851, 82.01, 32)}
    for preset, (per_cell, count, tile) in expected.items():
        with torch.device("meta"):
            parts = build_networks(load_config(preset), init=False)
        g = parts["generator"]
        assert g.num_params == per_cell and g.downsampling == tile, preset
        assert round(sum(p.numel() for p in g.parameters()) / 1e6, 2) == count, preset
        widths = [v.shape[0] for k, v in parts["discriminator"].state_dict().items() if k.startswith("discriminator_0.") and k.endswith("weight_orig")]
        assert widths == [128, 256, 512], preset
    for preset in ("asapnet-ade20k", "asapnet-coco", "asapnet-custom"):
        with torch.device("meta"):
            assert build_networks(load_config(preset), init=False)["generator"].downsampling == 16


def test_lr_instance_defaults_to_the_instance_channel() -> None:
    from spadekit.methods import build_networks

    with torch.device("meta"):
        without = build_networks(load_config("asapnet-custom"), init=False)["generator"]
        quirk = build_networks(load_config("asapnet-custom", ["asapnet.lr_instance=true"]), init=False)["generator"]
        edges = build_networks(load_config("asapnet-coco"), init=False)["generator"]
    assert not without.lr_instance and quirk.lr_instance and edges.lr_instance
    assert without.highres_stream.in_channels == 13 and quirk.highres_stream.in_channels == 12


def test_fast_path_matches_the_plain_network_through_the_pipeline() -> None:
    model = random_model("asapnet-toy", TINY + ["asapnet.hr_width=8", "asapnet.hr_depth=3"])
    index, edges, _ = bench_inputs(model, 2)
    plain = Pipeline(model, fast=False).generate(index, edges, None)
    fast = Pipeline(model, fast=True)
    assert fast.fast
    got = fast.generate(index, edges, None)
    assert plain.std() > 0.1 and (plain.abs() > 0.999).float().mean() < 0.3
    assert float((got - plain).abs().max()) < 1e-4


@pytest.mark.parametrize("name", ["asapnet", "clade"])
def test_synthesize_evaluate_and_bench_commands(name: str, tmp_path: Path, capsys) -> None:
    import numpy as np
    from PIL import Image

    method = get_method(name)
    model = random_model(method.toy_preset, list(method.tiny_overrides))
    model.save(tmp_path / "model")
    label = np.zeros((64, 64), np.uint8)
    label[32:] = 5
    Image.fromarray(label).save(tmp_path / "label.png")
    assert main(["synthesize", "--model", str(tmp_path / "model"), "--labels", str(tmp_path / "label.png"),
                 "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert any(p.suffix == ".png" for p in (tmp_path / "out").iterdir())
    assert main(["evaluate", "--model", str(tmp_path / "model"), "--preset", method.toy_preset, "--max-images", "4",
                 "--metrics", "miou", "--out", str(tmp_path / "eval.json"), "--no-progress", "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "eval.json").read_text())
    assert report["model"]["generator"] == name and 0 <= report["metrics"]["miou"] <= 1
    assert main(["bench", "--model", str(tmp_path / "model"), "--iters", "1", "--threads", "1", "--device", "cpu",
                 "--json", str(tmp_path / "bench.json")]) == 0
    bench = json.loads((tmp_path / "bench.json").read_text())
    assert bench["method"] == name and set(bench["paths"]) == {"plain", "fast"} and bench["max_abs_diff"] < 1e-4
