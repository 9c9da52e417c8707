"""Official OASIS checkpoint files: reading (options inferred from shapes), writing, clear errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from conftest import fixture_path
from spadekit.errors import CheckpointError
from spadekit.methods.oasis.convert import (
    find_official_files,
    infer_generator_options,
    load_official_oasis,
    official_state,
    write_official_oasis,
)
from spadekit.methods.oasis.generator import OasisGenerator

P1 = ("peers", "oasis", "p1_ade20klike_c10_64x64_noise3d")


@pytest.fixture
def p1() -> Path:
    return fixture_path(*P1)


def _eval_output(generator: OasisGenerator, semantics: torch.Tensor) -> torch.Tensor:
    generator.eval()
    torch.manual_seed(1)
    with torch.no_grad():
        return generator(semantics)


def test_reads_the_fixture_with_every_option_from_shapes(p1):
    official = load_official_oasis(p1)
    g, d = official.generator, official.discriminator
    assert (g.semantic_nc, g.channels, g.z_dim, g.noise, g.norm, g.spade_kernel, g.spade_hidden) == (10, 3, 16, True, "syncbatch", 3, 16)
    assert d.widths == (3, 8, 8, 16, 16, 32, 32) and d.last_width == 4 and d.semantic_nc == 10
    assert official.ema is None and official.raw_generator is g and set(official.files) == {"G", "D"}


def test_to_oasis_round_trip_keeps_official_keys_order_and_values(p1, tmp_path):
    official = load_official_oasis(p1)
    written = write_official_oasis(tmp_path, official.generator, official.discriminator, ema=official.generator, which="latest")
    assert sorted(p.name for p in written) == ["latest_D.pth", "latest_EMA.pth", "latest_G.pth"]
    for ours, theirs in (("latest_G.pth", "G.pth"), ("latest_EMA.pth", "G.pth"), ("latest_D.pth", "D.pth")):
        a = torch.load(tmp_path / ours, weights_only=True)
        b = torch.load(p1 / theirs, weights_only=True)
        assert list(a) == list(b), f"{ours}: key order differs from the official file"
        for key in b:
            assert a[key].dtype == b[key].dtype and torch.equal(a[key], b[key]), key
    again = load_official_oasis(tmp_path)
    assert again.ema is not None and again.generator is again.ema
    io = torch.load(p1 / "io.pt", weights_only=True)
    assert torch.equal(_eval_output(again.generator, io["input_semantics"]), _eval_output(official.generator, io["input_semantics"]))


def test_written_state_is_float32_cpu_and_unwrapped(p1):
    official = load_official_oasis(p1)
    wrapped = torch.nn.DataParallel(official.generator.half())
    state = official_state(wrapped)
    assert next(iter(state)) == "conv_img.weight"
    assert all(v.dtype == torch.float32 for k, v in state.items() if not k.endswith("num_batches_tracked"))


def test_checkpoint_names_latest_best_and_iterations(p1, tmp_path):
    official = load_official_oasis(p1)
    for which in ("1000", "20000", "best"):
        write_official_oasis(tmp_path / "run" / "models", official.generator, official.discriminator, ema=official.generator, which=which)
    assert find_official_files(tmp_path / "run")["G"].name == "best_G.pth"  # looks into models/
    (tmp_path / "run" / "models" / "best_G.pth").unlink()
    (tmp_path / "run" / "models" / "best_D.pth").unlink()
    (tmp_path / "run" / "models" / "best_EMA.pth").unlink()
    assert find_official_files(tmp_path / "run")["EMA"].name == "20000_EMA.pth"
    assert find_official_files(tmp_path / "run", "1000")["D"].name == "1000_D.pth"
    with pytest.raises(CheckpointError, match="no OASIS checkpoint 'latest'"):
        find_official_files(tmp_path / "run", "latest")
    assert load_official_oasis(tmp_path / "run", prefer_ema=False).generator is not None


def test_generator_alone_needs_the_class_count(p1, tmp_path):
    shutil.copy(p1 / "G.pth", tmp_path / "latest_EMA.pth")
    with pytest.raises(CheckpointError, match="semantic_nc"):
        load_official_oasis(tmp_path)
    assert load_official_oasis(tmp_path, semantic_nc=10).generator.z_dim == 16
    assert load_official_oasis(tmp_path, z_dim=16).generator.semantic_nc == 10
    with pytest.raises(CheckpointError, match="not semantic_nc=10 \\+ z_dim=8"):
        load_official_oasis(tmp_path, semantic_nc=10, z_dim=8)
    # The official run folder's opt.txt (written by the official config.save_options) settles it.
    run = tmp_path / "run"
    (run / "models").mkdir(parents=True)
    shutil.move(tmp_path / "latest_EMA.pth", run / "models" / "latest_EMA.pth")
    (run / "opt.txt").write_text("          no_3dnoise: False                         \n               z_dim: 16                            \t[default: 64]\n")
    assert load_official_oasis(run).generator.semantic_nc == 10


def test_options_inferred_for_other_configurations():
    cases = [
        dict(semantic_nc=7, channels=2, noise=False, norm="instance", spade_kernel=5, spade_hidden=6),
        dict(semantic_nc=35, channels=1, z_dim=8, norm="batch", spade_kernel=3, spade_hidden=4),
        dict(semantic_nc=4, channels=2, z_dim=3, norm="syncbatch", spade_kernel=1, spade_hidden=2),
    ]
    for options in cases:
        generator = OasisGenerator(**options)
        if options["norm"] == "batch":  # a batch-norm state is told from syncbatch by its batch counter
            with torch.no_grad():
                generator.train()(torch.zeros(2, options["semantic_nc"], 64, 64).index_fill_(1, torch.tensor([1]), 1.0))
        inferred = infer_generator_options(generator.state_dict(), Path("x.pth"), semantic_nc=options["semantic_nc"])
        for key, value in options.items():
            assert inferred[key] == value, (key, inferred)
        rebuilt = OasisGenerator(**inferred)
        rebuilt.load_state_dict(generator.state_dict(), strict=True)


def _bad(tmp_path: Path, name: str, content) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    return path


def test_bad_checkpoints_give_one_line_errors(p1, tmp_path):
    g = torch.load(p1 / "G.pth", weights_only=True)
    d = torch.load(p1 / "D.pth", weights_only=True)
    cases = {
        "empty": (b"", "file is empty"),
        "garbage": (b"this is not a checkpoint", "corrupt|not a valid"),
        "swapped": (d, "not an OASIS generator checkpoint"),
        "missing": ({k: v for k, v in g.items() if k != "body.3.norm_1.mlp_beta.bias"}, "missing 1 keys .*mlp_beta"),
        "extra": ({**g, "body.3.extra": torch.zeros(1)}, "unexpected 1 keys"),
        "shape": ({**g, "body.0.conv_1.bias": torch.zeros(5)}, "body.0.conv_1.bias has shape"),
        "list": ([1, 2, 3], "not a state dict of tensors"),
    }
    for name, (content, message) in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        path = _bad(folder, "latest_G.pth", content)
        with pytest.raises(CheckpointError, match=message) as info:
            load_official_oasis(folder, semantic_nc=10)
        assert str(path) in str(info.value) and "\n" not in str(info.value), name
    folder = tmp_path / "dmismatch"
    folder.mkdir()
    _bad(folder, "G.pth", g)
    _bad(folder, "D.pth", {**d, "layer_up_last.weight": torch.zeros(31, 4, 1, 1), "layer_up_last.bias": torch.zeros(31)})
    with pytest.raises(CheckpointError, match="not semantic_nc=30"):
        load_official_oasis(folder)
    with pytest.raises(CheckpointError, match="no official OASIS checkpoint"):
        load_official_oasis(tmp_path)
    with pytest.raises(CheckpointError, match="not a directory"):
        load_official_oasis(tmp_path / "nowhere")
