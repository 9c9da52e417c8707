"""Synthesis: the Pipeline API and ``spadekit synthesize`` (inputs, seeds, samples, errors, outputs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spadekit.cli import main
from spadekit.data.toy import TOY_CLASSES, TOY_COLORS, render_scene
from spadekit.errors import DataError
from spadekit.inference import Pipeline
from spadekit.release import SpadeModel

from helpers import lively_model

SIZE = 64


def toy_model(**options) -> SpadeModel:
    """A tiny random model with the toy classes and palette (VAE, encoder, instance channel by default)."""
    model = lively_model("toy", {"ngf": 8, "width": SIZE, "spade_hidden": 16, **options})
    model.config.data.class_names = list(TOY_CLASSES)
    model.config.data.colors = [list(c) for c in TOY_COLORS]
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return toy_model().save(tmp_path_factory.mktemp("models") / "toy")


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory) -> Path:
    """No VAE, no encoder: deterministic, cannot take a style image."""
    return toy_model(use_vae=False).save(tmp_path_factory.mktemp("models") / "plain")


@pytest.fixture(scope="module")
def pipeline(model_dir) -> Pipeline:
    return Pipeline.from_pretrained(model_dir)


def scene(seed: int = 3):
    return render_scene(seed, SIZE)


def colour_coded(label: np.ndarray) -> np.ndarray:
    return np.asarray(TOY_COLORS, dtype=np.uint8)[label]


def png_bytes(path: Path) -> bytes:
    return Path(path).read_bytes()


# ---------------------------------------------------------------- Python API


def test_pipeline_describes_the_model(pipeline):
    assert pipeline.size == (SIZE, SIZE)
    assert pipeline.class_names == list(TOY_CLASSES)
    assert pipeline.colors == [list(c) for c in TOY_COLORS]
    assert pipeline.has_encoder and pipeline.uses_latent
    assert pipeline.fast


def test_inputs_as_pil_array_tensor_and_colours_agree(pipeline):
    s = scene()
    inputs = [
        Image.fromarray(s.label),  # mode L id map
        s.label,  # (H, W) array
        torch.from_numpy(s.label.astype(np.int64)),  # (H, W) tensor
        Image.fromarray(colour_coded(s.label)),  # colour-coded picture
        colour_coded(s.label),  # colour-coded array
    ]
    for item in inputs:
        assert torch.equal(pipeline.labels_from_image(item), torch.from_numpy(s.label.astype(np.int64)))
    out = pipeline(inputs, s.instance, seed=1, output="tensor")
    assert out.shape == (5, 3, SIZE, SIZE) and out.dtype == torch.float32
    assert -1 <= out.min() and out.max() <= 1 and out.std() > 0.05
    assert (out - out[0]).abs().max() < 1e-4  # the same map, however it came in


def test_batched_call_equals_single_calls_and_samples_are_ordered(pipeline):
    a, b = scene(1), scene(2)
    batch = pipeline([a.label, b.label], [a.instance, b.instance], seed=7, num_samples=2, output="tensor")
    assert batch.shape == (4, 3, SIZE, SIZE)
    single_b = pipeline(b.label, b.instance, seed=7, num_samples=2, output="tensor")
    assert (batch[2:] - single_b).abs().max() < 1e-4  # batch size changes float summation order only
    assert (batch[0] - batch[1]).abs().max() > 0.05  # samples of one map differ (seeds 7 and 8)


def test_same_seed_same_bytes_other_seed_differs(pipeline):
    s = scene()
    first = pipeline(s.label, s.instance, seed=11)[0]
    again = pipeline(s.label, s.instance, seed=11)[0]
    other = pipeline(s.label, s.instance, seed=12)[0]
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()
    assert first.size == (SIZE, SIZE) and first.mode == "RGB"


def test_maps_are_resized_to_the_model_size(pipeline):
    s = render_scene(5, SIZE // 2)
    small = pipeline(s.label, s.instance, seed=0, output="tensor")
    # Nearest upscaling by 2 at pixel centres = every pixel repeated twice.
    label = np.repeat(np.repeat(s.label, 2, 0), 2, 1)
    instance = np.repeat(np.repeat(s.instance, 2, 0), 2, 1)
    big = pipeline(label, instance, seed=0, output="tensor")
    assert small.shape == (1, 3, SIZE, SIZE)
    assert (small - big).abs().max() < 1e-4


def test_instances_and_styles_steer_the_image(pipeline):
    s, other = scene(3), scene(4)
    with_instances = pipeline(s.label, s.instance, seed=0, output="tensor")
    boundaries_only = pipeline(s.label, None, seed=0, output="tensor")
    assert (with_instances - boundaries_only).abs().max() > 1e-3
    style_a = pipeline(s.label, s.instance, style=Image.fromarray(s.image), seed=0, output="tensor")
    style_a2 = pipeline(s.label, s.instance, style=s.image, seed=0, output="tensor")
    style_b = pipeline(s.label, s.instance, style=Image.fromarray(other.image), seed=0, output="tensor")
    assert torch.equal(style_a, style_a2)
    assert (style_a - style_b).abs().max() > 1e-3


def test_label_errors_name_the_source(pipeline):
    bad = np.full((SIZE, SIZE), 3, np.uint8)
    bad[0, 0] = 40
    with pytest.raises(DataError, match=r"^my map: label id\(s\) 40 not known"):
        pipeline.labels_from_image(bad, source="my map")
    with pytest.raises(DataError, match="no don't-care class"):
        pipeline.labels_from_image(np.full((4, 4), 255, np.uint8), source="x")
    rgb = colour_coded(np.zeros((8, 8), np.int64))
    rgb[2, 2] = (1, 2, 3)
    with pytest.raises(DataError, match=r"^painted: 1 colour\(s\) not in the palette: \(1, 2, 3\)"):
        pipeline.labels_from_image(rgb, source="painted")


def test_dontcare_ids_and_16_bit_maps(tmp_path):
    model = toy_model(contain_dontcare=True, use_vae=False, use_instance=False)
    pipe = Pipeline(model)
    label = np.zeros((SIZE, SIZE), np.uint16)
    label[:, SIZE // 2 :] = 255
    Image.fromarray(label).save(tmp_path / "l16.png")  # 16-bit PNG (mode I;16)
    ids = pipe.labels_from_image(tmp_path / "l16.png")
    assert ids.dtype == torch.int64 and set(ids.unique().tolist()) == {0, 255}
    as_255 = pipe(ids, output="tensor")
    as_index = pipe(ids.masked_fill(ids == 255, 12), output="tensor")  # don't-care channel index = label_nc
    assert torch.equal(as_255, as_index)


def test_style_without_encoder_is_refused(plain_dir):
    pipe = Pipeline.from_pretrained(plain_dir)
    s = scene()
    with pytest.raises(DataError, match="no style encoder"):
        pipe(s.label, style=s.image)
    # Deterministic model: the seed changes nothing.
    assert torch.equal(pipe(s.label, seed=1, output="tensor"), pipe(s.label, seed=2, output="tensor"))


# ---------------------------------------------------------------- command line


def write_inputs(folder: Path, seeds=(3, 4)) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for seed in seeds:
        s = scene(seed)
        Image.fromarray(s.label).save(folder / f"ids{seed}.png")
        Image.fromarray(colour_coded(s.label)).save(folder / f"rgb{seed}.png")
        Image.fromarray(s.instance).save(folder / f"inst{seed}.png")
        Image.fromarray(s.image).save(folder / f"photo{seed}.png")
        paths[seed] = folder
    return paths


def test_cli_colour_coded_and_id_maps_give_the_same_image(tmp_path, model_dir):
    write_inputs(tmp_path / "in")
    for kind in ("ids", "rgb"):
        code = main(["synthesize", "--model", str(model_dir), "--labels", str(tmp_path / "in" / f"{kind}3.png"),
                     "--instances", str(tmp_path / "in" / "inst3.png"), "--seed", "4", "--out", str(tmp_path / kind)])
        assert code == 0
    assert png_bytes(tmp_path / "ids" / "ids3.png") == png_bytes(tmp_path / "rgb" / "rgb3.png")


def test_cli_samples_seeds_size_and_contact_sheet(tmp_path, model_dir):
    write_inputs(tmp_path / "in")
    labels = tmp_path / "labels"
    labels.mkdir()
    for seed in (3, 4):
        (labels / f"scene{seed}.png").write_bytes((tmp_path / "in" / f"ids{seed}.png").read_bytes())
    args = ["synthesize", "--model", str(model_dir), "--labels", str(labels), "--num-samples", "3", "--seed", "9",
            "--style", str(tmp_path / "in" / "photo4.png")]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b"), "--size", "96x80"]) == 0
    names = [f"scene{s}_{k}.png" for s in (3, 4) for k in range(3)]
    for name in names:
        assert png_bytes(tmp_path / "a" / name)  # written
    samples = [png_bytes(tmp_path / "a" / f"scene3_{k}.png") for k in range(3)]
    assert len(set(samples)) == 3  # different seeds, different images
    assert main(args + ["--out", str(tmp_path / "c")]) == 0
    assert all(png_bytes(tmp_path / "c" / n) == png_bytes(tmp_path / "a" / n) for n in names)  # same seed, same bytes
    assert Image.open(tmp_path / "b" / "scene3_0.png").size == (96, 80)
    html = (tmp_path / "a" / "index.html").read_text()
    for name in names + ["sheet/scene3_label.png", "sheet/style.png"]:
        assert f'src="{name}"' in html
        assert (tmp_path / "a" / name).is_file()
    label_sheet = np.asarray(Image.open(tmp_path / "a" / "sheet" / "scene3_label.png"))
    assert np.array_equal(label_sheet, colour_coded(scene(3).label))


def test_cli_instance_folder_is_paired_by_name(tmp_path, model_dir):
    write_inputs(tmp_path / "in")
    (tmp_path / "labels").mkdir()
    (tmp_path / "insts").mkdir()
    (tmp_path / "labels" / "x.png").write_bytes((tmp_path / "in" / "ids3.png").read_bytes())
    (tmp_path / "insts" / "x.png").write_bytes((tmp_path / "in" / "inst3.png").read_bytes())
    assert main(["synthesize", "--model", str(model_dir), "--labels", str(tmp_path / "labels"),
                 "--instances", str(tmp_path / "insts"), "--out", str(tmp_path / "a")]) == 0
    assert main(["synthesize", "--model", str(model_dir), "--labels", str(tmp_path / "in" / "ids3.png"),
                 "--instances", str(tmp_path / "in" / "inst3.png"), "--out", str(tmp_path / "b")]) == 0
    assert png_bytes(tmp_path / "a" / "x.png") == png_bytes(tmp_path / "b" / "ids3.png")


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    folder = tmp_path / "bad"
    folder.mkdir()
    unknown = np.full((SIZE, SIZE), 2, np.uint8)
    unknown[5:9, 5:9] = 77
    Image.fromarray(unknown).save(folder / "unknown_id.png")
    rgb = colour_coded(scene().label)
    rgb[0, 0] = (12, 34, 56)
    Image.fromarray(rgb).save(folder / "odd_colour.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return {
        "unknown id": (folder / "unknown_id.png", "label id(s) 77 not known"),
        "colour": (folder / "odd_colour.png", "(12, 34, 56)"),
        "unreadable": (folder / "broken.png", "not a readable image"),
    }


@pytest.mark.parametrize("case", ["unknown id", "colour", "unreadable"])
def test_cli_bad_label_file_names_it_and_writes_nothing(tmp_path, model_dir, capsys, case):
    path, message = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    code = main(["synthesize", "--model", str(model_dir), "--labels", str(path), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {path}: ") and message in err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.rglob("*.png"))


def test_cli_folder_with_one_bad_file_writes_nothing(tmp_path, model_dir, capsys):
    write_inputs(tmp_path / "in")
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a_good.png").write_bytes((tmp_path / "in" / "ids3.png").read_bytes())
    bad, _ = _bad_inputs(tmp_path)["unknown id"]
    (labels / "b_bad.png").write_bytes(bad.read_bytes())
    code = main(["synthesize", "--model", str(model_dir), "--labels", str(labels), "--out", str(tmp_path / "out")])
    assert code == 2
    assert str(labels / "b_bad.png") in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.png"))


def test_cli_style_without_encoder_names_the_style_file(tmp_path, plain_dir, capsys):
    write_inputs(tmp_path / "in")
    style = tmp_path / "in" / "photo4.png"
    code = main(["synthesize", "--model", str(plain_dir), "--labels", str(tmp_path / "in" / "ids3.png"),
                 "--style", str(style), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith(f"error: {style}: ") and "no style encoder" in err
    assert not (tmp_path / "out").exists()


def test_cli_missing_inputs_and_models(tmp_path, model_dir, capsys):
    assert main(["synthesize", "--model", str(model_dir), "--labels", str(tmp_path / "nope.png"), "--out", str(tmp_path / "o")]) == 2
    assert f"{tmp_path / 'nope.png'}: file not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["synthesize", "--model", str(model_dir), "--labels", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "no label maps found" in capsys.readouterr().err
    assert main(["synthesize", "--model", str(tmp_path / "no_model"), "--labels", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no such model directory or bundled model" in capsys.readouterr().err


def test_cli_reads_official_checkpoints_with_a_preset(tmp_path, plain_dir):
    from spadekit.convert import export_official
    from spadekit.release import load_model

    write_inputs(tmp_path / "in")
    model = load_model(plain_dir)
    export_official(model, tmp_path / "official")
    label = str(tmp_path / "in" / "ids3.png")
    # The toy preset gives the layout the weights cannot tell; widths come from the weights.
    pipe = Pipeline.from_pretrained(tmp_path / "official", preset="toy", overrides=["model.width=64", "model.use_vae=false"])
    released = Pipeline.from_pretrained(plain_dir)
    assert torch.equal(pipe(label, output="tensor"), released(label, output="tensor"))
