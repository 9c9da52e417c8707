"""The official run options (opt.txt / JSON) become the spadekit settings they mean."""

from __future__ import annotations

import json

import pytest

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.errors import ConfigError
from spadekit.official_options import official_overrides, official_preset, read_official_options, unrecognised_options

# opt.txt exactly as the official BaseOptions.save_options lays it out ('{:>25}: {:<30}{}').
OPT_TXT_ROWS = [
    ("aspect_ratio", "2.0", "1.0"), ("batchSize", "16", "1"), ("beta1", "0.5", "0.0"), ("beta2", "0.999", "0.9"),
    ("checkpoints_dir", "./checkpoints", None), ("contain_dontcare_label", "False", None), ("crop_size", "512", "256"),
    ("dataset_mode", "cityscapes", "coco"), ("gan_mode", "ls", "hinge"), ("gpu_ids", "0,1", "0"),
    ("init_type", "xavier", None), ("label_nc", "35", "182"), ("lambda_feat", "5.0", "10.0"), ("lambda_kld", "0.05", None),
    ("lambda_vgg", "10.0", None), ("load_size", "512", "1024"), ("lr", "0.0004", "0.0002"), ("n_layers_D", "3", "4"),
    ("name", "my run", "label2coco"), ("ndf", "32", "64"), ("netD", "multiscale", None), ("netD_subarch", "n_layer", None),
    ("netG", "spade", None), ("ngf", "48", "64"), ("niter", "100", "50"), ("niter_decay", "100", "0"),
    ("no_TTUR", "True", "False"), ("no_flip", "False", None), ("no_ganFeat_loss", "True", "False"),
    ("no_instance", "False", None), ("no_vgg_loss", "True", "False"), ("norm_D", "spectralsync_batch", "spectralinstance"),
    ("norm_E", "instance", "spectralinstance"), ("norm_G", "spadebatch5x5", "spectralinstance"), ("num_D", "3", "2"),
    ("num_upsampling_layers", "more", "normal"), ("output_nc", "3", None), ("preprocess_mode", "fixed", "scale_width_and_crop"),
    ("semantic_nc", "36", None), ("use_vae", "True", "False"), ("z_dim", "128", "256"),
]


def opt_txt() -> str:
    lines = ["----------------- Options ---------------"]
    for key, value, default in OPT_TXT_ROWS:
        comment = f"\t[default: {default}]" if default is not None else ""
        lines.append("{:>25}: {:<30}{}".format(key, value, comment))
    return "\n".join(lines + ["----------------- End -------------------"]) + "\n"


def test_opt_txt_reads_back_typed_values(tmp_path):
    path = tmp_path / "opt.txt"
    path.write_text(opt_txt())
    opt = read_official_options(path)
    assert opt["aspect_ratio"] == 2.0 and opt["batchSize"] == 16 and opt["no_TTUR"] is True and opt["use_vae"] is True
    assert opt["name"] == "my run" and opt["gpu_ids"] == "0,1" and opt["norm_G"] == "spadebatch5x5"
    assert len(opt) == len(OPT_TXT_ROWS)
    assert unrecognised_options(opt) == []
    assert unrecognised_options({**opt, "my_fork_option": 1}) == ["my_fork_option"]


def test_every_option_lands_where_it_belongs(tmp_path):
    path = tmp_path / "opt.txt"
    path.write_text(opt_txt())
    opt = read_official_options(path)
    assert official_preset(opt) == "cityscapes"
    cfg = load_config(official_preset(opt), official_overrides(opt))
    m, loss, data, train = cfg.model, cfg.loss, cfg.data, cfg.train
    assert (m.label_nc, m.contain_dontcare, m.use_instance, m.semantic_nc) == (35, False, True, 36)
    assert (m.ngf, m.ndf, m.width, m.aspect_ratio, m.upsampling, m.output_size) == (48, 32, 512, 2.0, "more", (512, 256))
    assert (m.norm_G, m.spectral_G, m.spade_kernel) == ("batch", False, 5)
    assert (m.norm_D, m.spectral_D, m.norm_E, m.spectral_E) == ("syncbatch", True, "instance", False)
    assert (m.use_vae, m.z_dim, m.num_D, m.n_layers_D) == (True, 128, 3, 3)
    assert (loss.gan_mode, loss.lambda_feat, loss.lambda_vgg, loss.lambda_kld, loss.feature_matching) == ("ls", 5.0, 0.0, 0.05, False)
    assert (data.format, data.preprocess, data.load_size, data.crop_size, data.no_flip) == ("cityscapes", "fixed", 512, 512, False)
    # No TTUR: both networks at lr; the official code always takes beta1/beta2 from the options.
    assert (train.batch_size, train.epochs, train.epochs_decay, train.lr, train.ttur) == (16, 100, 100, 0.0004, False)
    assert (train.beta1, train.beta2) == (0.5, 0.999)


@pytest.mark.parametrize(
    "norm, expected",
    [
        ("spectralspadesyncbatch3x3", ("syncbatch", True, 3)),
        ("spectralspadeinstance3x3", ("instance", True, 3)),
        ("spadeinstance5x5", ("instance", False, 5)),
        ("spectralspadebatch7x7", ("batch", True, 7)),
    ],
)
def test_spade_norm_strings(norm, expected):
    m = load_config("custom", official_overrides({"norm_G": norm})).model
    assert (m.norm_G, m.spectral_G, m.spade_kernel) == expected


@pytest.mark.parametrize(
    "opt, words",
    [
        ({"netD": "n_layers"}, "netD='n_layers'"),
        ({"netD_subarch": "image"}, "netD_subarch"),
        ({"output_nc": 1}, "output_nc=1"),
        ({"norm_G": "spectralspadegroup3x3"}, "group"),
        ({"norm_G": "instance"}, "norm_G='instance'"),
        ({"norm_D": "spectrallayer"}, "norm_D='spectrallayer'"),
        ({"netG": "pix2pixhd", "resnet_kernel_size": 5}, "resnet_kernel_size=5"),
        ({"netG": "pix2pixhd", "norm_G": "spectralinstance"}, "pix2pixHD"),
        ({"D_steps_per_G": 2}, "D_steps_per_G=2"),
        ({"label_nc": 10, "no_instance": True, "contain_dontcare_label": False, "semantic_nc": 12}, "semantic_nc=12"),
    ],
)
def test_what_spadekit_cannot_build_is_refused_by_name(opt, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        official_overrides(opt)


def test_pix2pixhd_baseline_options():
    opt = {"netG": "pix2pixhd", "norm_G": "batch", "resnet_n_downsample": 3, "resnet_n_blocks": 6, "resnet_kernel_size": 3}
    m = load_config("custom", official_overrides(opt)).model
    assert (m.generator, m.norm_G, m.baseline_downsampling, m.baseline_blocks) == ("pix2pixhd", "batch", 3, 6)


def test_bad_options_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.txt"):
        read_official_options(tmp_path / "nope.txt")
    (tmp_path / "bad.json").write_text("{oops")
    with pytest.raises(ConfigError, match="bad.json: not valid JSON"):
        read_official_options(tmp_path / "bad.json")
    (tmp_path / "empty.txt").write_text("nothing here\n")
    with pytest.raises(ConfigError, match="empty.txt"):
        read_official_options(tmp_path / "empty.txt")


def test_convert_cli_takes_the_runs_options(tmp_path, parity_dir, capsys):
    case = parity_dir / "p2_custom_noinst"
    out = tmp_path / "model"
    assert main(["convert", "official", str(case), "--opt", str(case / "opt.json"), "--out", str(out)]) == 0
    assert "fixture_hw" in capsys.readouterr().err  # a note of the fixture's own, not an official option
    model = json.loads((out / "config.json").read_text())["config"]["model"]
    assert (model["label_nc"], model["width"], model["aspect_ratio"], model["upsampling"]) == (10, 256, 2.0, "most")
    # --set still wins over the options file.
    assert main(["convert", "official", str(case), "--opt", str(case / "opt.json"), "--set", "model.aspect_ratio=1",
                 "--out", str(tmp_path / "square")]) == 0
    assert json.loads((tmp_path / "square" / "config.json").read_text())["config"]["model"]["aspect_ratio"] == 1.0
