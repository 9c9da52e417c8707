"""Bad checkpoints get a one-line error naming the file, exit code 2, and nothing written."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from spadekit.cli import main
from spadekit.config import load_config
from spadekit.models import build_networks
from spadekit.release import SpadeModel

TINY = ["model.label_nc=10", "model.width=64", "model.ngf=4"]


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


def official_dir(tmp_path: Path, parity_dir: Path) -> Path:
    target = tmp_path / "official"
    target.mkdir()
    shutil.copy(parity_dir / "p2b_custom_noinst_batch5x5" / "latest_net_G.pth", target)
    return target


def assert_clean_failure(code: int, err: str, names: str, out: Path) -> None:
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: ") and names in err, err
    assert not out.exists()
    assert not any(p.name.startswith(f".{out.name}") for p in out.parent.iterdir()), "temporary files left behind"


def test_corrupt_file(tmp_path, parity_dir, capsys):
    source = official_dir(tmp_path, parity_dir)
    (source / "latest_net_G.pth").write_bytes(os.urandom(4096))
    out = tmp_path / "model"
    code, err = run_cli(["convert", "official", str(source), "--set", *TINY, "--out", str(out)], capsys)
    assert_clean_failure(code, err, "latest_net_G.pth", out)


def test_truncated_file(tmp_path, parity_dir, capsys):
    source = official_dir(tmp_path, parity_dir)
    data = (source / "latest_net_G.pth").read_bytes()
    (source / "latest_net_G.pth").write_bytes(data[: len(data) // 2])
    out = tmp_path / "model"
    code, err = run_cli(["convert", "official", str(source), "--set", *TINY, "--out", str(out)], capsys)
    assert_clean_failure(code, err, "latest_net_G.pth", out)
    assert "truncated" in err or "corrupt" in err


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoint_that_asks_for_code_execution_is_refused(tmp_path, parity_dir, capsys):
    source = official_dir(tmp_path, parity_dir)
    marker = tmp_path / "pwned"
    with open(source / "latest_net_G.pth", "wb") as handle:
        pickle.dump({"fc.weight": _RunsCode(marker)}, handle)
    # torch.save format too (zip container with the same malicious pickle inside).
    torch.save({"payload": _RunsCode(marker)}, source / "latest_net_D.pth")
    out = tmp_path / "model"
    code, err = run_cli(["convert", "official", str(source), "--set", *TINY, "--out", str(out)], capsys)
    assert_clean_failure(code, err, "latest_net_G.pth", out)
    assert not marker.exists(), "the pickle payload ran"
    (source / "latest_net_G.pth").unlink()
    shutil.copy(parity_dir / "p2b_custom_noinst_batch5x5" / "latest_net_G.pth", source)
    code, err = run_cli(["convert", "official", str(source), "--set", *TINY, "--out", str(out)], capsys)
    assert_clean_failure(code, err, "latest_net_D.pth", out)
    assert "refused" in err
    assert not marker.exists()


def test_mismatched_checkpoint(tmp_path, parity_dir, capsys):
    source = official_dir(tmp_path, parity_dir)
    shutil.copy(parity_dir / "p1_custom_vae" / "latest_net_E.pth", source)  # encoder of another model
    out = tmp_path / "model"
    code, err = run_cli(["convert", "official", str(source), "--set", *TINY, "--out", str(out)], capsys)
    assert_clean_failure(code, err, "latest_net_E.pth", out)


def _tiny_release(tmp_path: Path) -> Path:
    cfg = load_config("custom", ["model.label_nc=4", "model.ngf=4", "model.ndf=4", "model.width=64"])
    g, d, e = build_networks(cfg.model)
    return SpadeModel(cfg, g, d, e).save(tmp_path / "release")


def test_release_model_with_wrong_shapes_or_truncated_weights(tmp_path, capsys):
    release = _tiny_release(tmp_path)
    other = load_config("custom", ["model.label_nc=7", "model.ngf=4", "model.width=64"])
    g, _, _ = build_networks(other.model)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in g.state_dict().items()}, str(release / "generator.safetensors"))
    out = tmp_path / "back"
    code, err = run_cli(["convert", "to-official", str(release), "--out", str(out)], capsys)
    assert_clean_failure(code, err, "generator.safetensors", out)
    assert "shape" in err

    data = (release / "discriminator.safetensors").read_bytes()
    (tmp_path / "again").mkdir()
    release = _tiny_release(tmp_path / "again")
    (release / "discriminator.safetensors").write_bytes(data[: len(data) // 3])
    code, err = run_cli(["convert", "to-official", str(release), "--out", str(out)], capsys)
    assert_clean_failure(code, err, "discriminator.safetensors", out)


def test_missing_and_invalid_config(tmp_path, capsys):
    release = _tiny_release(tmp_path)
    (release / "config.json").write_text("{not json")
    out = tmp_path / "back"
    code, err = run_cli(["convert", "to-official", str(release), "--out", str(out)], capsys)
    assert_clean_failure(code, err, "config.json", out)
    code, err = run_cli(["convert", "to-official", str(tmp_path / "nope"), "--out", str(out)], capsys)
    assert_clean_failure(code, err, "nope", out)


def test_wrong_preset_is_named(tmp_path, parity_dir, capsys):
    source = official_dir(tmp_path, parity_dir)
    out = tmp_path / "model"
    code, err = run_cli(["convert", "official", str(source), "--preset", "coco", "--out", str(out)], capsys)
    assert_clean_failure(code, err, "semantic channels", out)


@pytest.mark.parametrize("case", ["p1_custom_vae", "p2_custom_noinst"])
def test_convert_cli_reads_widths_from_weights(tmp_path, parity_dir, capsys, case):
    sets = {
        "p1_custom_vae": ["model.label_nc=13", "model.contain_dontcare=true", "model.use_instance=true", "model.width=64"],
        "p2_custom_noinst": ["model.label_nc=10", "model.width=256", "model.aspect_ratio=2"],
    }[case]
    out = tmp_path / "model"
    assert main(["convert", "official", str(parity_dir / case), "--set", *sets, "--out", str(out)]) == 0
    import json

    model = json.loads((out / "config.json").read_text())["config"]["model"]
    assert model["ngf"] == 8
    assert model["use_vae"] == (case == "p1_custom_vae")
    assert model["upsampling"] == ("most" if case == "p2_custom_noinst" else "normal")
    assert model["norm_G"] == ("instance" if case == "p2_custom_noinst" else "syncbatch")
