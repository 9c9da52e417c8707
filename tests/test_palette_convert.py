"""Official Semantic Palette checkpoints: finding files by the official naming, inferring the
structure, strict loads with clear errors, and writing files back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from conftest import fixture_path
from spadekit.errors import CheckpointError, ConfigError
from spadekit.methods.palette.convert import (
    export_official,
    find_checkpoints,
    infer_layout_discriminator,
    infer_layout_generator,
    load_official,
    options_from_official,
    read_state,
)
from spadekit.methods.palette.layout_discriminator import LayoutDiscriminator
from spadekit.methods.palette.layout_generator import LayoutGenerator

PUBLIC = ("peers", "semantic_palette", "p1_celeba_like_res64_affine_joints2_img")


@pytest.fixture
def public() -> Path:
    return fixture_path(*PUBLIC)


def test_public_case_structure_is_inferred(public: Path):
    g_state = read_state(public / "seg_g_net_64.pth")
    g = infer_layout_generator(g_state, public / "seg_g_net_64.pth")
    assert g == {"num_semantics": 19, "widths": [24] * 6, "aspect_ratio": 1, "joints_per_block": 2, "in_features": 27, "affine": True}
    d = infer_layout_discriminator(read_state(public / "seg_d_net_64.pth"), public / "seg_d_net_64.pth")
    assert d == {"num_semantics": 19, "widths": [24] * 6, "final_width": 24, "palette_input": False}
    loaded = load_official(public)
    assert loaded.layout_generator.res == 64 and loaded.layout_generator.latent_dim == 8
    assert loaded.layout_generator.joint_type == "affine"
    assert loaded.image_generator is not None and loaded.image_generator.semantic_nc == 19
    assert {k: p.name for k, p in loaded.files.items()} == {
        "layout_generator": "seg_g_net_64.pth",
        "layout_discriminator": "seg_d_net_64.pth",
        "image_generator": "img_g_net_7.pth",
    }


def test_files_are_found_by_the_official_pattern(public: Path, tmp_path: Path):
    for name in ("seg_g_net_64.pth", "seg_d_net_64.pth", "img_g_net_7.pth"):
        shutil.copy(public / name, tmp_path / name)
    shutil.copy(public / "seg_g_net_64.pth", tmp_path / "seg_g_latest_net_5000.pth")
    shutil.copy(public / "img_g_net_7.pth", tmp_path / "img_g_net_12.pth")
    (tmp_path / "notes_seg_g_net.txt").write_text("not a checkpoint")
    found = find_checkpoints(tmp_path)
    assert sorted(found["seg_g"]) == [64, 5000] and sorted(found["img_g"]) == [7, 12]
    loaded = load_official(tmp_path)
    assert loaded.files["layout_generator"].name == "seg_g_latest_net_5000.pth"
    # n = 5000 is an iteration, not a resolution: the generator runs at its largest (128).
    assert loaded.layout_generator.res == 128
    assert loaded.files["image_generator"].name == "img_g_net_12.pth"
    assert load_official(tmp_path, seg_n=64, img_n=7).files["image_generator"].name == "img_g_net_7.pth"
    with pytest.raises(CheckpointError, match=r"no seg_g_net_32.pth \(found seg_g numbers: 64, 5000\)"):
        load_official(tmp_path, seg_n=32)


def test_missing_wrong_and_corrupt_files(public: Path, tmp_path: Path):
    with pytest.raises(CheckpointError, match="no layout generator checkpoint"):
        load_official(tmp_path)
    shutil.copy(public / "seg_d_net_64.pth", tmp_path / "seg_g_net_64.pth")
    with pytest.raises(CheckpointError, match=r"seg_g_net_64.pth: not a Semantic Palette layout generator checkpoint \(no 'blocks.0.fc1.weight'\)"):
        load_official(tmp_path)
    (tmp_path / "seg_g_net_64.pth").write_bytes((public / "seg_g_net_64.pth").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="seg_g_net_64.pth: corrupt"):
        load_official(tmp_path)
    state = read_state(public / "seg_g_net_64.pth")
    del state["blocks.3.conv2.bias"]
    torch.save(state, tmp_path / "seg_g_net_64.pth")
    with pytest.raises(CheckpointError, match=r"missing key.*blocks.3.conv2.bias"):
        load_official(tmp_path)


def test_tied_copies_must_agree(public: Path, tmp_path: Path):
    state = read_state(public / "seg_g_net_64.pth")
    state["blocks.2.cond_joint.assisted_blocks.1.to_mask.sem_conv.weight"] = state["blocks.2.cond_joint.assisted_blocks.1.to_mask.sem_conv.weight"] + 1
    torch.save(state, tmp_path / "seg_g_net_64.pth")
    with pytest.raises(CheckpointError, match="differs from blocks.2.cond_joint.to_mask.sem_conv.weight"):
        load_official(tmp_path)


def test_joint_type_contradicting_the_weights(public: Path):
    with pytest.raises(CheckpointError, match="affine, not 'bias'"):
        load_official(public, joint_type="bias")


def test_mismatched_critic_is_refused(public: Path, tmp_path: Path):
    shutil.copy(public / "seg_g_net_64.pth", tmp_path / "seg_g_net_64.pth")
    widths, final = [8] * 4, 8
    torch.save(LayoutDiscriminator(7, widths, final).state_dict(), tmp_path / "seg_d_net_64.pth")
    with pytest.raises(CheckpointError, match="critic for 7 classes up to 32 does not match"):
        load_official(tmp_path)


def test_export_round_trip_writes_the_official_keys_in_order(public: Path, tmp_path: Path):
    loaded = load_official(public)
    written = export_official(tmp_path, loaded.layout_generator, loaded.layout_discriminator, loaded.image_generator, img_n=7)
    assert [p.name for p in written] == ["seg_g_net_64.pth", "seg_d_net_64.pth", "img_g_net_7.pth"]
    for name in ("seg_g_net_64.pth", "seg_d_net_64.pth", "img_g_net_7.pth"):
        ours, theirs = torch.load(tmp_path / name, weights_only=True), torch.load(public / name, weights_only=True)
        assert list(ours) == list(theirs), f"{name}: keys or order differ"
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    again = load_official(tmp_path)
    z, p = torch.randn(2, 8), torch.softmax(torch.randn(2, 19), 1)
    with torch.no_grad():
        assert torch.equal(again.layout_generator.layout(z, p), loaded.layout_generator.layout(z, p))


def test_patched_widths_and_other_shapes_round_trip(tmp_path: Path):
    g = LayoutGenerator(6, 3, [20, 12, 9, 7], aspect_ratio=2, joints_per_block=3, joint_type="linear")
    d = LayoutDiscriminator(6, [11, 9, 13, 10], 14, aspect_ratio=2, palette_input=True)
    export_official(tmp_path, g, d)
    loaded = load_official(tmp_path, joint_type="linear")
    assert loaded.layout_generator.widths == [20, 12, 9, 7] and loaded.layout_generator.aspect_ratio == 2
    assert loaded.layout_generator.joints_per_block == 3 and loaded.layout_generator.latent_dim == 3
    assert loaded.layout_discriminator.widths == [11, 9, 13, 10] and loaded.layout_discriminator.palette_input


def test_options_from_official_opt(public: Path):
    import json

    seg = json.loads((public / "opt.json").read_text())["seg_generator"]
    ours = options_from_official(seg)
    assert ours["generator"] == {"joint_type": "affine", "activation": "assisted", "conditional": True, "filter_small": False}
    assert ours["objective"]["intermediate"] and ours["objective"]["entropy"] and ours["objective"]["spread"]
    assert not ours["objective"]["recover"] and ours["res"] == 64 and ours["soft_real"]
    for change, message in [({"panoptic": True}, "panoptic"), ({"seg_type": "completor"}, "completor"), ({"things_stuff": True}, "things_stuff")]:
        with pytest.raises(ConfigError, match=message):
            options_from_official({**seg, **change})
