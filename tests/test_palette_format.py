"""The ``semantic-palette`` checkpoint format, data-driven over every official case: ``spadekit convert
semantic-palette`` gives a release model whose layouts (and image stage) are exactly those of the
official networks loaded directly, which the parity test compares with the official code; the
release reloads and ``to-semantic-palette`` writes the official files back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import fixture_cases
from spadekit.cli import main
from spadekit.conversion import detect_format
from spadekit.methods.palette.convert import load_official, options_from_official, read_state
from spadekit.methods.palette.pipeline import PalettePipeline
from spadekit.release import load_model

CASES = fixture_cases("peers", "semantic_palette")


def overrides_for(case: Path) -> list[str]:
    """What the weights cannot tell, from the case's official options, as --set overrides."""
    opts = json.loads((case / "opt.json").read_text())
    ours = options_from_official(opts["seg_generator"])
    g = ours["generator"]
    sets = [f"palette.joint_type={g['joint_type']}", f"palette.activation={g['activation']}",
            f"palette.conditional={str(g['conditional']).lower()}", f"palette.filter_small={str(g['filter_small']).lower()}"]
    img = opts.get("img_generator") or {}
    if "width_size" in img:
        sets += [f"palette.image_width={img['width_size']}", f"palette.image_upsampling={img.get('num_upsampling_layers', 'normal')}"]
    return sets


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_converted_model_generates_the_official_layouts(case: Path, tmp_path: Path):
    assert detect_format(case).name == "semantic-palette"
    out = tmp_path / "model"
    args = ["convert", "semantic-palette", str(case), "--out", str(out)]
    for item in overrides_for(case):
        args += ["--set", item]
    assert main(args) == 0
    model = load_model(out)
    raw = json.loads((case / "opt.json").read_text())
    opts, img = options_from_official(raw["seg_generator"]), raw.get("img_generator") or {}
    official = load_official(case, res=opts["res"], image_width=img.get("width_size"),
                             image_upsampling=img.get("num_upsampling_layers", "normal"), **opts["generator"])
    io = torch.load(case / "io.pt", weights_only=True)
    z, palette = io["z"], io.get("sem_cond")
    with torch.no_grad():
        ours = model.generator(z, palette, model.generator.res)[-1].sem_seg
        theirs = official.layout_generator(z, palette)[-1].sem_seg
    assert model.generator.res == opts["res"] and torch.equal(ours, theirs)
    assert (model.discriminator is not None) == (official.layout_discriminator is not None)
    assert not model.extras["mixture"].fitted, "the official mixture is a pickle and is never read"
    # The pipeline runs the same generator at the same stage.
    pipe = PalettePipeline(model)
    assert pipe.res == opts["res"] and pipe.layout_size == (opts["res"] * model.generator.aspect_ratio, opts["res"])
    if official.image_generator is not None:
        image = model.method.image_stage(model)
        layout = io["G_final_sem_seg"]
        official.image_generator.eval()
        with torch.no_grad():
            torch.testing.assert_close(image.generator.eval()(layout), official.image_generator(layout), rtol=0, atol=0)
        assert pipe.image is not None and pipe.size == image.output_size


@pytest.mark.parametrize("case", CASES[:2], ids=[c.name for c in CASES[:2]])
def test_to_semantic_palette_writes_the_official_files(case: Path, tmp_path: Path):
    args = ["convert", "semantic-palette", str(case), "--out", str(tmp_path / "model")]
    for item in overrides_for(case):
        args += ["--set", item]
    assert main(args) == 0
    assert main(["convert", "to-semantic-palette", str(tmp_path / "model"), "--out", str(tmp_path / "back")]) == 0
    for label in ("seg_g", "seg_d", "img_g"):
        [original] = sorted(case.glob(f"{label}_net_*.pth"))
        [written] = sorted((tmp_path / "back").glob(f"{label}_net_*.pth"))
        a, b = read_state(original), read_state(written)
        assert list(a) == list(b), f"{label}: keys or their order differ"
        assert all(torch.equal(a[k], b[k]) for k in a), f"{label}: values differ"
    assert (tmp_path / "back" / next(case.glob("seg_g_net_*.pth")).name).is_file(), "named after the stage, as the official trainer"


def test_a_preset_of_another_method_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["convert", "semantic-palette", str(CASES[0]), "--preset", "toy", "--out", str(tmp_path / "m")]) == 2
    assert "not a palette preset" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
