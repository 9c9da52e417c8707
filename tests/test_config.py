"""Configs: every preset parses, overrides apply with types, bad values are named."""

from __future__ import annotations

import json

import pytest

from spadekit.cli import main
from spadekit.config import Config, config_from_dict, list_presets, load_config, parse_overrides
from spadekit.errors import ConfigError

PAPER = {  # semantic channels S of the paper's datasets (SPEC §3)
    "cityscapes": 36,
    "ade20k": 151,
    "ade20k-outdoor": 151,
    "coco": 184,
}


def test_every_shipped_preset_parses():
    presets = list_presets()
    assert {"cityscapes", "ade20k", "ade20k-outdoor", "coco", "custom", "toy"} <= set(presets)
    for name in presets:
        cfg = load_config(name)
        assert cfg.preset == name
        if name in PAPER:
            assert cfg.model.semantic_nc == PAPER[name]


def test_cityscapes_layout():
    cfg = load_config("cityscapes").model
    assert cfg.output_size == (512, 256) and cfg.latent_size == (8, 4) and cfg.upsampling == "more"


def test_dotted_overrides_are_typed():
    cfg = load_config("coco", ["model.ngf=32", "train.lr=1e-4", "model.use_vae=true", "data.root=/data/coco"])
    assert cfg.model.ngf == 32 and isinstance(cfg.model.ngf, int)
    assert cfg.train.lr == 1e-4
    assert cfg.model.use_vae is True
    assert cfg.data.root == "/data/coco"
    assert parse_overrides(["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


@pytest.mark.parametrize(
    "override,message",
    [
        (["model.ngf=abc"], "model.ngf must be an integer"),
        (["model.upsampling=huge"], "model.upsampling='huge' is not one of"),
        (["model.nope=1"], "unknown option(s) model.nope"),
        (["model.width=16"], "too small"),
        (["ngf=3"], "must be dotted"),
        (["loss.gan_mode=vanilla"], "loss.gan_mode"),
    ],
)
def test_bad_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config("coco", override)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'mars'"):
        load_config("mars")


def test_json_round_trip(tmp_path):
    cfg = load_config("toy", ["model.ngf=8"])
    cfg.save(tmp_path / "config.json")
    assert config_from_dict(json.loads((tmp_path / "config.json").read_text())) == cfg
    assert isinstance(cfg, Config)


def test_yaml_file_as_preset(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  label_nc: 7\n  width: 64\n")
    cfg = load_config(str(path))
    assert cfg.model.label_nc == 7 and cfg.preset == "mine"


def test_cli_list_shows_registry(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "spade" in out and "pix2pixhd" in out and "multiscale" in out and "coco" in out


def test_toy_preset_names_the_toy_world_classes():
    from spadekit.data.toy import TOY_CLASSES, TOY_COLORS

    cfg = load_config("toy")
    assert cfg.model.label_nc == len(TOY_CLASSES)
    assert cfg.data.class_names == list(TOY_CLASSES)
    assert cfg.data.colors == [list(map(int, c)) for c in TOY_COLORS]
