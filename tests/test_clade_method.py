"""CLADE through the method-agnostic layers: convert (CLI) → release → Pipeline (plain and fast) →
to-clade, format detection, ICPE offset maps in the data pipeline and at inference, export, the
config rules and the full-size presets."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import fixture_cases
from spadekit.bench import bench_inputs, random_model
from spadekit.cli import main
from spadekit.config import load_config
from spadekit.conversion import detect_format
from spadekit.data.dataset import OffsetMaps, ToySceneDataset
from spadekit.data.offsets import intra_class_offsets
from spadekit.data.transforms import Params, Preprocess
from spadekit.errors import ConfigError
from spadekit.inference import Pipeline, one_hot
from spadekit.io import safe_torch_load
from spadekit.methods import get_method
from spadekit.release import load_model

CASES = fixture_cases("peers", "clade")
TINY = list(get_method("clade").tiny_overrides)


def rel_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.double() - expected.double()).norm() / expected.double().norm())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_convert_cli_release_reproduces_the_official_eval_output(case: Path, tmp_path: Path, capsys) -> None:
    opt = json.loads((case / "opt.json").read_text())
    io = safe_torch_load(case / "io.pt")
    out = tmp_path / "model"
    assert main(["convert", "clade", str(case), "--out", str(out)]) == 0  # opt.json gives the layout
    assert "clade" in capsys.readouterr().out
    model = load_model(out)
    m = model.config.model
    assert model.config.method == "clade" and m.label_nc == opt["label_nc"] and m.use_instance == (not opt["no_instance"])
    assert model.output_size == tuple(io["G_eval"].shape[-1:-3:-1])
    semantics = io["input_semantics"].float()
    dist = io.get("dist", io.get("input_dist"))
    with torch.no_grad():
        fake = model.generator(semantics, io.get("z_eval"), dist)
    assert rel_error(fake, io["G_eval"]) <= 1e-5
    # The generic entry points: label ids in, the recorded image out (plain, and fast within 1e-4).
    classes = m.label_nc + int(m.contain_dontcare)
    index = semantics[:, :classes].argmax(1)
    edges = semantics[:, classes:] if m.use_instance else None
    if not model.config.section("clade").icpe:
        plain = Pipeline(model, fast=False).generate(index, edges, io.get("z_eval"))
        assert rel_error(plain, io["G_eval"]) <= 1e-5
        fast = Pipeline(model, fast=True)
        assert fast.fast
        assert float((fast.generate(index, edges, io.get("z_eval")) - io["G_eval"]).abs().max()) < 1e-4
    # Back to the official format: the official files' keys and tensors, in order.
    back = tmp_path / "back"
    assert main(["convert", "to-clade", str(out), "--out", str(back)]) == 0
    official = safe_torch_load(case / "latest_net_G.pth")
    written = safe_torch_load(back / "latest_net_G.pth")
    assert list(written) == list(official)
    assert all(torch.equal(written[k], official[k]) for k in official)
    # The written folder is read back (its opt.json holds the layout) and detected as CLADE.
    assert detect_format(back).name == "clade"
    again = load_model(back)
    assert again.config.method == "clade" and again.output_size == model.output_size


def test_detection_prefers_clade_over_the_spade_fallback(tmp_path: Path, capsys) -> None:
    model = random_model("clade-toy", TINY)
    model.save(tmp_path / "release")
    assert main(["convert", "to-clade", str(tmp_path / "release"), "--out", str(tmp_path / "official")]) == 0
    assert detect_format(tmp_path / "official").name == "clade"
    # ICPE, widths and the class split come back from the weights and the written opt.json (the
    # preset gives the data settings, here the toy rule that every class gets offsets).
    again = load_model(tmp_path / "official", preset="clade-toy")
    assert again.config.section("clade").icpe
    fields = ("label_nc", "use_instance", "ngf", "width", "upsampling", "norm_G", "spectral_G", "use_vae")
    assert all(getattr(again.config.model, f) == getattr(model.config.model, f) for f in fields)
    index, edges, _ = bench_inputs(model, 1)
    assert torch.equal(Pipeline(again).generate(index, edges, None), Pipeline(model).generate(index, edges, None))
    spade = random_model("toy", list(get_method("spade").tiny_overrides))
    spade.save(tmp_path / "spade-release")
    assert main(["convert", "to-official", str(tmp_path / "spade-release"), "--out", str(tmp_path / "spade")]) == 0
    assert detect_format(tmp_path / "spade").name == "official"
    # A SPADE-layer checkpoint is named as such when read as CLADE.
    capsys.readouterr()
    assert main(["convert", "clade", str(tmp_path / "spade"), "--out", str(tmp_path / "x")]) != 0
    assert "has SPADE layers" in capsys.readouterr().err and not (tmp_path / "x").exists()


# -- ICPE offset maps ------------------------------------------------------------------------------


def scene_label() -> np.ndarray:
    """(32, 32) ids: blobs that touch the borders, so crops cut components and flips move centroids."""
    label = np.zeros((32, 32), np.uint8)
    label[:, :10] = 3
    label[4:20, 6:28] = 5
    label[22:, 20:] = 7
    label[24:30, 2:8] = 5
    return label


class OneScene(ToySceneDataset):
    """A toy dataset whose every scene is :func:`scene_label` (photo: its ids as gray)."""

    def scene(self, index: int):
        from spadekit.data.toy import ToyScene

        label = scene_label()
        image = np.repeat(label[..., None] * 30, 3, axis=2).astype(np.uint8)
        return ToyScene(label=label, instance=label.copy(), image=image)


def test_offsets_flip_with_the_image_and_negate_the_columns() -> None:
    label = scene_label()
    recipe = Preprocess("fixed", 32, 32, 1.0, flip=True, random_crop=False)
    data = OneScene(4, size=(32, 32), preprocess=recipe, offsets=OffsetMaps(True, None))
    flipped = not_flipped = None
    torch.manual_seed(0)
    for _ in range(20):
        item = data[0]
        is_flipped = bool(item["label"][0, 0, 0] != int(label[0, 0]) or item["label"][0, 0, -1] != int(label[0, -1]))
        if is_flipped:
            flipped = item
        else:
            not_flipped = item
    assert flipped is not None and not_flipped is not None, "20 draws gave no flip (or only flips)"
    direct = torch.from_numpy(intra_class_offsets(label, True, None))
    assert torch.allclose(not_flipped["offsets"], direct)
    # The map of the flipped annotation, as the flipped photo needs it (not the paper's vertical flip).
    of_flipped = torch.from_numpy(intra_class_offsets(label[:, ::-1].copy(), True, None))
    assert torch.equal(flipped["label"][0], torch.from_numpy(label[:, ::-1].copy()).long())
    assert torch.allclose(flipped["offsets"], of_flipped, atol=1e-6)
    assert not torch.allclose(direct.flip(1), of_flipped, atol=1e-3)


def test_offsets_come_from_the_full_annotation_then_crop_and_resize_like_the_paper() -> None:
    label = scene_label()
    full = torch.from_numpy(intra_class_offsets(label, False, 0))
    # A crop keeps the offsets of the whole annotation (components cut by the crop keep their centroid).
    recipe = Preprocess("crop", 32, 16, flip=False, random_crop=True)
    data = OneScene(1, size=(32, 32), preprocess=recipe, offsets=OffsetMaps(False, 0))
    torch.manual_seed(3)
    params = recipe.sample(32, 32)
    torch.manual_seed(3)
    item = data[0]
    x, y = params.crop_pos
    assert torch.equal(item["offsets"], full[:, y : y + 16, x : x + 16])
    assert not torch.allclose(item["offsets"], torch.from_numpy(intra_class_offsets(label[y : y + 16, x : x + 16], False, 0)))
    # Resizing 32 -> 16 keeps source pixels 0, 2, 4, ... (the paper's F.interpolate rule).
    from spadekit.data.offsets import transform_offsets

    small = transform_offsets(full.numpy(), Preprocess("fixed", 16, 16, 1.0, flip=False), Params())
    assert torch.equal(small, full[:, ::2, ::2])


def test_offsets_of_label_files_come_from_the_ids_the_file_has(tmp_path: Path) -> None:
    # With data.label_offset the file's ids are shifted (raw 0 -> 1 ...), but the paper computes the
    # offsets on the annotation as stored, skipping its value 0: those pixels keep zero offsets.
    from PIL import Image

    from spadekit.data.dataset import PairedDataset
    from spadekit.data.formats import Sample

    label = scene_label()
    Image.fromarray(label).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.jpg")
    recipe = Preprocess("fixed", 32, 32, 1.0, flip=False)
    data = PairedDataset([Sample(tmp_path / "a.png", tmp_path / "a.jpg")], 9, False, False, recipe,
                         label_offset=1, offsets=OffsetMaps(False, 0))
    item = data[0]
    assert torch.equal(item["label"][0], torch.from_numpy(label.astype(np.int64) + 1))
    assert torch.equal(item["offsets"], torch.from_numpy(intra_class_offsets(label, False, 0)))
    assert item["offsets"][:, label == 0].abs().sum() == 0 and item["offsets"].abs().sum() > 0


def test_prepared_batches_carry_the_offsets_to_the_generator() -> None:
    from spadekit.methods.clade.method import CladeObjective, prepare_batch

    config = load_config("clade-toy", TINY)
    data = OneScene(2, size=(64, 64), preprocess=Preprocess("fixed", 64, 64, 1.0, flip=False),
                    offsets=OffsetMaps.from_config(config.data))
    raw = torch.utils.data.default_collate([data[0], data[1]])
    batch = prepare_batch(raw, config, "cpu")
    assert torch.equal(batch.extras["dist"], raw["offsets"])
    model = random_model("clade-toy", TINY)
    with torch.no_grad():
        for module in model.generator.modules():
            if hasattr(module, "dist_conv_w"):
                module.dist_conv_w.weight.normal_(0, 0.5)
                module.dist_conv_b.weight.normal_(0, 0.5)
    objective = CladeObjective(model.generator, None, None, config.loss)
    with torch.no_grad():
        given = objective.sample(batch, model.generator)
        batch.extras["dist"] = torch.zeros_like(batch.extras["dist"])
        zeroed = objective.sample(batch, model.generator)
    assert float((given - zeroed).abs().max()) > 1e-3, "the batch's offset map did not reach the generator"


def test_inference_computes_the_offsets_from_the_label_map() -> None:
    model = random_model("clade-toy", TINY)
    generator = model.generator
    with torch.no_grad():
        for module in generator.modules():
            if hasattr(module, "dist_conv_w"):
                module.dist_conv_w.weight.normal_(0, 0.5)
                module.dist_conv_b.weight.normal_(0, 0.5)
    index, edges, _ = bench_inputs(model, 2)
    semantics = one_hot(index, 12, edges, torch.float32)
    expected_dist = torch.stack([torch.from_numpy(intra_class_offsets(i.numpy(), True, None)) for i in index])
    with torch.no_grad():
        derived = generator(semantics)
        given = generator(semantics, None, expected_dist)
        zero = generator(semantics, None, torch.zeros_like(expected_dist))
        fast = Pipeline(model, fast=True).generate(index, edges, None)
    assert derived.std() > 0.1 and (derived.abs() > 0.999).float().mean() < 0.3
    assert torch.equal(derived, given)
    assert float((derived - zero).abs().max()) > 1e-3
    assert float((fast - derived).abs().max()) < 1e-4


# -- export, config rules, presets -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("icpe", [False, True], ids=["clade", "icpe"])
def test_export_reproduces_pytorch(fmt: str, icpe: bool, tmp_path: Path) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    from spadekit.export import check_export, describe, example_inputs, export_model

    overrides = TINY if icpe else TINY + ["clade.icpe=false", "data.offsets=none"]
    model = random_model("clade-toy", overrides)
    with torch.no_grad():
        for module in model.generator.modules():
            if hasattr(module, "dist_conv_w"):
                module.dist_conv_w.weight.normal_(0, 0.5)
    inputs = example_inputs(model, model.output_size, batch=2, seed=1)
    with torch.no_grad():
        reference = model.generator(inputs[0], None, *inputs[1:])
    assert reference.std() > 0.1 and (reference.abs() > 0.999).float().mean() < 0.3
    path = export_model(model, fmt, tmp_path / f"clade.{fmt}")
    assert ("dist" in describe(model, model.output_size)["inputs"]) == icpe
    assert check_export(model, fmt, path) < 1e-4


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["clade.icpe=true", "data.offsets=none"], "data.offsets=normalized"),
        (["model.generator=spade"], "model.generator=clade"),
        (["data.offsets=sideways"], "data.offsets"),
    ],
)
def test_config_rules_name_the_field(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("clade-toy", overrides)


def test_full_presets_have_the_official_parameter_counts() -> None:
    from spadekit.methods import build_networks

    # Facts sheet §2.6 (official define_G, ngf 64), millions; D and E are SPADE's.
    expected = {"clade-cityscapes": 67.90, "clade-ade20k": 71.43, "clade-coco": 72.51, "clade-ade20k-outdoor": 71.43}
    for preset, count in expected.items():
        with torch.device("meta"):
            parts = build_networks(load_config(preset), init=False)
        assert round(sum(p.numel() for p in parts["generator"].parameters()) / 1e6, 2) == count, preset
        assert type(parts["discriminator"]).__name__ == "MultiscaleDiscriminator"
        with torch.device("meta"):
            icpe = build_networks(load_config(preset, ["clade.icpe=true", "data.offsets=normalized"]), init=False)
        assert icpe["generator"].use_dist


def test_the_official_opt_txt_gives_the_layout(tmp_path: Path) -> None:
    from spadekit.conversion import read_official_options

    (tmp_path / "opt.txt").write_text(
        "----------------- Options ---------------\n"
        "             aspect_ratio: 2.0                           \t[default: 1.0]\n"
        "                crop_size: 128                           \t[default: 256]\n"
        "   num_upsampling_layers: more                          \n"
        "  contain_dontcare_label: False                         \n"
        "                 label_nc: 7                             \t[default: 182]\n"
        "                     name: p1                            \n"
        "----------------- End -------------------\n"
    )
    options = read_official_options(tmp_path)
    assert options == {"aspect_ratio": 2.0, "crop_size": 128, "num_upsampling_layers": "more",
                       "contain_dontcare_label": False, "label_nc": 7, "name": "p1"}
    # A recorded case's checkpoint with its options as opt.txt instead of opt.json reads the same layout.
    case = CASES[0]
    opt = json.loads((case / "opt.json").read_text())
    keys = ("aspect_ratio", "crop_size", "num_upsampling_layers", "contain_dontcare_label", "label_nc", "no_instance")
    (tmp_path / "case").mkdir()
    (tmp_path / "case" / "opt.txt").write_text("".join(f"{k:>25}: {opt[k]}\t[default: x]\n" for k in keys if k in opt))
    (tmp_path / "case" / "latest_net_G.pth").write_bytes((case / "latest_net_G.pth").read_bytes())
    model = load_model(tmp_path / "case")
    io = safe_torch_load(case / "io.pt")
    assert model.config.method == "clade" and model.output_size == tuple(io["G_eval"].shape[-1:-3:-1])
    assert model.config.model.upsampling == opt.get("num_upsampling_layers", "normal")
