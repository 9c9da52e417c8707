"""BachGAN through the framework: its items (boxes, retrieval, flips), batches, the memory bank
command, training and exact resume, the release model's bank, synthesis from boxes (Pipeline and
CLI, bad boxes included), evaluation, and the official checkpoint format through `spadekit convert`."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import fixture_cases
from spadekit.cli import main
from spadekit.config import load_config
from spadekit.data.toy import render_scene, scene_seed
from spadekit.errors import ConfigError, DataError
from spadekit.inference import Pipeline, to_pil
from spadekit.methods import get_method
from spadekit.methods.bachgan import data as bachgan_data
from spadekit.methods.bachgan.boxes import Box, draw_box_layout
from spadekit.methods.bachgan.extract import toy_boxes
from spadekit.methods.bachgan.method import fine_labels, prepare_batch
from spadekit.methods.bachgan.retrieval import MemoryBank, compose_retrieved, content_hash
from spadekit.release import load_model
from spadekit.training.sampling import SeededSamples

TINY = list(get_method("bachgan").tiny_overrides)
CAR, TREE, SKY = 10, 9, 0


def tiny_config(*extra: str):
    return load_config("bachgan-toy", TINY + list(extra))


def lively(images: torch.Tensor) -> None:
    """Random-weight outputs used in a comparison must be neither flat nor saturated."""
    assert float(images.std()) > 0.02, "flat output: the comparison would prove nothing"
    assert float((images.abs() > 0.99).float().mean()) < 0.5, "saturated output"


def set_options(args: list[str]) -> list[str]:
    out = []
    for override in args:
        out += ["--set", override]
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A bachgan-toy model trained for 2 steps through the CLI (offline, bank built in memory), its
    generator then given livelier random weights."""
    run = tmp_path_factory.mktemp("bachgan") / "run"
    args = ["train", "--preset", "bachgan-toy", "--out", str(run), "--steps", "2", "--device", "cpu", "--no-progress",
            "--no-tensorboard", *set_options(TINY + ["model.norm_G=instance", "train.checkpoint_every=2", "train.log_every=1"])]
    assert main(args) == 0
    # Two steps leave the small initial weights (flat images); comparisons need lively outputs.
    model = load_model(run / "model")
    with torch.no_grad():
        for name, parameter in model.generator.named_parameters():
            if parameter.dim() > 1:
                gain = 0.05 if name.startswith("conv_img") else 1.0
                torch.nn.init.xavier_normal_(parameter, gain=gain, generator=torch.Generator().manual_seed(parameter.numel()))
    return model.save(run / "lively")


# ----------------------------------------------------------------------------------- items


def test_items_carry_boxes_and_retrieved_layouts_of_the_sample():
    config = tiny_config("data.preprocess=fixed")
    dataset = get_method("bachgan").open_data(config, "train", False, {})
    item = dataset[3]
    scene = render_scene(scene_seed(0, 3, "train"), 64)
    # The boxes are the scene's things, drawn as the official construction does.
    expected, _ = draw_box_layout(toy_boxes(scene.label, scene.instance), 12, 64, 64, background=0)
    assert torch.equal(item["box_layout"].float(), expected) and expected[[7, 9, 10, 11]].sum() > 0
    # The retrieved layouts are bank entries (other scenes), never the sample itself.
    chosen = item["retrieved_index"].tolist()
    assert len(chosen) == 3 and 3 not in chosen
    for i, layout in zip(chosen, item["retrieved"]):
        assert torch.equal(layout, torch.from_numpy(render_scene(scene_seed(0, i, "train"), 64).label).long())
    # Without the exclusion the sample's own layout would rank first (its boxes fit it best).
    assert dataset.bank.retrieve(toy_boxes(scene.label, scene.instance), 64, 64, k=1)[0].index == 3


def test_training_flips_move_boxes_and_retrieved_layouts_with_the_image():
    config = tiny_config("data.preprocess=fixed")
    dataset = get_method("bachgan").open_data(config, "train", True, {})
    seeded = SeededSamples(dataset, 0)
    items = [seeded[(epoch, 5)] for epoch in range(8)]
    flipped = [torch.equal(it["image"], items[0]["image"].flip(-1)) for it in items]
    same = [torch.equal(it["image"], items[0]["image"]) for it in items]
    assert any(flipped) and all(f or s for f, s in zip(flipped, same)), "expected both flip outcomes over 8 epochs"
    a, b = items[0], items[flipped.index(True)]
    assert torch.equal(a["retrieved_index"], b["retrieved_index"]), "retrieval depends on the sample, not its flip"
    for key in ("label", "box_layout", "box_inside", "retrieved"):
        assert torch.equal(b[key], a[key].flip(-1)), f"{key} did not flip with the image"
    again = SeededSamples(dataset, 0)[(flipped.index(True), 5)]
    assert all(torch.equal(again[k], b[k]) for k in ("image", "retrieved", "box_layout")), "items must be a function of (seed, epoch, index)"


def test_training_crops_cut_the_retrieved_layouts_where_they_cut_the_photo():
    config = tiny_config("data.no_flip=true")  # resize 64 -> 72, random 64 crop
    dataset = get_method("bachgan").open_data(config, "train", True, {})
    item = SeededSamples(dataset, 0)[(0, 2)]
    scene = render_scene(scene_seed(0, 2, "train"), 64)
    big = np.asarray(Image.fromarray(scene.label).resize((72, 72), Image.Resampling.NEAREST))
    offsets = [(x, y) for x in range(9) for y in range(9) if np.array_equal(big[y : y + 64, x : x + 64], item["label"][0].numpy())]
    assert len(offsets) == 1, "the crop of this scene should be unambiguous"
    x, y = offsets[0]
    for i, layout in zip(item["retrieved_index"].tolist(), item["retrieved"]):
        other = np.asarray(Image.fromarray(render_scene(scene_seed(0, i, "train"), 64).label).resize((72, 72), Image.Resampling.NEAREST))
        assert np.array_equal(layout.numpy(), other[y : y + 64, x : x + 64])


def test_prepare_batch_builds_the_generator_input_on_the_device():
    config = tiny_config()
    dataset = get_method("bachgan").open_data(config, "val", False, {})
    raw = torch.utils.data.default_collate([dataset[0], dataset[1]])
    batch = prepare_batch(raw, config, "cpu")
    assert batch.semantics.shape == (2, 4 * 12, 64, 64)
    assert torch.equal(batch.semantics[:, :12], raw["box_layout"].float())
    for n in range(2):
        expected = compose_retrieved(raw["retrieved"][n], raw["box_layout"][n].float(), raw["box_inside"][n], [7, 9, 10, 11])
        assert torch.equal(batch.semantics[n, 12:], expected)
    assert torch.equal(batch.extras["fine_label"], raw["label"][:, 0])


def test_fine_labels_shift_ade20k_ids_and_ignore_dont_care():
    config = load_config("bachgan-ade20k", ["model.width=64"])
    raw = torch.tensor([[[[0, 1, 5, 150]]]])
    assert fine_labels(raw, config).tolist() == [[[255, 0, 4, 149]]]
    assert fine_labels(torch.tensor([[[[0, 35 - 1]]]]), load_config("bachgan-cityscapes")).tolist() == [[[0, 34]]]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.use_instance=true"], "model.use_instance=false"),
        (["bachgan.foreground=[]"], "bachgan.foreground must list"),
        (["bachgan.foreground=[3,12]"], r"classes \[12\] are not among the model's 12 channels"),
        (["bachgan.background=12"], "bachgan.background=12"),
        (["model.generator=spade"], "model.generator=bachgan"),
        (["bachgan.label_channels=ade20k"], "contain_dontcare=true"),
        (["bachgan.num_retrieved=0"], "num_retrieved must be >= 1"),
    ],
)
def test_config_checks_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(*overrides)


# ----------------------------------------------------------------------------------- bank command


def test_index_command_writes_the_documented_bank(tmp_path, capsys):
    out = tmp_path / "bank.safetensors"
    common = ["bachgan", "index", "--preset", "bachgan-toy", "--no-progress",
              *set_options(["data.toy_scenes=6", "model.width=32", "data.crop_size=32", "data.load_size=36"])]
    assert main([*common, "--out", str(out)]) == 0
    assert "6 layouts of 12 classes at 32x32" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bank.safetensors"], "no temporary file may remain"
    bank = MemoryBank.load(out)
    assert bank.names == [f"toy:train/{i:06d}" for i in range(6)]
    for i in range(6):
        assert torch.equal(bank.labels[i].long(), torch.from_numpy(render_scene(scene_seed(0, i, "train"), 32).label).long())
    assert bank.content_hash == content_hash(bank.names, bank.labels, 12)
    assert bank.source["toy_scenes"] == 6 and bank.source["preset"] == "bachgan-toy"
    # --keep indexes a seeded fraction.
    assert main([*common, "--keep", "0.5", "--out", str(tmp_path / "half.safetensors")]) == 0
    assert len(MemoryBank.load(tmp_path / "half.safetensors")) == 3


def test_index_command_errors(tmp_path, capsys):
    assert main(["bachgan", "index", "--preset", "toy", "--out", str(tmp_path / "b")]) == 2
    assert "give a BachGAN one" in capsys.readouterr().err
    assert main(["bachgan", "index", "--preset", "bachgan-toy", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["bachgan", "index", "--preset", "bachgan-cityscapes", "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "needs a dataset root" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


# ----------------------------------------------------------------------------------- training


def test_trained_model_carries_its_bank(trained):
    model = load_model(trained)
    assert set(model.assets) == {"bank.safetensors"}
    bank = MemoryBank.load(model.assets["bank.safetensors"])
    assert len(bank) == 8 and bank.names[0] == "toy:train/000000"
    assert json.loads((trained / "config.json").read_text())["assets"] == ["bank.safetensors"]


def test_a_given_bank_is_used_for_training_and_released(tmp_path):
    bank_path = tmp_path / "bank.safetensors"
    assert main(["bachgan", "index", "--preset", "bachgan-toy", "--out", str(bank_path), "--no-progress",
                 *set_options(TINY + ["data.toy_scenes=5"])]) == 0
    config = tiny_config(f"bachgan.bank={bank_path}")
    dataset = get_method("bachgan").open_data(config, "train", False, {})
    assert len(dataset.bank) == 5 and len(dataset) == 8  # 8 training scenes, retrieving from the 5 indexed
    from spadekit.training.setup import release_writer

    parts = get_method("bachgan").build_networks(config, True)
    model_dir = release_writer(config, dataset)(parts, tmp_path / "model", {})
    assert MemoryBank.load(model_dir / "bank.safetensors").content_hash == MemoryBank.load(bank_path).content_hash
    missing = tiny_config(f"bachgan.bank={tmp_path / 'nope.safetensors'}")
    with pytest.raises(DataError, match=r"nope\.safetensors: memory bank not found .*spadekit bachgan index"):
        get_method("bachgan").open_data(missing, "train", False, {})


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    from spadekit.training.setup import build_trainer

    extra = ["model.use_vae=true", "train.checkpoint_every=3", "train.log_every=1"]  # VAE: z from the RNG
    straight = build_trainer(tiny_config(*extra), tmp_path / "a", steps=6, progress=False, tensorboard=False, log=lambda _: None)
    straight.fit()
    bachgan_data._BUILT.clear()  # the resumed process builds its bank anew
    first = build_trainer(tiny_config(*extra), tmp_path / "b", steps=3, progress=False, tensorboard=False, log=lambda _: None)
    first.fit()
    bachgan_data._BUILT.clear()
    resumed = build_trainer(tiny_config(*extra), tmp_path / "b", steps=6, resume="auto", progress=False, tensorboard=False,
                            log=lambda _: None)
    assert resumed.step == 3
    resumed.fit()
    for name in ("generator", "discriminator", "encoder"):
        a, b = straight.networks[name].state_dict(), resumed.networks[name].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), f"{name} differs after resume"


def test_official_order_regenerates_fakes():
    from spadekit.methods.base import Batch

    config = tiny_config("train.regenerate_fakes=true")
    parts = get_method("bachgan").build_networks(config, True)
    objective = get_method("bachgan").build_objective(parts, config, None)
    semantics = (torch.rand(1, 48, 64, 64) > 0.5).float()
    batch = Batch(semantics, torch.rand(1, 3, 64, 64) * 2 - 1, {"fine_label": None})
    _, _, fake = objective.generator_losses(batch)
    with torch.no_grad():  # a changed generator: the regenerated fakes differ, so the D loss does
        for p in parts["generator"].parameters():
            p.add_(0.05 * torch.randn_like(p))
    reuse = objective.discriminator_losses(batch, fake)[0]
    regenerated = objective.discriminator_losses(batch, None)[0]
    assert not torch.allclose(reuse, regenerated)


# ----------------------------------------------------------------------------------- synthesis

SCENE = {"width": 640, "height": 640, "boxes": [
    {"class": "building", "box": [20, 100, 300, 420]},
    {"class": "tree", "box": [380, 150, 520, 470]},
    {"class": "car", "box": [120, 420, 330, 540]},
]}  # fmt: skip


def test_pipeline_from_boxes_retrieves_ranks_and_lets_the_user_choose(trained):
    pipe = Pipeline.from_pretrained(trained)
    assert pipe.takes_boxes and [n for _, n in pipe.box_conditioner.classes] == ["building", "tree", "car", "person"]
    result = pipe.from_boxes(SCENE, num_samples=2, seed=0, output="tensor")
    assert result.images.shape == (2, 3, 64, 64)
    lively(result.images)
    ranked = [m.index for m in result.candidates]
    assert [m.index for m in result.used[0]] == ranked[:3] and [m.index for m in result.used[1]] == ranked[3:6]
    assert not torch.equal(result.images[0], result.images[1]), "other backgrounds, other image"
    bank = MemoryBank.load(load_model(trained).assets["bank.safetensors"])
    for used, layouts in zip(result.used, result.layouts):
        assert all(torch.equal(layout, bank.labels[m.index].long()) for m, layout in zip(used, layouts))
    # The boxes were scaled from their 640x640 canvas to the model's 64x64.
    assert result.boxes[0] == Box(7, 2, 10, 30, 42)
    # Choosing: the named entries first, the best others after; every sample uses them.
    chosen = pipe.from_boxes(SCENE, choose=[ranked[5], ranked[4]], num_samples=2, seed=0, output="tensor")
    assert [m.index for m in chosen.used[0]] == [ranked[5], ranked[4], ranked[0]] == [m.index for m in chosen.used[1]]
    again = pipe.from_boxes(SCENE, num_samples=2, seed=0, output="tensor")
    assert torch.equal(again.images, result.images), "same request, same bytes"


def test_label_maps_are_read_as_the_boxes_of_their_objects(trained):
    pipe = Pipeline.from_pretrained(trained)
    label = torch.full((64, 64), SKY, dtype=torch.long)
    label[40:55, 10:30] = CAR
    label[5:30, 40:60] = TREE
    from_label = pipe(label, seed=0, output="tensor")
    from_boxes = pipe.from_boxes([Box(TREE, 40, 5, 60, 30), Box(CAR, 10, 40, 30, 55)], seed=0, output="tensor").images
    lively(from_label)
    assert torch.equal(from_label, from_boxes)


def test_box_errors_through_the_pipeline(trained, tmp_path):
    pipe = Pipeline.from_pretrained(trained)
    with pytest.raises(DataError, match="not drawn from boxes by this model"):
        pipe.from_boxes({"boxes": [{"class": "sky", "box": [0, 0, 5, 5]}]})
    with pytest.raises(DataError, match="choose: bank entry 99 does not exist"):
        pipe.from_boxes(SCENE, choose=[99])
    with pytest.raises(DataError, match="8 entries; 3 sample"):
        pipe.from_boxes(SCENE, num_samples=3)
    other = MemoryBank(torch.zeros(4, 8, 8, dtype=torch.uint8), torch.zeros(4, 5, dtype=torch.int64), list("abcd"), 5)
    with pytest.raises(DataError, match="has 5 classes, the model 12"):
        pipe.from_boxes(SCENE, bank=other)
    bare = tmp_path / "bare"
    shutil.copytree(trained, bare)
    (bare / "bank.safetensors").unlink()
    with pytest.raises(DataError, match=r"carries no memory bank: pass one \(--bank BANK"):
        Pipeline.from_pretrained(bare).from_boxes(SCENE)
    spade = Pipeline.from_pretrained("toy")
    with pytest.raises(DataError, match="takes label maps, not boxes"):
        spade.from_boxes(SCENE)


def test_synthesize_boxes_cli_writes_images_layouts_and_sheet(trained, tmp_path, capsys):
    scene = tmp_path / "street.json"
    scene.write_text(json.dumps(SCENE))
    out = tmp_path / "out"
    assert main(["synthesize", "--model", str(trained), "--boxes", str(scene), "--num-samples", "2", "--out", str(out),
                 "--device", "cpu", "--seed", "4"]) == 0
    record = json.loads((out / "street.json").read_text())
    expected = Pipeline.from_pretrained(trained).from_boxes(SCENE, num_samples=2, seed=4)
    for j in range(2):
        assert np.array_equal(np.asarray(Image.open(out / f"street_{j}.png")), np.asarray(expected.images[j]))
        files = record["samples"][j]["retrieved"]
        assert [f["index"] for f in files] == [m.index for m in expected.used[j]]
        for f, layout in zip(files, expected.layouts[j]):
            assert np.array_equal(np.asarray(Image.open(out / f["file"])), layout.numpy())
    sheet = (out / "index.html").read_text()
    assert "sheet/street_boxes.png" in sheet and "sheet/street_0_layout_2.png" in sheet and "street_1.png" in sheet
    assert (out / "sheet" / "street_boxes.png").is_file()
    # --choose is honoured and recorded
    assert main(["synthesize", "--model", str(trained), "--boxes", str(scene), "--choose", "5,6", "--out", str(tmp_path / "c"),
                 "--device", "cpu"]) == 0
    assert [f["index"] for f in json.loads((tmp_path / "c" / "street.json").read_text())["samples"][0]["retrieved"]][:2] == [5, 6]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"boxes": [', "not valid JSON"),
        ('{"boxes": [{"class": "dragon", "box": [0, 0, 10, 10]}]}', "unknown class 'dragon'"),
        ('{"boxes": [{"class": "car", "box": [0, 0, 100, 10]}]}', "lies outside the 64x64 image"),
        ('{"width": 100, "height": 100, "boxes": [{"class": "car", "box": [-5, 0, 10, 10]}]}', "lies outside the 100x100 image"),
        ('{"boxes": [{"class": "car", "box": [10, 10, 10, 20]}]}', "empty box"),
        ('{"boxes": [{"class": "car", "box": [0, 0, 5]}]}', "must be four numbers"),
        ('{"boxes": [{"box": [0, 0, 5, 5]}]}', "expected an object with 'class' and 'box'"),
        ('{"objects": []}', "no 'boxes' list"),
    ],
)
def test_bad_boxes_exit_2_and_write_nothing(trained, tmp_path, capsys, content, message):
    good = tmp_path / "boxes" / "a_good.json"
    good.parent.mkdir()
    good.write_text(json.dumps(SCENE))
    (tmp_path / "boxes" / "b_bad.json").write_text(content)
    out = tmp_path / "out"
    assert main(["synthesize", "--model", str(trained), "--boxes", str(good.parent), "--out", str(out), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert message in err and "b_bad.json" in err
    assert not out.exists(), "nothing may be written when an input is bad"


def test_synthesize_boxes_option_errors(trained, tmp_path, capsys):
    scene = tmp_path / "s.json"
    scene.write_text(json.dumps(SCENE))
    out = tmp_path / "out"
    cases = [
        (["--model", "toy", "--boxes", str(scene)], "takes label maps (--labels), not boxes"),
        (["--model", str(trained), "--boxes", str(scene), "--bank", str(tmp_path / "none.safetensors")], "memory bank not found"),
        (["--model", str(trained), "--boxes", str(scene), "--choose", "1,x"], "--choose must be comma-separated"),
        (["--model", str(trained), "--boxes", str(scene), "--num-samples", "3"], "3 sample(s) of 3 retrieved layouts need 9"),
        (["--model", str(trained), "--labels", str(scene), "--bank", str(scene)], "--bank and --choose go with --boxes"),
    ]
    for args, message in cases:
        assert main(["synthesize", *args, "--out", str(out), "--device", "cpu"]) == 2, args
        assert message in capsys.readouterr().err
        assert not out.exists()


# ----------------------------------------------------------------------------------- evaluation


def test_evaluate_synthesizes_from_each_items_boxes_and_retrieval(trained, tmp_path):
    from spadekit.evaluation.evaluate import evaluate

    saved = tmp_path / "images"
    report = evaluate(trained, metrics="miou,accuracy", max_images=3, batch_size=1, device="cpu", progress=False,
                      save_images=saved, overrides=["data.toy_scenes=8"])
    assert report["data"]["preset"] == "bachgan-toy" and report["protocol"]["toy_protocol"]
    assert 0 <= report["metrics"]["miou"] <= 1 and "BachGAN's input" in report["protocol"]["generation"]["input"]
    pipe = Pipeline.from_pretrained(trained)
    for i in range(3):  # the same image from the validation scene's boxes through the Pipeline
        scene = render_scene(scene_seed(0, i, "val"), 64)
        expected = pipe.from_boxes(toy_boxes(scene.label, scene.instance), seed=0).images[0]
        assert np.array_equal(np.asarray(Image.open(saved / f"{i:06d}.png")), np.asarray(expected)), i


# ----------------------------------------------------------------------------------- official format

CASES = fixture_cases("peers", "bachgan")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_convert_official_checkpoints_both_ways(case, tmp_path, capsys):
    from spadekit.methods.bachgan.convert import load_official, read_official

    opt = json.loads((case / "opt.json").read_text())
    official = tmp_path / "official"
    official.mkdir()
    for name in ("latest_net_G.pth", "latest_net_D.pth"):
        shutil.copy(case / name, official / name)
    preset = {"ade20k": "bachgan-ade20k", "cityscapes": "bachgan-cityscapes"}[opt["dataset_mode"]]
    size = [f"model.width={opt['crop_size']}", f"model.aspect_ratio={opt['aspect_ratio']}",
            f"model.upsampling={opt['num_upsampling_layers']}"]
    out = tmp_path / "model"
    assert main(["convert", "bachgan", str(official), "--out", str(out), *set_options(size)]) == 0
    model = load_model(out)
    assert model.config.method == "bachgan" and model.config.preset == preset
    reference = load_official(official, opt["crop_size"], float(opt["aspect_ratio"]), opt["num_upsampling_layers"])
    channels = reference.generator.in_channels
    semantics = (torch.rand(2, channels, model.output_size[1], model.output_size[0]) > 0.7).float()
    with torch.no_grad():  # train mode: batch statistics (the tiny fixture's running ones saturate everything)
        ours, theirs = model.generator.train()(semantics), reference.generator.train()(semantics)
    lively(theirs)
    assert torch.equal(ours, theirs)
    # Detected among the formats (before SPADE's, whose files have the same names).
    assert load_model(official, preset=preset, overrides=size).config.method == "bachgan"
    # Back: the official files, key for key and value for value (the unused layers included).
    back = tmp_path / "back"
    assert main(["convert", "to-bachgan", str(out), "--out", str(back)]) == 0
    for name in ("latest_net_G.pth", "latest_net_D.pth"):
        original, written = read_official(official / name), read_official(back / name)
        assert list(written) == list(original)
        assert all(torch.equal(written[k], original[k]) for k in original), name


def test_converting_a_bachgan_model_to_another_format_is_refused(trained, tmp_path, capsys):
    assert main(["convert", "to-oasis", str(trained), "--out", str(tmp_path / "x")]) == 2
    assert "needs an OASIS model" in capsys.readouterr().err


def test_dataset_helpers_cover_every_preset():
    for preset, instances in (("bachgan-toy", True), ("bachgan-cityscapes", True), ("bachgan-ade20k", False)):
        config = load_config(preset)
        assert bachgan_data.needs_instances(config.section("bachgan")) is instances
        assert not config.model.use_instance
    assert dataclasses.asdict(load_config("bachgan-ade20k").section("bachgan"))["label_channels"] == "ade20k"


def test_evaluate_measures_a_method_preset_with_its_datasets_segmenter(tmp_path):
    """bachgan-cityscapes is Cityscapes data: the paper's Cityscapes segmenter (DRN-D-105) is asked for."""
    from spadekit.errors import MissingWeightsError
    from spadekit.evaluation.evaluate import evaluate
    from spadekit.release import SpadeModel

    config = load_config("bachgan-cityscapes", ["model.width=128", "model.ngf=4", "model.ndf=4", "model.spade_hidden=4"])
    parts = get_method("bachgan").build_networks(config, True)
    model = SpadeModel.from_parts(config, {"generator": parts["generator"]}).save(tmp_path / "model")
    with pytest.raises(MissingWeightsError, match="drn-d-105 segmenter for cityscapes"):
        evaluate(model, metrics="miou", segmenter_weights=tmp_path / "drn.pth", data_root=tmp_path)


def test_torchscript_export_takes_the_composed_layouts(trained, tmp_path):
    from spadekit.export import export_model

    model = load_model(trained)
    out = export_model(model, "torchscript", tmp_path / "bachgan.pt")
    files = {"spadekit.json": ""}
    exported = torch.jit.load(str(out), _extra_files=files)
    assert json.loads(files["spadekit.json"])["inputs"]["semantics"] == ["N", 48, 64, 64]
    plan = Pipeline(model).box_conditioner.plan(SCENE)
    with torch.no_grad():
        expected = model.generator(plan.semantics)
        got = exported(plan.semantics)
    lively(expected)
    assert torch.allclose(got, expected, atol=1e-5)


def test_composed_layouts_show_what_the_generator_gets(trained):
    result = Pipeline.from_pretrained(trained).from_boxes(SCENE, seed=0)
    plan = Pipeline.from_pretrained(trained).box_conditioner.plan(SCENE)
    composed = result.composed(0)
    retrieved = plan.semantics[0, 12:].reshape(3, 12, 64, 64)
    for i in range(3):
        hot = retrieved[i].sum(0)
        # A pixel with one class in the generator's input shows it; one with none (a retrieved object) shows 255.
        assert torch.equal(composed[i] == 255, hot == 0)
        assert torch.equal(composed[i][hot == 1], retrieved[i].argmax(0)[hot == 1])
